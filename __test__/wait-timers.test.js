'use strict'
// `timeout` on a queued call with real timers (lib/wait-timers.js): waiters
// share one Node timer per deadline bucket. What a user observes stays
// async-lock's: every waiter still times out, none before its timeout,
// each at most a bucket late (asserted only loosely: the machine may be
// loaded), and a waiter granted in time never times out. The mock-timer
// suites (reach/timers.test.js) pin exact deadlines.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const AsyncLock = require('..')

const busyWait = (ms) => {
  const end = performance.now() + ms
  while (performance.now() < end);
}

test('a burst of waiters across several buckets: each times out, none before its timeout, in call order', async () => {
  const lock = new AsyncLock()
  let open
  lock.acquire('k', () => new Promise((r) => (open = r)))
  const order = []
  const waits = []
  for (let i = 0; i < 300; i++) {
    // Spread over a few milliseconds, so the waiters fall in several buckets.
    if (i % 50 === 0) busyWait(0.7)
    const started = performance.now()
    waits.push(
      lock.acquire('k', () => assert.fail('ran'), { timeout: 30 }).then(
        () => assert.fail('resolved'),
        (err) => {
          order.push(i)
          return { err, waited: performance.now() - started }
        },
      ),
    )
  }
  const results = await Promise.all(waits)
  open()
  for (const { err, waited } of results) {
    assert.equal(err.message, 'async-lock timed out in queue k')
    assert.ok(waited >= 30, `timed out after ${waited.toFixed(2)} ms, before its 30 ms timeout`)
  }
  assert.deepEqual(order, [...order].sort((a, b) => a - b), 'time-outs in call order')
})

test('a waiter granted in time never times out, while its bucket still fires for the others', async () => {
  const lock = new AsyncLock()
  let open
  lock.acquire('k', () => new Promise((r) => (open = r)))
  let release
  const first = lock.acquire('k', () => new Promise((r) => (release = r)), { timeout: 40 })
  const second = lock.acquire('k', () => 'ran', { timeout: 40 })
  const secondOutcome = second.then(
    () => 'ran',
    (err) => err.message,
  )
  open()
  await new Promise((r) => setTimeout(r, 80))
  assert.equal(await secondOutcome, 'async-lock timed out in queue k')
  release('first')
  assert.equal(await first, 'first')
})

test('once every waiter of a bucket is granted, its timer is gone: nothing keeps the process alive', async () => {
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = timers()
  const lock = new AsyncLock()
  let open
  lock.acquire('k', () => new Promise((r) => (open = r)))
  const waits = []
  for (let i = 0; i < 100; i++) waits.push(lock.acquire('k', () => i, { timeout: 60000 }))
  assert.ok(timers() > before, 'the waiters are timed')
  open()
  await Promise.all(waits)
  assert.equal(timers(), before)
})
