'use strict'
// Counted keys (docs/semaphores.md: `permits`, `weight`, `mode`) on every
// reach that counts them: the same scenarios on the isolate reach and on
// `scope: 'process'` (helpers/reaches.js runs each test once per reach).
// The Redis reach refuses `permits` above 1 for now (semaphore.test.js
// pins that refusal); it joins this list when it counts.
//
// Cross-thread behaviour (worker threads sharing permits, a terminated
// worker's permits) is in semaphore-workers.test.js.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { Semaphore } = require('async-mutex')
const { forEachReach, settled, mockClock } = require('../helpers/reaches')

const COUNTING = ['isolate', 'process']

/** A small seeded PRNG (mulberry32), so a failure names its seed. */
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

forEachReach((reach) => {
  /**
   * `weights` requests on one key, each holding until the driver releases
   * it; the driver releases a random holder (seeded) after every round.
   * Returns the start order.
   */
  async function scenario(weights, seed, take) {
    const random = rng(seed)
    const started = []
    const holders = []
    const done = weights.map((w, i) =>
      take(w, () => {
        started.push(i)
        return new Promise((resolve) => holders.push(resolve))
      }),
    )
    await reach.quiet()
    while (holders.length > 0) {
      const [release] = holders.splice(Math.floor(random() * holders.length), 1)
      release()
      await reach.quiet()
    }
    await Promise.all(done)
    return started
  }

  test('grant order and weights match async-mutex Semaphore (equal priority) on one key', async () => {
    let runs = 0
    for (let seed = 1; seed <= 60; seed++) {
      const random = rng(seed * 7919)
      const permits = 2 + Math.floor(random() * 4)
      const weights = Array.from({ length: 4 + Math.floor(random() * 12) }, () => 1 + Math.floor(random() * permits))
      const lock = reach.make({ permits })
      const ours = await scenario(weights, seed, (weight, fn) => lock.acquire('k', fn, { weight }))
      const sem = new Semaphore(permits)
      const theirs = await scenario(weights, seed, (weight, fn) => sem.runExclusive(fn, weight))
      assert.deepEqual(ours, theirs, `seed ${seed}, permits ${permits}, weights ${weights}`)
      assert.equal(lock.isBusy(), false)
      runs++
    }
    assert.equal(runs, 60)
  })

  test('permits are shared by every AsyncLock of the space; a heavy head is not overtaken', async () => {
    const lock = reach.make({ permits: 4 })
    const twin = reach.twin(lock) || lock
    const order = []
    const first = await lock.lock('k', { weight: 3 })
    const heavy = twin.acquire('k', () => order.push('heavy'), { weight: 2 })
    const light = lock.acquire('k', () => order.push('light'), { weight: 1 })
    assert.equal(await settled(reach, heavy), false, 'one permit is free, but the heavy head waits first')
    assert.deepEqual(order, [])
    assert.equal(twin.queues.k.length, 2)
    await first.release()
    await Promise.all([heavy, light])
    assert.deepEqual(order, ['heavy', 'light'])
    assert.equal(twin.isBusy(), false)
  })

  test('read/write lock: shared holders run together, a waiting writer blocks later readers', async () => {
    const lock = reach.make({ permits: Infinity })
    const log = []
    const gate = {}
    const hold = (name, mode) =>
      lock.acquire(
        'doc',
        () => {
          log.push(`+${name}`)
          return new Promise((resolve) => (gate[name] = resolve)).then(() => log.push(`-${name}`))
        },
        { mode },
      )
    const r1 = hold('r1', 'shared')
    const r2 = hold('r2', 'shared')
    const w = hold('w', 'exclusive')
    const r3 = hold('r3', 'shared')
    await reach.quiet()
    assert.deepEqual(log, ['+r1', '+r2'], 'the writer waits for both readers; r3 waits behind the writer')
    gate.r1()
    await reach.quiet()
    gate.r2()
    await reach.quiet()
    assert.deepEqual(log, ['+r1', '+r2', '-r1', '-r2', '+w'])
    gate.w()
    await reach.quiet()
    gate.r3()
    await Promise.all([r1, r2, w, r3])
    assert.deepEqual(log, ['+r1', '+r2', '-r1', '-r2', '+w', '-w', '+r3', '-r3'])
  })

  test('multi-key: every key with its weight, all or nothing (callback mode and lock())', async () => {
    const lock = reach.make({ permits: 3 })
    const held = await lock.lock('b', { weight: 3 })
    let ran = false
    const both = new Promise((resolve, reject) =>
      lock.acquire(
        ['a', 'b'],
        (done) => {
          ran = true
          done(null, 'ok')
        },
        (err, value) => (err ? reject(err) : resolve(value)),
        { weight: [3, 1] },
      ),
    )
    await reach.quiet()
    assert.equal(ran, false)
    assert.equal(lock.queues.a.length, 1, 'the waiting request holds none of a')
    const later = lock.lock('a', { weight: 1 })
    await held.release()
    assert.equal(await both, 'ok')
    const lease = await later
    await lease.release()
    assert.equal(lock.isBusy(), false)
  })

  test('skipQueue goes to the front and runs at once if it fits', async () => {
    const lock = reach.make({ permits: 2 })
    const order = []
    const held = await lock.lock('k')
    const heavy = lock.acquire('k', () => order.push('heavy'), { weight: 2 })
    // One permit is free: a skipper of weight 1 runs at once, ahead of the heavy head.
    let finish
    const fits = lock.acquire(
      'k',
      () => {
        order.push('skip fits')
        return new Promise((resolve) => (finish = resolve))
      },
      { skipQueue: true },
    )
    await reach.quiet()
    assert.deepEqual(order, ['skip fits'])
    // None is free now: the next skipper waits, in front of the heavy head.
    const skipper = lock.acquire('k', () => order.push('skip waits'), { skipQueue: true })
    await reach.quiet()
    assert.deepEqual(order, ['skip fits'])
    assert.equal(lock.queues.k.length, 2)
    finish()
    await Promise.all([fits, skipper])
    assert.deepEqual(order, ['skip fits', 'skip waits'])
    await held.release()
    await heavy
    assert.deepEqual(order, ['skip fits', 'skip waits', 'heavy'])
  })

  test('maxPending counts waiters; a request that fits is granted even with maxPending 0', async () => {
    const lock = reach.make({ permits: 3, maxPending: 0 })
    const a = await lock.lock('k', { weight: 2 })
    const b = await lock.lock('k', { weight: 1 })
    await assert.rejects(lock.lock('k'), /Too many pending tasks in queue k/)
    await assert.rejects(lock.acquire('k', () => {}, { maxPending: 0 }), /Too many pending tasks in queue k/)
    await a.release()
    const c = lock.acquire('k', () => 'fits', { weight: 2, maxPending: 1 })
    assert.equal(await c, 'fits')
    await b.release()
  })

  test('a timed-out heavy head wakes the lighter waiters behind it (timeout per request)', async (t) => {
    const clock = mockClock(t)
    const lock = reach.make({ permits: 2 })
    const held = await lock.lock('k')
    const heavy = lock.acquire('k', () => 'heavy', { weight: 2, timeout: 50 })
    const light = lock.acquire('k', () => 'light')
    const lease = lock.lock('k')
    heavy.catch(() => {})
    await clock.tick(49)
    assert.equal(await settled(reach, light), false)
    await clock.tick(1)
    await assert.rejects(heavy, /timed out in queue k/)
    assert.equal(await light, 'light')
    const l = await lease
    await l.release()
    await held.release()
    assert.equal(lock.isBusy(), false)
  })

  test('an aborted exclusive head wakes every shared waiter behind it', async () => {
    const lock = reach.make({ permits: Infinity })
    const reader = await lock.lock('doc', { mode: 'shared' })
    const controller = new AbortController()
    const writer = lock.lock('doc', { mode: 'exclusive', signal: controller.signal })
    const readers = [lock.lock('doc', { mode: 'shared' }), lock.lock('doc', { mode: 'shared' })]
    assert.equal(await settled(reach, readers[0]), false, 'readers wait behind the writer')
    controller.abort()
    await assert.rejects(writer, { name: 'AbortError' })
    const leases = await Promise.all(readers)
    for (const lease of [reader, ...leases]) await lease.release()
    assert.equal(lock.isBusy(), false)
  })

  test('maxExecutionTime gives the weight back; maxOccupationTime tells the caller, per request', async (t) => {
    const clock = mockClock(t)
    const lock = reach.make({ permits: 3 })
    let finish
    const stuck = lock.acquire('k', () => new Promise((resolve) => (finish = resolve)), { weight: 3, maxExecutionTime: 100 })
    stuck.catch(() => {})
    const next = lock.acquire('k', () => 'next', { weight: 2 })
    const occupied = lock.acquire('k', () => new Promise(() => {}), { weight: 3, maxOccupationTime: 500 })
    occupied.catch(() => {})
    await clock.tick(100)
    await assert.rejects(stuck, /Maximum execution time is exceeded k/)
    assert.equal(await next, 'next')
    await clock.tick(400)
    await assert.rejects(occupied, /Maximum occupation time is exceeded in queue k/)
    finish()
  })

  test('fencing tokens: every grant its own, strictly increasing per key, shared holders included', async () => {
    const lock = reach.make({ permits: 4 })
    const twin = reach.twin(lock) || lock
    const tokens = []
    const leases = []
    for (let i = 0; i < 8; i++) {
      // At most two held (weights 1 and 2) when the next (1 or 2) asks: it fits.
      if (leases.length === 2) await leases.shift().release()
      const l = await (i % 2 ? twin : lock).lock('k', { weight: 1 + (i % 2) })
      tokens.push(l.token)
      leases.push(l)
    }
    for (const l of leases) await l.release()
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `tokens ${tokens}`)
    // Holders granted together by one release get tokens in grant order.
    const writer = await lock.lock('k', { mode: 'exclusive' })
    const readers = [lock.lock('k', { mode: 'shared' }), twin.lock('k', { mode: 'shared' })]
    await writer.release()
    const [r1, r2] = await Promise.all(readers)
    assert.ok(r1.token > writer.token && r2.token > r1.token, `${writer.token} < ${r1.token} < ${r2.token}`)
    await r1.release()
    await r2.release()
  })

  test('stress: random keys, weights, modes, skipQueue and timeouts never break the invariants', async () => {
    const permits = 4
    const keys = ['a', 'b', 'c', 'd']
    const lock = reach.make({ permits, maxPending: Infinity })
    const twin = reach.twin(lock) || lock
    const out = Object.fromEntries(keys.map((k) => [k, 0]))
    const exclusive = Object.fromEntries(keys.map((k) => [k, false]))
    const random = rng(reach.name === 'isolate' ? 2026 : 2027)
    let entered = 0
    let timedOut = 0
    const calls = []
    const N = 1500
    for (let i = 0; i < N; i++) {
      const n = random() < 0.2 ? 2 : 1
      const chosen = [...keys].sort(() => random() - 0.5).slice(0, n)
      const mode = random() < 0.15 ? 'exclusive' : random() < 0.5 ? 'shared' : undefined
      const weights = chosen.map(() => (mode === 'exclusive' ? permits : mode === 'shared' ? 1 : 1 + Math.floor(random() * permits)))
      const opts = mode === 'exclusive' ? { mode } : { weight: n === 1 ? weights[0] : weights, ...(mode ? { mode } : {}) }
      if (random() < 0.05) opts.timeout = 1 + Math.floor(random() * 5)
      if (random() < 0.03) opts.skipQueue = true
      const fn = async () => {
        entered++
        chosen.forEach((k, j) => {
          assert.equal(exclusive[k], false, `an exclusive holder of ${k} is alone`)
          out[k] += weights[j]
          assert.ok(out[k] <= permits, `${k}: ${out[k]} permits out of ${permits}`)
          if (weights[j] === permits) exclusive[k] = true
        })
        await new Promise((resolve) => (random() < 0.5 ? setImmediate(resolve) : setTimeout(resolve, 0)))
        chosen.forEach((k, j) => {
          out[k] -= weights[j]
          if (weights[j] === permits) exclusive[k] = false
        })
      }
      calls.push(
        (i % 2 ? twin : lock).acquire(n === 1 ? chosen[0] : chosen, fn, opts).catch((err) => {
          assert.match(err.message, /timed out/)
          timedOut++
        }),
      )
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    await Promise.all(calls)
    assert.equal(entered + timedOut, N)
    assert.ok(entered > N / 2, `most calls ran (${entered})`)
    assert.equal(lock.isBusy(), false)
    for (const k of keys) assert.equal(out[k], 0)
  })

  test('bad weight or mode is a TypeError naming the option, before anything is queued', async () => {
    const lock = reach.make({ permits: 3 })
    const held = await lock.lock('k')
    for (const weight of [0, -1, 1.5, 4, '2', NaN, [1, 1]]) {
      assert.throws(
        () => lock.acquire('k', () => {}, { weight }),
        (err) => err instanceof TypeError && /option "weight"/.test(err.message),
        String(weight),
      )
    }
    assert.throws(() => lock.acquire('k', () => {}, { mode: 'read' }), /option "mode"/)
    assert.throws(() => lock.acquire('k', () => {}, { mode: 'exclusive', weight: 2 }), /option "weight"/)
    await assert.rejects(lock.lock('k', { weight: 9 }), (err) => err instanceof TypeError && /option "weight"/.test(err.message))
    assert.equal(lock.queues.k.length, 0, 'nothing was queued')
    await held.release()
    const mutex = reach.make()
    assert.throws(() => mutex.acquire('k', () => {}, { mode: 'shared' }), /option "mode".*permits > 1/)
  })
}, COUNTING)
