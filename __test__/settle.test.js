'use strict'
// The promise-mode hot path: a fn that returns a plain value settles its
// caller one microtask after it ran, through a ring shared by every lock
// (lib/task.js, settleLater), and every lock shares one shape.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { AsyncLockOracle, KeyedLock } = require('./helpers')

test('plain values, promises and throws: each caller gets its own fn outcome, in FIFO order, as async-lock gives them', async () => {
  // Several keys and locks at once, thousands in flight (the ring grows and
  // wraps), with fns of every kind interleaved.
  const run = async (AsyncLock) => {
    const locks = [new AsyncLock({ maxPending: Infinity }), new AsyncLock({ maxPending: Infinity })]
    const log = []
    const all = []
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 3000; i++) {
        const lock = locks[i % 2]
        const key = 'k' + (i % 3)
        const kind = i % 7
        const fn =
          kind === 0
            ? async () => 'p' + i
            : kind === 1
              ? () => {
                  throw new Error('e' + i)
                }
              : kind === 2
                ? () => undefined
                : kind === 3
                  ? () => null
                  : () => i
        all.push(
          lock.acquire(key, fn).then(
            (v) => log.push(`${i}:${String(v)}`),
            (err) => log.push(`${i}:${err.message}`),
          ),
        )
      }
      await Promise.all(all)
    }
    return log
  }
  const got = await run(KeyedLock)
  assert.equal(got.length, 9000)
  assert.deepEqual(got, await run(AsyncLockOracle))
})

test('a fn returning a plain value settles its caller after the microtasks fn queued, as async-lock does', async () => {
  const order = async (AsyncLock) => {
    const lock = new AsyncLock()
    const log = []
    const a = lock.acquire('k', () => {
      log.push('fn a')
      queueMicrotask(() => log.push('micro a'))
      return 1
    })
    const b = lock.acquire('k', () => {
      log.push('fn b')
      queueMicrotask(() => log.push('micro b'))
      return 2
    })
    a.then((v) => log.push('settled a ' + v))
    b.then((v) => log.push('settled b ' + v))
    await Promise.all([a, b])
    await null
    return log
  }
  const got = await order(KeyedLock)
  assert.deepEqual(got, await order(AsyncLockOracle))
  assert.ok(got.indexOf('micro a') < got.indexOf('settled a 1'), got.join(', '))
})

test('every lock has the same queues getter, so locks share one shape', () => {
  const getter = (lock) => Object.getOwnPropertyDescriptor(lock, 'queues').get
  const a = new KeyedLock()
  const b = new KeyedLock({ maxPending: 5, timeout: 10 })
  // A getter closure per lock gave every lock a map of its own: the hot
  // paths' loads on the lock went polymorphic across locks, and their
  // optimized code was thrown away whenever a lock was collected.
  assert.equal(getter(a), getter(b))
  assert.deepEqual(Object.keys(a.queues), [])
  let release
  a.acquire('x', () => new Promise((r) => (release = r)))
  a.acquire('x', () => {})
  assert.deepEqual(Object.keys(a.queues), ['x'])
  assert.equal(a.queues.x.length, 1)
  assert.deepEqual(Object.keys(b.queues), [])
  release()
})

test("maxPending's refusal is made in the acquire() call itself, as async-lock's is: its stack starts there", async () => {
  const firstFrame = async (AsyncLock, args) => {
    const lock = new AsyncLock({ maxPending: 1 })
    let open
    lock.acquire('k', () => new Promise((r) => (open = r)))
    lock.acquire('k', () => {})
    let err
    if (args === 'cb') {
      err = await new Promise((resolve) => lock.acquire('k', () => {}, resolve))
    } else {
      err = await lock.acquire('k', () => {}, args).catch((e) => e)
    }
    open()
    return err.stack.split('\n')[1].trim().split(' ')[1]
  }
  for (const args of [undefined, 'cb', { timeout: 1000 }]) {
    // Two frames fewer for V8 to walk than from inside lib/task.js: the
    // stack trace was most of a refusal's cost (W6p).
    assert.equal(await firstFrame(KeyedLock, args), 'AsyncLock.acquire', String(args))
    assert.equal(await firstFrame(AsyncLockOracle, args), 'AsyncLock.acquire', String(args))
  }
})
