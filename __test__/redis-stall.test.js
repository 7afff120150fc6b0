'use strict'
// Issue 17, defect 1: a request its caller gave up leaves no lease behind.
// Redis is stalled (SIGSTOP of the test's own redis-server) across each
// timeout the client has: the acquire timeout before the first answer, the
// cancel grace of a queued waiter whose grant raced its cancel, an abort,
// the 5 s command timeout, and the release path. Whatever was asked during
// the stall, once Redis resumes the next acquirer (another connection) gets
// the key within about a second, not a lease ttl (10 s) or a hand-off claim
// (3 s) later. The short scenarios repeat with the stall starting just
// before or just after the call, to catch the races either way.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const AsyncLock = require('../index.js')
const { startRedis } = require('../support/redis-harness')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const now = () => performance.now()

/** How long after Redis resumes the next acquirer may wait, at most. */
const NEXT_WITHIN_MS = 1000
const REPEATS = 4

/**
 * Locks under one name on one server: `a` and `b` share this process's
 * connection (so the order of their commands in Redis is the order they
 * were sent), `next` has its own (another URL string for the same server).
 */
async function setup(t) {
  const server = await startRedis()
  const name = 'stall'
  const a = new AsyncLock({ redis: server.url, name })
  const b = new AsyncLock({ redis: server.url, name })
  const next = new AsyncLock({ redis: server.url + '/0', name })
  t.after(async () => {
    if (server.paused) server.resume()
    await Promise.all([a.close(), b.close(), next.close()])
    await server.stop()
  })
  // Both connections made before any stall.
  await a.lock('warm-a', { timeout: 3000 }).then((l) => l.release())
  await next.lock('warm-next', { timeout: 3000 }).then((l) => l.release())
  const waits = []
  /** The next acquirer, after the resume: its wait, asserted and recorded. */
  const takeNext = async (key, resumedAt, what) => {
    const lease = await next.lock(key, { timeout: 8000 })
    const waited = now() - resumedAt
    await lease.release()
    waits.push(Math.round(waited))
    assert.ok(waited < NEXT_WITHIN_MS, `${what}: the next acquirer waited ${Math.round(waited)} ms after Redis resumed`)
  }
  return { server, a, b, next, takeNext, waits }
}

/** Starts `call` with the stall beginning just before it (even i) or just after it (odd i). */
function stallAround(server, i, call) {
  if (i % 2 === 0) {
    server.pause()
    return call()
  }
  const settled = call()
  server.pause()
  return settled
}

const settle = (p) => p.then(() => 'resolved', (err) => err)

test('a timed-out acquire() during a Redis stall leaves no lease: the next acquirer gets the key at once', async (t) => {
  const { server, a, takeNext, waits } = await setup(t)
  for (let i = 0; i < REPEATS; i++) {
    const key = 'acquire-' + i
    const called = now()
    const outcome = settle(stallAround(server, i, () => a.acquire(key, () => {}, { timeout: 100 })))
    await sleep(400 - (now() - called))
    server.resume()
    const resumedAt = now()
    const result = await outcome
    // Given up at its timeout (or, if its ACQUIRE got through before the stall, ran).
    assert.ok(result === 'resolved' || result instanceof Error, String(result))
    await takeNext(key, resumedAt, `acquire() given up, run ${i}`)
  }
  t.diagnostic(`next acquirer's wait after resume (ms): ${waits.join(', ')}`)
})

test('a timed-out lock() during a Redis stall leaves no lease: the next acquirer gets the key at once', async (t) => {
  const { server, a, takeNext, waits } = await setup(t)
  for (let i = 0; i < REPEATS; i++) {
    const key = 'lock-' + i
    const called = now()
    const outcome = stallAround(server, i, () => a.lock(key, { timeout: 100 })).then(
      (lease) => lease.release().then(() => 'resolved'),
      (err) => err,
    )
    await sleep(400 - (now() - called))
    server.resume()
    const resumedAt = now()
    const result = await outcome
    assert.ok(result === 'resolved' || result instanceof Error, String(result))
    await takeNext(key, resumedAt, `lock() given up, run ${i}`)
  }
  t.diagnostic(`next acquirer's wait after resume (ms): ${waits.join(', ')}`)
})

// The holder's RELEASE and the waiter's CANCEL share one connection, so on
// resume Redis runs the RELEASE (which hands the key to the waiter) and
// then the CANCEL, which finds the grant won: its answer comes long after
// the cancel grace (250 ms), when the waiter has already been told it
// timed out. That grant must not stay with nobody.
for (const how of ['timeout', 'abort']) {
  test(`a waiter given up (${how}) whose grant wins in Redis after the cancel grace: the grant is released`, async (t) => {
    const { server, a, b, takeNext, waits } = await setup(t)
    for (let i = 0; i < REPEATS; i++) {
      const key = `${how}-${i}`
      const held = await a.lock(key, { timeout: 3000 })
      const controller = new AbortController()
      const waiting =
        how === 'timeout'
          ? settle(b.acquire(key, () => {}, { timeout: 300 }))
          : settle(b.lock(key, { signal: controller.signal }).then((lease) => lease.release()))
      const started = now()
      await sleep(100)
      server.pause()
      const released = settle(held.release())
      if (how === 'abort') {
        await sleep(300 - (now() - started))
        controller.abort()
      }
      // The CANCEL goes out at ~300 ms; Redis answers at ~700 ms.
      await sleep(700 - (now() - started))
      server.resume()
      const resumedAt = now()
      const result = await waiting
      assert.ok(result instanceof Error, `the waiter gave up: ${result}`)
      assert.equal(await released, 'resolved')
      await takeNext(key, resumedAt, `waiter given up by ${how}, run ${i}`)
    }
    t.diagnostic(`next acquirer's wait after resume (ms): ${waits.join(', ')}`)
  })
}

test('a Redis stall past the 5 s command timeout: failed acquires, given-up waiters and releases leave no lease', async (t) => {
  const { server, a, b, takeNext, waits } = await setup(t)
  const held = await a.lock('released-in-stall', { timeout: 3000 })
  server.pause()
  const started = now()
  // No timeout of its own: the command timeout fails its ACQUIRE, which is
  // re-run (an outage is ridden out, up to a minute) until Redis answers.
  const noTimeout = settle(a.acquire('no-timeout', () => {}))
  // Gives up at once; its CANCEL is itself unanswered past the command
  // timeout and is retried.
  const quick = settle(b.acquire('quick', () => {}, { timeout: 100 }))
  // The release path: the holder lets go while Redis does not answer.
  const released = held.release().then(
    (ok) => ok,
    (err) => err,
  )
  await sleep(5800 - (now() - started))
  server.resume()
  const resumedAt = now()
  assert.equal(await noTimeout, 'resolved', 'granted once Redis answered (its callback ran), not failed')
  assert.ok((await quick) instanceof Error)
  const release = await released
  assert.ok(release === true || release === false || release.code === 'KEYED_LOCK_REDIS', String(release))
  await takeNext('no-timeout', resumedAt, 'acquire() that rode out the stall')
  await takeNext('quick', resumedAt, 'acquire() given up, its CANCEL retried past the command timeout')
  await takeNext('released-in-stall', resumedAt, 'released during the stall')
  t.diagnostic(`next acquirer's wait after resume (ms): ${waits.join(', ')}`)
})
