'use strict'
// Counted keys (docs/semaphores.md): `permits` on the constructor, `weight`
// and `mode` per call. Differential against async-mutex's Semaphore for what
// both promise (grant order and weights on one key), a stress test that
// asserts the invariants from inside the critical sections, and the
// TypeErrors that come before anything is queued.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { Semaphore } = require('async-mutex')
const AsyncLock = require('..')

const immediate = () => new Promise((resolve) => setImmediate(resolve))
async function drain(rounds = 5) {
  for (let i = 0; i < rounds; i++) await immediate()
}

/** A small seeded PRNG (mulberry32), so a failure names its seed. */
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Runs one scenario: `weights` requests on one key of a limit `permits`,
 * each holding until the driver releases it; the driver releases a random
 * holder (seeded) after every round. Returns the start order.
 */
async function scenario(permits, weights, seed, take) {
  const random = rng(seed)
  const started = []
  const holders = []
  const done = weights.map((w, i) =>
    take(w, () => {
      started.push(i)
      return new Promise((resolve) => holders.push(resolve))
    }),
  )
  await drain()
  while (holders.length > 0) {
    const [release] = holders.splice(Math.floor(random() * holders.length), 1)
    release()
    await drain()
  }
  await Promise.all(done)
  return started
}

test('grant order and weights match async-mutex Semaphore (equal priority) on one key', async () => {
  let runs = 0
  for (let seed = 1; seed <= 150; seed++) {
    const random = rng(seed * 7919)
    const permits = 1 + Math.floor(random() * 5)
    const weights = Array.from({ length: 4 + Math.floor(random() * 16) }, () => 1 + Math.floor(random() * permits))
    const lock = new AsyncLock(permits === 1 ? {} : { permits })
    const ours = await scenario(permits, weights, seed, (weight, fn) => lock.acquire('k', fn, { weight }))
    const sem = new Semaphore(permits)
    const theirs = await scenario(permits, weights, seed, (weight, fn) => sem.runExclusive(fn, weight))
    assert.deepEqual(ours, theirs, `seed ${seed}, permits ${permits}, weights ${weights}`)
    assert.equal(lock.isBusy(), false)
    runs++
  }
  assert.equal(runs, 150)
})

test('a heavy head is not overtaken by lighter requests behind it', async () => {
  const lock = new AsyncLock({ permits: 4 })
  const order = []
  const first = await lock.lock('k', { weight: 3 })
  const heavy = lock.acquire('k', () => order.push('heavy'), { weight: 2 })
  const light = lock.acquire('k', () => order.push('light'), { weight: 1 })
  await drain()
  assert.deepEqual(order, [], 'one permit is free, but the heavy head waits first')
  assert.equal(lock.queues.k.length, 2)
  await first.release()
  await Promise.all([heavy, light])
  assert.deepEqual(order, ['heavy', 'light'])
})

test('read/write lock: shared holders run together, a waiting writer blocks later readers', async () => {
  const lock = new AsyncLock({ permits: Infinity })
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
  await drain()
  assert.deepEqual(log, ['+r1', '+r2'], 'the writer waits for both readers; r3 waits behind the writer')
  gate.r1()
  await drain()
  assert.deepEqual(log, ['+r1', '+r2', '-r1'])
  gate.r2()
  await drain()
  assert.deepEqual(log, ['+r1', '+r2', '-r1', '-r2', '+w'])
  gate.w()
  await drain()
  gate.r3()
  await Promise.all([r1, r2, w, r3])
  assert.deepEqual(log, ['+r1', '+r2', '-r1', '-r2', '+w', '-w', '+r3', '-r3'])
})

test('one release or cancel starts thousands of readers at once, each exactly once', async () => {
  // More grants than the counted io buffer's first size (256 slots): the
  // surplus travels in a second step (src/binding/semaphore.rs).
  const lock = new AsyncLock({ permits: Infinity, maxPending: Infinity })
  const readers = 3000
  let inside = 0
  let most = 0
  let ran = 0
  const read = () =>
    lock.acquire('doc', async () => {
      inside++
      if (inside > most) most = inside
      await drain(1)
      inside--
      ran++
    }, { mode: 'shared' })
  // A writer's release grants them.
  const writer = await lock.lock('doc', { mode: 'exclusive' })
  const afterWriter = Array.from({ length: readers }, read)
  await drain()
  assert.equal(ran, 0)
  await writer.release()
  await Promise.all(afterWriter)
  assert.equal(ran, readers)
  assert.equal(most, readers, 'every reader ran beside every other')
  // A cancelled writer at the head grants them: it times out behind a reader.
  const reader = await lock.lock('doc', { mode: 'shared' })
  const blocked = lock.acquire('doc', () => 'writer', { mode: 'exclusive', timeout: 30 })
  const afterCancel = Array.from({ length: readers }, read)
  await assert.rejects(blocked, /timed out/)
  await Promise.all(afterCancel)
  assert.equal(ran, 2 * readers)
  await reader.release()
  assert.equal(lock.isBusy(), false)
})

