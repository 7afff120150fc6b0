'use strict'
// The isolate reach refuses a call over maxPending from the waiter counts
// the Rust table keeps beside its key words, without calling it: those
// counts must follow every way a waiter arrives and leaves (queued, granted,
// timed out), per key of a multi-key call.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const AsyncLock = require('..')
const { mockTimers } = require('./helpers')

const outcome = (p) => p.then((v) => ({ value: v }), (err) => ({ error: err.message }))
const tick = () => new Promise((r) => setImmediate(r))

test('maxPending counts live waiters as they queue, are granted and time out', async (t) => {
  // A mock clock: on a loaded machine a real 20 ms timeout fired before the
  // steps that count on it still waiting.
  mockTimers(t)
  const lock = new AsyncLock({ maxPending: 2 })
  let open
  lock.acquire('a', () => new Promise((r) => (open = r)))
  let releaseFirst
  const first = outcome(lock.acquire('a', () => new Promise((r) => (releaseFirst = r))))
  const second = outcome(lock.acquire('a', () => 'second', { timeout: 20 }))
  assert.deepEqual(await outcome(lock.acquire('a', () => 'over')), { error: 'Too many pending tasks in queue a' })
  // A multi-key call is refused on the full key, named as the caller wrote it.
  assert.deepEqual(await outcome(lock.acquire(['b', 'a'], () => 'over')), { error: 'Too many pending tasks in queue a' })
  assert.equal(lock.isBusy('b'), false, 'a refused call holds nothing')
  open()
  await tick()
  // first is running now: one waiter left, so one more fits.
  const third = outcome(lock.acquire('a', () => 'third'))
  assert.deepEqual(await outcome(lock.acquire('a', () => 'over')), { error: 'Too many pending tasks in queue a' })
  t.mock.timers.tick(20)
  assert.deepEqual(await second, { error: 'async-lock timed out in queue a' })
  // second timed out: room again.
  const fourth = outcome(lock.acquire('a', () => 'fourth'))
  releaseFirst('first')
  assert.deepEqual(await first, { value: 'first' })
  assert.deepEqual(await third, { value: 'third' })
  assert.deepEqual(await fourth, { value: 'fourth' })
  assert.equal(lock.isBusy('a'), false)
})

test('the counts survive the table growing (many keys interned while one key has waiters)', async () => {
  const lock = new AsyncLock({ maxPending: 1 })
  let open
  lock.acquire('k', () => new Promise((r) => (open = r)))
  const waiter = lock.acquire('k', () => 'waited')
  const holds = []
  for (let i = 0; i < 5000; i++) holds.push(lock.acquire('key' + i, () => new Promise(() => {})))
  assert.deepEqual(await outcome(lock.acquire('k', () => 'over')), { error: 'Too many pending tasks in queue k' })
  open()
  assert.equal(await waiter, 'waited')
})
