'use strict'
// Counted keys on the Redis reach (docs/semaphores.md): `permits` on the
// constructor, `weight` / `mode` per call, counted in Redis by the SEM_
// scripts (src/redis/lua/sem_*.lua). Two AsyncLocks on one name share the
// process's connection, but every grant is decided by the scripts, so what
// holds here holds across processes (redis-semaphore-processes.test.js
// checks that with real processes and kill -9).

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const AsyncLock = require('../index.js')
const { startRedis } = require('../support/redis-harness')
const { lockKey } = require('./redis-keys')
const { waitFor } = require('./helpers')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

let server
before(async () => {
  server = await startRedis()
})
after(() => server.stop())

let next = 0
/** Locks on one fresh name with `permits`; closed after the test. */
function locks(t, n, opts) {
  const name = 'sem' + ++next
  const out = Array.from({ length: n }, () => new AsyncLock({ redis: server.url, name, ttl: 1000, ...opts }))
  t.after(() => Promise.all(out.map((l) => l.close())))
  const queue = (key) => lockKey('keyed-lock', name, key, 'o')
  const holders = (key) => lockKey('keyed-lock', name, key, 'h')
  return { name, locks: out, queue, holders }
}

const queued = (queue, n) => waitFor(`${n} waiter(s) in ${queue}`, async () => (await server.command('ZCARD', queue)) === n)

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
 * semaphore.test.js's differential scenario: `weights` requests on one key
 * of `permits`, each holding until the driver releases a random holder
 * (seeded; holders kept in request order, so the pick does not depend on
 * the order in which grants made together reach their callers). Between
 * steps it awaits `settled(holding, started)`. `take(weight, fn, i)`
 * resolves when request `i` is done. Returns the start order.
 */
async function scenario(weights, seed, take, settled) {
  const random = rng(seed)
  const started = []
  const holders = []
  const done = weights.map((w, i) =>
    take(
      w,
      () => {
        started.push(i)
        return new Promise((resolve) => {
          holders.push({ i, resolve })
          holders.sort((a, b) => a.i - b.i)
        })
      },
      i,
    ),
  )
  await settled(holders, started)
  while (holders.length > 0) {
    const [holder] = holders.splice(Math.floor(random() * holders.length), 1)
    holder.resolve()
    await settled(holders, started)
  }
  await Promise.all(done)
  return started
}

/** In-process: a few turns of the event loop start whoever was granted. */
async function drained() {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
}

/**
 * On Redis: until Redis and this process agree (every holder in Redis has
 * started here, every other request is queued there), so the order seen is
 * the scripts' and not the network's.
 */
const agreed = (holdersKey, queueKey, total) => (holders, started) =>
  waitFor('Redis and this process to agree', async () => {
    const inRedis = Math.max(0, (await server.command('HLEN', holdersKey)) - 1)
    const waiting = await server.command('ZCARD', queueKey)
    return inRedis === holders.length && waiting === total - started.length
  })

test('grant order and weights match async-mutex Semaphore (equal priority) on one Redis key', async (t) => {
  const { Semaphore } = require('async-mutex')
  let runs = 0
  for (let seed = 1; seed <= 25; seed++) {
    const random = rng(seed * 7919)
    const permits = 2 + Math.floor(random() * 4)
    const weights = Array.from({ length: 4 + Math.floor(random() * 10) }, () => 1 + Math.floor(random() * permits))
    const { locks: [lock], holders, queue } = locks(t, 1, { permits })
    const settled = agreed(holders('k'), queue('k'), weights.length)
    // Grants one release makes together reach their callers in any order
    // (each is its own message and promise): the grant order is the
    // tokens' (strictly increasing per key across grants).
    const tokens = []
    const take = async (weight, fn, i) => {
      const lease = await lock.lock('k', { weight })
      tokens[i] = lease.token
      await fn()
      await lease.release()
    }
    await scenario(weights, seed, take, settled)
    const ours = weights.map((_, i) => i).sort((a, b) => tokens[a] - tokens[b])
    const sem = new Semaphore(permits)
    const theirs = await scenario(weights, seed, (weight, fn) => sem.runExclusive(fn, weight), drained)
    assert.deepEqual(ours, theirs, `seed ${seed}, permits ${permits}, weights ${weights}: ours ${ours} theirs ${theirs}`)
    runs++
  }
  assert.equal(runs, 25)
})