test('a timed-out heavy head wakes the lighter waiters behind it', async () => {
  const lock = new AsyncLock({ permits: 2 })
  const held = await lock.lock('k')
  const heavy = lock.acquire('k', () => 'heavy', { weight: 2, timeout: 20 })
  const light = lock.acquire('k', () => 'light')
  await assert.rejects(heavy, /timed out/)
  assert.equal(await light, 'light')
  await held.release()
  assert.equal(lock.isBusy(), false)
})

test('multi-key requests take every key with its weight, all or nothing (callback mode too)', async () => {
  const lock = new AsyncLock({ permits: 3 })
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
  await drain()
  assert.equal(ran, false)
  // Key a is free, but the waiting request holds none of it meanwhile...
  assert.equal(lock.queues.a.length, 1)
  // ...and, FIFO, a newcomer on a waits behind it.
  const later = lock.acquire('a', () => 'later')
  await held.release()
  assert.equal(await both, 'ok')
  assert.equal(await later, 'later')
  assert.equal(lock.isBusy(), false)
})

test('stress: random keys, weights, modes and timeouts never break the invariants', async () => {
  const permits = 4
  const keys = ['a', 'b', 'c', 'd', 'e']
  const lock = new AsyncLock({ permits, maxPending: Infinity })
  const out = Object.fromEntries(keys.map((k) => [k, 0]))
  const exclusive = Object.fromEntries(keys.map((k) => [k, false]))
  const random = rng(2026)
  let entered = 0
  let timedOut = 0
  const calls = []
  for (let i = 0; i < 3000; i++) {
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
        if (weights[j] === permits) {
          assert.equal(out[k], permits)
          exclusive[k] = true
        }
      })
      await (random() < 0.5 ? immediate() : new Promise((resolve) => setTimeout(resolve, 0)))
      chosen.forEach((k, j) => {
        out[k] -= weights[j]
        if (weights[j] === permits) exclusive[k] = false
      })
    }
    const key = n === 1 ? chosen[0] : chosen
    calls.push(
      lock.acquire(key, fn, opts).catch((err) => {
        assert.match(err.message, /timed out/)
        timedOut++
      }),
    )
    if (i % 50 === 0) await immediate()
  }
  await Promise.all(calls)
  assert.equal(entered + timedOut, 3000)
  assert.ok(entered > 2000, `most calls ran (${entered})`)
  assert.equal(lock.isBusy(), false)
  for (const k of keys) assert.equal(out[k], 0)
})

test('bad weight, mode or permits is a TypeError naming the option, before anything is queued', async () => {
  const lock = new AsyncLock({ permits: 3 })
  const held = await lock.lock('k')
  for (const weight of [0, -1, 1.5, 4, '2', NaN, [1, 1]]) {
    assert.throws(() => lock.acquire('k', () => {}, { weight }), (err) => err instanceof TypeError && /option "weight"/.test(err.message), String(weight))
  }
  assert.throws(() => lock.acquire('k', () => {}, { mode: 'read' }), /option "mode"/)
  assert.throws(() => lock.acquire('k', () => {}, { mode: 'exclusive', weight: 2 }), /option "weight"/)
  await assert.rejects(lock.lock('k', { weight: 9 }), (err) => err instanceof TypeError && /option "weight"/.test(err.message))
  assert.equal(lock.queues.k.length, 0, 'nothing was queued')
  await held.release()

  for (const permits of [0, -2, 1.5, '3', NaN]) {
    assert.throws(() => new AsyncLock({ permits }), (err) => err instanceof TypeError && /option "permits"/.test(err.message), String(permits))
  }
  const mutex = new AsyncLock()
  assert.throws(() => mutex.acquire('k', () => {}, { mode: 'shared' }), /option "mode".*permits > 1/)
  assert.throws(() => mutex.acquire('k', () => {}, { weight: 2 }), /option "weight"/)
})

test('permits above 1 are refused on a Redis quorum, the one reach that does not count', () => {
  // Redis counts permits in one Redis (__test__/redis-semaphore.test.js), not on a quorum of masters.
  const quorum = { quorum: ['redis://127.0.0.1:1', 'redis://127.0.0.1:2', 'redis://127.0.0.1:3'] }
  assert.throws(() => new AsyncLock({ permits: 2, redis: quorum }), (err) => err instanceof TypeError && /option "permits".*quorum/.test(err.message))
})

test('a lock without the new options is the mutex it was: weight 1 and mode exclusive change nothing', async () => {
  const lock = new AsyncLock()
  const order = []
  const a = lock.acquire('k', async () => {
    order.push('a')
    await immediate()
  })
  const b = lock.acquire('k', () => order.push('b'), { mode: 'exclusive' })
  const c = lock.acquire('k', () => order.push('c'), { weight: 1 })
  assert.equal(lock.queues.k.length, 2)
  await Promise.all([a, b, c])
  assert.deepEqual(order, ['a', 'b', 'c'])
})
