'use strict'
// lock.stats() on every reach: counters (acquisitions, timeouts, refusals,
// aborts, errors, holding), wait-time percentiles from the fixed histogram,
// and the busy keys, most waiters first and at most `top` of them.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { forEachReach, outcome, mockClock, realSleep, AsyncLock } = require('./helpers/reaches')
const { bucketOf, bucketLimitMs } = require('../lib/trace')

forEachReach((reach) => {
  test('counters: acquisitions, errors, holding; an unused lock reads all zero', async () => {
    const lock = reach.make()
    const empty = lock.stats()
    assert.equal(empty.reach, reach.name)
    assert.equal(empty.view, reach.name === 'isolate' ? 'isolate' : 'process')
    for (const field of ['acquisitions', 'timeouts', 'refusals', 'aborts', 'lost', 'errors', 'holding', 'busyKeys', 'waiting']) {
      assert.equal(empty[field], 0, field)
    }
    assert.deepEqual(empty.wait, { count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 })
    assert.deepEqual(empty.keys, [])
    for (let i = 0; i < 5; i++) await lock.acquire('a', () => i)
    await outcome(lock.acquire('a', () => Promise.reject(new Error('no'))))
    const lease = await lock.lock(['a', 'b'])
    const held = lock.stats()
    assert.equal(held.acquisitions, 7)
    assert.equal(held.errors, 1)
    assert.equal(held.holding, 1)
    assert.equal(held.wait.count, 7)
    await lease.release()
    assert.equal(lock.stats().holding, 0)
  })

  test('timeouts, refusals and aborts are counted', async (t) => {
    const clock = reach.jsTimeout ? mockClock(t) : null
    const lock = reach.make({ maxPending: 1 })
    const holder = await lock.lock('k')
    const timedOut = outcome(lock.acquire('k', () => 1, { timeout: 50 }))
    if (clock) await clock.tick(50)
    assert.match((await timedOut).error.message, /timed out/)
    const controller = new AbortController()
    const aborted = outcome(lock.lock('k', { signal: controller.signal }))
    await reach.queued(lock, 'k', 1)
    // The queue holds one: the next call is refused.
    assert.match((await outcome(lock.acquire('k', () => 1))).error.message, /Too many pending/)
    controller.abort()
    assert.equal((await aborted).error.name, 'AbortError')
    // An already-aborted signal is an abort too.
    await outcome(lock.lock('k', { signal: AbortSignal.abort() }))
    const stats = lock.stats()
    assert.equal(stats.timeouts, 1)
    assert.equal(stats.refusals, 1)
    assert.equal(stats.aborts, 2)
    assert.equal(stats.acquisitions, 1)
    await holder.release()
  })

  test('wait percentiles: free grants wait 0; a queued grant records its wait, percentiles at most max', async () => {
    const lock = reach.make()
    for (let i = 0; i < 98; i++) await lock.acquire('free-' + (i % 3), () => i)
    const holder = await lock.lock('k')
    const waiters = [lock.acquire('k', () => 1), lock.acquire('k', () => 2)]
    await reach.queued(lock, 'k', 2)
    await realSleep(40)
    await holder.release()
    await Promise.all(waiters)
    const { wait, acquisitions } = lock.stats()
    assert.equal(acquisitions, 101)
    assert.equal(wait.count, 101)
    assert.ok(wait.max >= 35, `max ${wait.max}`)
    if (reach.name !== 'redis') {
      // In process a free key is granted inside the call: no wait at all.
      // (On Redis every grant takes a round trip, and records it.)
      assert.equal(wait.p50, 0)
      assert.equal(wait.p90, 0)
    }
    assert.ok(wait.p99 >= 35 / 1.5 && wait.p99 <= wait.max, `p99 ${wait.p99}, max ${wait.max}`)
    assert.ok(wait.p50 <= wait.p90 && wait.p90 <= wait.p99 && wait.p99 <= wait.p999 && wait.p999 <= wait.max)
  })

  test('busy keys: most waiters first, at most `top`; busyKeys and waiting count them all', async () => {
    const lock = reach.make()
    const holders = []
    const waiting = []
    // key-i has i waiters behind its holder.
    for (let i = 0; i < 5; i++) {
      holders.push(await lock.lock(`key-${i}`))
      for (let j = 0; j < i; j++) waiting.push(lock.acquire(`key-${i}`, () => j))
    }
    for (let i = 1; i < 5; i++) await reach.queued(lock, `key-${i}`, i)
    const stats = lock.stats({ top: 3 })
    assert.deepEqual(stats.keys, [
      { key: 'key-4', holders: 1, waiters: 4 },
      { key: 'key-3', holders: 1, waiters: 3 },
      { key: 'key-2', holders: 1, waiters: 2 },
    ])
    assert.equal(stats.busyKeys, 5)
    assert.equal(stats.waiting, 10)
    assert.equal(lock.stats().keys.length, 5, 'default top 10')
    assert.deepEqual(lock.stats({ top: 0 }).keys, [])
    for (const h of holders) await h.release()
    await Promise.all(waiting)
    assert.deepEqual(lock.stats().keys, [])
  })
})

test('stats() is per AsyncLock: two locks on one process space count their own calls', async () => {
  const name = `stats-${process.pid}`
  const a = new AsyncLock({ scope: 'process', name })
  const b = new AsyncLock({ scope: 'process', name })
  await a.acquire('k', () => 1)
  await a.acquire('k', () => 1)
  await b.acquire('k', () => 1)
  assert.equal(a.stats().acquisitions, 2)
  assert.equal(b.stats().acquisitions, 1)
  assert.equal(a.stats().name, name)
})

test('bad options are a TypeError naming the argument', () => {
  const lock = new AsyncLock()
  assert.throws(() => lock.stats(5), { name: 'TypeError', message: /options/ })
  assert.throws(() => lock.stats({ top: -1 }), { name: 'TypeError', message: /options\.top/ })
  assert.throws(() => lock.stats({ top: 1.5 }), { name: 'TypeError', message: /options\.top/ })
})

test('the histogram: fixed 64 buckets, two per power of two of microseconds; each bound is its bucket\'s (exclusive) top', () => {
  assert.equal(bucketOf(0), 0)
  assert.equal(bucketOf(0.5), 0)
  let previous = 0
  for (let us = 1; us < 2 ** 33; us = Math.ceil(us * 1.1)) {
    const i = bucketOf(us)
    assert.ok(i >= previous && i < 64, `${us} µs -> ${i}`)
    assert.ok(us / 1000 < bucketLimitMs(i) || i === 63, `${us} µs under bucket ${i}'s bound ${bucketLimitMs(i)}`)
    assert.ok(us / 1000 >= bucketLimitMs(i - 1), `${us} µs not below bucket ${i - 1}'s bound`)
    previous = i
  }
  assert.equal(bucketOf(2 ** 40), 63)
})
