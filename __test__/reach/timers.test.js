'use strict'
// timeout, maxOccupationTime and maxExecutionTime on every reach. They are
// JS timers (setTimeout) except the Redis reach's `timeout`, which runs in
// the native client: the JS timers are driven with node:test's mock timers,
// so each test asserts the exact deadline without sleeping, and the Redis
// timeout is checked with real time, asserting only what a loaded machine
// cannot break (never before the deadline; eventually after it).

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { forEachReach, settled, outcome, eventually, mockClock, realSleep } = require('../helpers/reaches')

const TIMED_OUT = (key) => `async-lock timed out in queue ${key}`
const OCCUPIED = (key) => `Maximum occupation time is exceeded in queue ${key}`
const EXECUTED = (key) => `Maximum execution time is exceeded ${key}`

forEachReach((reach) => {
  /**
   * Starts `wait()` (a call that must time out after `ms`) and checks it
   * rejects with `message` at the deadline and not before.
   */
  async function timesOut(t, clock, ms, wait, message) {
    if (reach.jsTimeout) {
      const result = outcome(wait())
      await clock.tick(ms - 1)
      assert.equal(await settled(reach, result), false, `still waiting at ${ms - 1} ms`)
      await clock.tick(1)
      assert.equal((await result).error.message, message)
      return
    }
    // docs/compat.md#redis-reach "timeout": a timer in the native client,
    // real time: never before the deadline, and it does come.
    const started = performance.now()
    const { error } = await eventually(outcome(wait()), 'the timeout')
    const waited = performance.now() - started
    assert.equal(error.message, message)
    assert.ok(waited >= ms - 2, `rejected after ${waited.toFixed(1)} ms, before the ${ms} ms timeout`)
  }

  // The Redis timeout is real time: long enough to be clearly a timeout.
  const TIMEOUT = reach.jsTimeout ? 100 : 300

  test('timeout: async-lock\'s message at the deadline; the waiter leaves the queue; the next one is served', async (t) => {
    const clock = reach.jsTimeout ? mockClock(t) : null
    const lock = reach.make()
    const holder = await lock.lock('k')
    let ran = false
    await timesOut(t, clock, TIMEOUT, () => lock.acquire('k', () => (ran = true), { timeout: TIMEOUT }), TIMED_OUT('k'))
    await timesOut(t, clock, TIMEOUT, () => lock.lock('k', { timeout: TIMEOUT }), TIMED_OUT('k'))
    await reach.quiet()
    assert.deepEqual(lock.queues.k, [], 'the timed-out waiters left the queue (quirk 3, fixed)')
    const next = lock.acquire('k', () => 'next ran')
    await holder.release()
    assert.equal(await next, 'next ran')
    assert.equal(ran, false)
    assert.equal(lock.isBusy(), false)
  })

  test('timeout: the lock\'s is the default; Infinity waits without limit', async (t) => {
    const clock = reach.jsTimeout ? mockClock(t) : null
    const lock = reach.make({ timeout: TIMEOUT })
    const holder = await lock.lock('k')
    await timesOut(t, clock, TIMEOUT, () => lock.acquire('k', () => {}), TIMED_OUT('k'))
    await timesOut(t, clock, TIMEOUT, () => lock.lock('k'), TIMED_OUT('k'))
    // For lock(), 0 means the lock's timeout; Infinity means none.
    await timesOut(t, clock, TIMEOUT, () => lock.lock('k', { timeout: 0 }), TIMED_OUT('k'))
    const patient = lock.lock('k', { timeout: Infinity })
    const patientAcquire = reach.make().acquire('k', () => 'waited', { timeout: Infinity })
    if (clock) await clock.tick(10 * TIMEOUT)
    else await reach.quiet()
    assert.equal(await settled(reach, patient), false)
    await holder.release()
    await (await patient).release()
    // The other lock is another space on the in-process reaches: its key was free.
    assert.equal(await patientAcquire, 'waited')
  })

  test('timeout: a free key is granted at once, and the timer never fires on the holder', async (t) => {
    const clock = reach.jsTimeout ? mockClock(t) : null
    const lock = reach.make()
    const lease = await lock.lock('k', { timeout: TIMEOUT })
    const value = await lock.acquire('j', () => 'ran', { timeout: TIMEOUT })
    assert.equal(value, 'ran')
    if (clock) await clock.tick(10 * TIMEOUT)
    else await reach.quiet()
    assert.equal(lock.isBusy('k'), true)
    assert.equal(await lease.release(), true)
  })

  test('timeout, multi-key: names the key still waited for; the free keys are not taken', async (t) => {
    const clock = reach.jsTimeout ? mockClock(t) : null
    const lock = reach.make()
    const holder = await lock.lock('k')
    // In process the message names the first key the request was still
    // waiting for (docs/compat.md, "multi-key options"). NOT DOCUMENTED for
    // the Redis reach, which names the request's first key whatever it
    // waited for (lib/spaces/redis.js `_ended`: denied(TIMED_OUT, 0)): pinned here
    // as it is so that a change is seen; docs/compat.md should say so, or
    // the reach should name the blocking key.
    const named = reach.name === 'redis' ? 'free' : 'k'
    await timesOut(t, clock, TIMEOUT, () => lock.lock(['free', 'k'], { timeout: TIMEOUT }), TIMED_OUT(named))
    await timesOut(t, clock, TIMEOUT, () => lock.acquire(['free', 'k'], () => {}, { timeout: TIMEOUT }), TIMED_OUT(named))
    assert.equal(lock.isBusy('free'), false)
    await holder.release()
    assert.equal(lock.isBusy(), false)
  })

  test('maxOccupationTime on a queued task: told at the deadline, it leaves the queue and never runs (quirk 2)', async (t) => {
    // A JS timer on every reach; docs/compat.md#redis-reach
    // "maxOccupationTime on a queued task": there too the waiter leaves the
    // Redis queue.
    const clock = mockClock(t)
    const lock = reach.make()
    const holder = await lock.lock('k')
    let ran = false
    const queued = outcome(lock.acquire('k', () => (ran = true), { maxOccupationTime: 100 }))
    await reach.queued(lock, 'k', 1)
    await clock.tick(99)
    assert.equal(await settled(reach, queued), false)
    await clock.tick(1)
    assert.equal((await queued).error.message, OCCUPIED('k'))
    await holder.release()
    // Nobody was left waiting, so nobody holds the key. On Redis the waiter
    // leaves the queue in a script of its own; if a grant won that race it
    // is passed straight on: a few round trips, where a grant kept would
    // hold the key for its 10 s ttl. So: free within 5 s, polled.
    const twin = reach.twin(lock) || lock
    const free = (async () => {
      while (twin.isBusy('k')) await realSleep(10)
    })()
    await eventually(free, 'the key freed after the release', 5000)
    assert.equal(ran, false)
  })

  test('maxOccupationTime on a running task: told at the deadline, the key is kept until fn finishes', async (t) => {
    const clock = mockClock(t)
    const lock = reach.make()
    let started
    const running = new Promise((resolve) => (started = resolve))
    let finish
    const result = outcome(
      lock.acquire(
        'k',
        () => {
          started()
          return new Promise((resolve) => (finish = resolve))
        },
        { maxOccupationTime: 100 },
      ),
    )
    await running
    await clock.tick(100)
    assert.equal((await result).error.message, OCCUPIED('k'))
    const next = lock.acquire('k', () => 'next')
    assert.equal(await settled(reach, next), false, 'no second holder while fn runs')
    finish()
    assert.equal(await next, 'next')
  })

  test('maxExecutionTime is a lease: at the deadline the caller is told and the key passes on; the late finish frees nothing (quirk 1)', async (t) => {
    const clock = mockClock(t)
    const lock = reach.make()
    let finishA
    let started
    const aStarted = new Promise((resolve) => (started = resolve))
    const a = outcome(
      lock.acquire(
        'k',
        () => {
          started()
          return new Promise((resolve) => (finishA = resolve))
        },
        { maxExecutionTime: 100 },
      ),
    )
    await aStarted
    let finishB
    const bStarted = []
    const b = lock.acquire('k', () => {
      bStarted.push('B')
      return new Promise((resolve) => (finishB = resolve))
    })
    const c = lock.acquire('k', () => 'C')
    await clock.tick(99)
    assert.equal(await settled(reach, a), false)
    assert.deepEqual(bStarted, [])
    await clock.tick(1)
    assert.equal((await a).error.message, EXECUTED('k'))
    while (bStarted.length === 0) await reach.quiet()
    // A finishes late: that releases nothing, so C still waits for B.
    finishA()
    assert.equal(await settled(reach, c), false, 'the late finish did not let C in beside B')
    finishB()
    await b
    assert.equal(await c, 'C')
    assert.equal(lock.isBusy(), false)
  })
})