test('weights add up to at most permits; a request that does not fit waits for room', async (t) => {
  const { locks: [a, b], queue } = locks(t, 2, { permits: 3 })
  const two = await a.lock('k', { weight: 2 })
  const one = await b.lock('k', { weight: 1 })
  let third = null
  const waiting = a.lock('k', { weight: 1 }).then((l) => (third = l))
  await queued(queue('k'), 1)
  assert.equal(third, null, 'three permits are out: a fourth waits')
  await one.release()
  await waiting
  assert.ok(third.token > one.token && one.token > two.token, 'every grant gets its own increasing token')
  // Callback mode takes its weight the same way: 2 do not fit beside 3 out.
  let ran = false
  const cb = new Promise((resolve, reject) =>
    b.acquire('k', (done) => ((ran = true), done(null, 'cb')), (err, v) => (err ? reject(err) : resolve(v)), { weight: 2 }),
  )
  await queued(queue('k'), 1)
  assert.equal(ran, false)
  await two.release()
  assert.equal(await cb, 'cb')
  await third.release()
})

test('shared holders run together, an exclusive one alone; a waiting exclusive is not overtaken by later shared ones', async (t) => {
  const { locks: [a, b], queue } = locks(t, 2, { permits: Infinity })
  const r1 = await a.lock('k', { mode: 'shared' })
  const r2 = await b.lock('k', { mode: 'shared' })
  const order = []
  const writer = a.lock('k', { mode: 'exclusive' }).then((l) => (order.push('writer'), l))
  await queued(queue('k'), 1)
  const reader = b.lock('k', { mode: 'shared' }).then((l) => (order.push('reader'), l))
  await queued(queue('k'), 2)
  await sleep(50)
  assert.deepEqual(order, [], 'the later reader waits behind the writer, though it would fit')
  await r1.release()
  await sleep(50)
  assert.deepEqual(order, [], 'the writer waits for every reader')
  await r2.release()
  const w = await writer
  await sleep(50)
  assert.deepEqual(order, ['writer'], 'the reader waits for the writer')
  await w.release()
  await (await reader).release()
  assert.deepEqual(order, ['writer', 'reader'])
})

test('one release starts every shared waiter that fits, each with its own token', async (t) => {
  const { locks: [a, b], queue } = locks(t, 2, { permits: 4 })
  const w = await a.lock('k', { mode: 'exclusive' })
  const started = []
  const readers = [a, b, a].map((l, i) =>
    l.acquire('k', async () => {
      started.push(i)
      // Each waits for the others: only a grant of all three at once ends this.
      await waitFor('all readers in', async () => started.length === 3)
    }, { mode: 'shared' }),
  )
  const exclusive = b.acquire('k', () => started.push('x'), { mode: 'exclusive' })
  await queued(queue('k'), 4)
  await w.release()
  await Promise.all(readers)
  await exclusive
  assert.deepEqual(started.slice().sort(), [0, 1, 2, 'x'].sort())
  assert.equal(started[3], 'x', 'the exclusive waiter behind them ran after them')
})

test('a heavy head is not overtaken by a lighter request behind it', async (t) => {
  const { locks: [a, b], queue } = locks(t, 2, { permits: 3 })
  const first = await a.lock('k', { weight: 2 })
  const order = []
  const heavy = b.acquire('k', () => order.push('heavy'), { weight: 2 })
  await queued(queue('k'), 1)
  const light = a.acquire('k', () => order.push('light'), { weight: 1 })
  await queued(queue('k'), 2)
  await sleep(50)
  assert.deepEqual(order, [], 'the light request fits beside the holder, but waits behind the heavy head')
  await first.release()
  await Promise.all([heavy, light])
  assert.deepEqual(order, ['heavy', 'light'])
})

test('a timed-out head wakes whoever now fits behind it', async (t) => {
  const { locks: [a, b], queue } = locks(t, 2, { permits: 2 })
  const holder = await a.lock('k', { weight: 1 })
  const head = b.acquire('k', () => 'never', { mode: 'exclusive', timeout: 300 })
  await queued(queue('k'), 1)
  let behindAt = null
  const behind = a.acquire('k', () => (behindAt = Date.now()), { weight: 1 })
  await assert.rejects(head, /timed out/)
  await behind
  assert.ok(behindAt !== null, 'granted beside the holder, which still holds')
  await holder.release()
})

test('an aborted head (AbortSignal) wakes the next waiter', async (t) => {
  const { locks: [a, b], queue } = locks(t, 2, { permits: 2 })
  const holder = await a.lock('k', { weight: 1 })
  const controller = new AbortController()
  const head = b.lock('k', { mode: 'exclusive', signal: controller.signal })
  await queued(queue('k'), 1)
  const behind = a.lock('k', { weight: 1 })
  await queued(queue('k'), 2)
  controller.abort()
  await assert.rejects(head)
  const lease = await behind
  await Promise.all([lease.release(), holder.release()])
})

test('maxPending counts waiters (a request that fits is granted even at 0); skipQueue goes to the front', async (t) => {
  const { name, locks: [a], queue } = locks(t, 1, { permits: 2 })
  const strict = new AsyncLock({ redis: server.url, name, permits: 2, maxPending: 0 })
  t.after(() => strict.close())
  const one = await a.lock('k', { weight: 1 })
  assert.equal(await strict.acquire('k', () => 'fits'), 'fits', 'one permit left: granted at once')
  const order = []
  const heavy = a.acquire('k', () => order.push('heavy'), { weight: 2 })
  await queued(queue('k'), 1)
  await assert.rejects(strict.acquire('k', () => {}), /Too many pending tasks in queue k/)
  // The skipper fits beside the holder at the front, past the heavy head.
  await a.acquire('k', () => order.push('skipper'), { weight: 1, skipQueue: true })
  assert.deepEqual(order, ['skipper'])
  await one.release()
  await heavy
  assert.deepEqual(order, ['skipper', 'heavy'])
})

test('multi-key requests take every key with its own weight, all or nothing', async (t) => {
  const { locks: [a, b], queue } = locks(t, 2, { permits: 2 })
  const x = await a.lock('x', { weight: 2 })
  let both = null
  const multi = b.lock(['x', 'y'], { weight: [1, 2] }).then((l) => (both = l))
  await queued(queue('y'), 1)
  assert.equal(both, null, 'y is free, but x is full: nothing is taken')
  // y is free, but the multi-key request heads its queue: a later request waits.
  const later = a.acquire('y', () => 'later', { weight: 1 })
  await queued(queue('y'), 2)
  await x.release()
  await multi
  let laterDone = false
  later.then(() => (laterDone = true))
  await sleep(50)
  assert.equal(laterDone, false, 'the multi-key holder has all of y')
  await both.release()
  assert.equal(await later, 'later')
})

test('a limit that disagrees with the one in Redis is a TypeError naming permits, and nothing is queued', async (t) => {
  const { name, locks: [a], queue, holders } = locks(t, 1, { permits: 3 })
  const other = new AsyncLock({ redis: server.url, name, permits: 5 })
  t.after(() => other.close())
  const held = await a.lock('k', { weight: 1 })
  await assert.rejects(other.acquire('k', () => {}), (err) => {
    assert.equal(err.name, 'TypeError')
    assert.equal(err.code, 'ERR_INVALID_ARG_VALUE')
    assert.match(err.message, /option "permits" must be 3/)
    assert.match(err.message, /got 5/)
    return true
  })
  await assert.rejects(other.lock(['j', 'k']), /option "permits" must be 3.*key "k"/)
  assert.equal(await server.command('ZCARD', queue('k')), 0)
  assert.equal(await server.command('HGET', holders('k'), '#'), '3')
  await held.release()
  // The limit lives as long as somebody holds or waits: then a new one may start.
  assert.equal(await server.command('EXISTS', holders('k')), 0)
  assert.equal(await other.acquire('k', () => 'five'), 'five')
})

test('a counted request on a name held as a mutex is refused naming permits (a mutex counts as 1)', async (t) => {
  const { name, locks: [counted] } = locks(t, 1, { permits: 2 })
  const mutex = new AsyncLock({ redis: server.url, name })
  t.after(() => mutex.close())
  const held = await mutex.lock('k')
  await assert.rejects(counted.acquire('k', () => {}), (err) => err instanceof TypeError && /option "permits" must be 1,.*got 2/.test(err.message))
  await held.release()
  assert.equal(await counted.acquire('k', () => 'counted'), 'counted')
})

test('a mutex request on a name held as a counted key is refused naming permits, on the fast path and behind a queue', async (t) => {
  const { name, locks: [counted] } = locks(t, 1, { permits: 2 })
  const mutex = new AsyncLock({ redis: server.url, name })
  t.after(() => mutex.close())
  const held = await counted.lock('k', { mode: 'shared' })
  // Without the check both would hold 'k' at once: the mutex's lease key is free.
  await assert.rejects(mutex.acquire('k', () => 'mutex'), (err) => err instanceof TypeError && /option "permits" must be 2,.*got 1/.test(err.message))
  await assert.rejects(mutex.lock(['other', 'k']), (err) => err instanceof TypeError && /option "permits" must be 2,.*"k".*got 1/.test(err.message))
  assert.equal(mutex.isBusy('other'), false, 'a refused multi-key request holds nothing')
  await held.release()
  assert.equal(await mutex.acquire('k', () => 'mutex'), 'mutex')
})

test('isBusy sees counted holders and waiters in Redis', async (t) => {
  const { locks: [a] } = locks(t, 1, { permits: 2 })
  assert.equal(a.isBusy('k'), false)
  const lease = await a.lock('k', { mode: 'shared' })
  assert.equal(a.isBusy('k'), true)
  await lease.release()
  assert.equal(a.isBusy('k'), false)
})

test('the watchdog renews every shared holder past its ttl', async (t) => {
  const { locks: [a, b] } = locks(t, 2, { permits: 2, ttl: 300 })
  const one = await a.lock('k', { mode: 'shared' })
  const two = await b.lock('k', { mode: 'shared' })
  await sleep(900)
  assert.equal(one.signal.aborted || two.signal.aborted, false)
  let third = false
  const waiting = a.lock('k', { mode: 'shared' }).then((l) => ((third = true), l))
  await sleep(100)
  assert.equal(third, false, 'both leases still count')
  await one.release()
  await (await waiting).release()
  await two.release()
})

test('nothing stays in Redis once the last holder and waiter are gone', async (t) => {
  const s = await startRedis()
  t.after(() => s.stop())
  const name = 'mem'
  const ls = [0, 1, 2].map(() => new AsyncLock({ redis: s.url, name, permits: 3, ttl: 200 }))
  t.after(() => Promise.all(ls.map((l) => l.close())))
  const jobs = []
  for (let i = 0; i < 60; i++) {
    const keys = i % 3 === 0 ? ['a', 'b'] : ['k' + (i % 4)]
    const opts = i % 5 === 0 ? { mode: 'exclusive' } : { weight: 1 + (i % 2) }
    jobs.push(ls[i % 3].acquire(keys, () => sleep(2), opts))
  }
  await Promise.all(jobs)
  assert.ok((await s.command('DBSIZE')) > 0)
  // Meta goes a ttl after the last grant, the ticket counter a liveness
  // window (3 s) after the last wait, as for the mutex.
  await waitFor('an empty Redis', async () => (await s.command('DBSIZE')) === 0, 6000)
})
