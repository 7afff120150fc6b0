'use strict'
// lock.lock() leases on every reach: fields, release() true then false,
// `await using`, the shared FIFO with acquire(), `signal` (cancelling a
// wait), `lease.signal` (a lost lease) and bad arguments. Each test runs
// once per reach (helpers/reaches.js); differences are named where they
// are asserted.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { getEventListeners } = require('node:events')
const { forEachReach, settled, outcome, eventually, mockClock, AsyncLock } = require('../helpers/reaches')

const asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')

forEachReach((reach) => {
  test('a lease holds its key until release(): keys, token, tokens, signal', async () => {
    const lock = reach.make()
    const lease = await lock.lock('k')
    assert.deepEqual(lease.keys, ['k'])
    assert.ok(Number.isSafeInteger(lease.token) && lease.token > 0, `token ${lease.token}`)
    assert.deepEqual(lease.tokens, [lease.token])
    assert.ok(lease.signal instanceof AbortSignal)
    assert.equal(lease.signal.aborted, false)
    assert.equal(lock.isBusy('k'), true)
    assert.throws(() => {
      lease.token = 1
    }, TypeError)
    assert.throws(() => lease.keys.push('x'), TypeError)
    assert.equal(await lease.release(), true)
    assert.equal(lock.isBusy('k'), false)
    // Released is not lost: the signal stays quiet.
    assert.equal(lease.signal.aborted, false)
    // Keys are normalized as acquire() normalizes them: 1 and '1' are one key.
    const num = await lock.lock(1)
    assert.deepEqual(num.keys, ['1'])
    assert.equal(lock.isBusy('1'), true)
    await num.release()
    assert.equal(lock.isBusy(), false)
  })

  test('release() is idempotent: true once, then false, and hands the key on exactly once', async () => {
    const lock = reach.make()
    const lease = await lock.lock('k')
    const next = lock.lock('k')
    const runs = []
    const after = lock.acquire('k', () => runs.push('after'))
    await reach.queued(lock, 'k', 2)
    assert.deepEqual(await Promise.all([lease.release(), lease.release()]), [true, false])
    assert.equal(await lease.release(), false)
    const second = await next
    // The later release() calls did not free the key under the new holder.
    assert.equal(await settled(reach, after), false)
    assert.deepEqual(runs, [])
    assert.equal(await second.release(), true)
    await after
    assert.deepEqual(runs, ['after'])
    assert.equal(lock.isBusy(), false)
  })

  test('await using: [Symbol.asyncDispose]() is release()', async () => {
    const lock = reach.make()
    const lease = await lock.lock('k')
    assert.equal(typeof lease[asyncDispose], 'function')
    assert.equal(await lease[asyncDispose](), undefined)
    assert.equal(lock.isBusy('k'), false)
    assert.equal(await lease.release(), false, 'dispose was the release')
    // What `await using` compiles to (TypeScript's downlevel form runs on
    // every Node this package supports; Node 24 runs the syntax itself).
    const log = []
    {
      const held = await lock.lock('k')
      try {
        log.push(lock.isBusy('k'))
        throw new Error('inside')
      } catch (err) {
        log.push(err.message)
      } finally {
        await held[asyncDispose]()
      }
    }
    log.push(lock.isBusy('k'))
    assert.deepEqual(log, [true, 'inside', false])
  })

  test('leases and acquire() callers share one FIFO queue', async () => {
    const lock = reach.make()
    const order = []
    const first = await lock.lock('k')
    const a1 = lock.acquire('k', () => order.push('acquire 1'))
    const l2 = lock.lock('k').then((lease) => (order.push('lease 2'), lease))
    const a3 = lock.acquire('k', () => order.push('acquire 3'))
    const l4 = lock.lock('k').then((lease) => (order.push('lease 4'), lease))
    assert.equal(lock.queues.k.length, 4)
    await reach.queued(lock, 'k', 4)
    await first.release()
    const second = await l2
    // acquire 3 waits while lease 2 is held, however long that is.
    assert.equal(await settled(reach, a3), false)
    assert.deepEqual(order, ['acquire 1', 'lease 2'])
    await second.release()
    await a1
    await a3
    const fourth = await l4
    assert.deepEqual(order, ['acquire 1', 'lease 2', 'acquire 3', 'lease 4'])
    await fourth.release()
    assert.equal(lock.isBusy(), false)
  })

  test('an aborted signal rejects with its reason at once and queues nothing', async () => {
    const lock = reach.make()
    const reason = new Error('stop')
    assert.equal((await outcome(lock.lock('free', { signal: AbortSignal.abort(reason) }))).error, reason)
    assert.equal(lock.isBusy('free'), false, 'not even a free key is taken')
    const holder = await lock.lock('k')
    assert.equal((await outcome(lock.lock('k', { signal: AbortSignal.abort(reason) }))).error, reason)
    assert.deepEqual(lock.queues.k, [])
    // Without a reason: the AbortError every Node API gives.
    assert.equal((await outcome(lock.lock('k', { signal: AbortSignal.abort() }))).error.name, 'AbortError')
    await holder.release()
    assert.equal(lock.isBusy(), false)
  })

  test('aborting while waiting: rejects with the reason, leaves the queue, the next waiter is served', async () => {
    const lock = reach.make()
    const holder = await lock.lock('k')
    const controller = new AbortController()
    const aborted = outcome(lock.lock('k', { signal: controller.signal }))
    const next = lock.lock('k')
    assert.equal(lock.queues.k.length, 2)
    await reach.queued(lock, 'k', 2)
    const reason = new Error('user gave up')
    controller.abort(reason)
    assert.equal((await aborted).error, reason)
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0, 'the listener is removed')
    await reach.quiet()
    assert.equal(lock.queues.k.length, 1)
    await holder.release()
    const second = await next
    assert.deepEqual(second.keys, ['k'])
    await second.release()

    // A multi-key waiter that aborts unblocks the waiter behind it on a free key.
    const b = await lock.lock('b')
    const c2 = new AbortController()
    const multi = outcome(lock.lock(['a', 'b'], { signal: c2.signal }))
    const onA = lock.lock('a')
    assert.equal(await settled(reach, onA), false, 'FIFO: behind the multi-key request on a')
    c2.abort()
    assert.equal((await multi).error.name, 'AbortError')
    await (await onA).release()
    await b.release()
    assert.equal(lock.isBusy(), false)
  })

  test('a granted lease ignores its signal from then on', async () => {
    const lock = reach.make()
    const controller = new AbortController()
    const free = await lock.lock('k', { signal: controller.signal })
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0)
    const waiting = lock.lock('k', { signal: controller.signal })
    await reach.queued(lock, 'k', 1)
    await free.release()
    const lease = await waiting
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0)
    controller.abort()
    await reach.quiet()
    assert.equal(lease.signal.aborted, false)
    assert.equal(lock.isBusy('k'), true)
    assert.equal(await lease.release(), true)
  })

  test('a lease ignores maxOccupationTime and maxExecutionTime: in process it is never lost; on Redis a lost lease aborts its signal', async (t) => {
    if (reach.name === 'redis') {
      // docs/compat.md#redis-reach "a lost lease": a lease in Redis can
      // vanish; the watchdog (every ttl/3) finds it gone and the signal
      // aborts once with LockLostError; release() then resolves false.
      const lock = reach.make({ ttl: 900 })
      const lease = await lock.lock('k')
      const lost = new Promise((resolve) => lease.signal.addEventListener('abort', () => resolve(lease.signal.reason)))
      // The lease itself is `<prefix>:{<name>:<key>}:l` (docs/redis-keys.md).
      await reach.server.command('DEL', reach.leaseKey(lock, 'k'))
      const reason = await eventually(lost, 'the lost-lease signal')
      assert.ok(reason instanceof AsyncLock.LockLostError)
      assert.equal(reason.code, 'ELOCKLOST')
      assert.equal(reason.key, 'k')
      assert.equal(reason.token, lease.token)
      assert.equal(await lease.release(), false)
      return
    }
    // In process a lease is never lost: maxOccupationTime and
    // maxExecutionTime do not apply to it (docs/compat.md#leases); only
    // release() ends it.
    const clock = mockClock(t)
    const lock = reach.make({ maxOccupationTime: 5, maxExecutionTime: 5 })
    const lease = await lock.lock('k')
    const waiting = lock.lock('k')
    await clock.tick(1000)
    assert.equal(lease.signal.aborted, false)
    assert.equal(await settled(reach, waiting), false)
    assert.equal(await lease.release(), true)
    await (await waiting).release()
  })

  test('the returned promise is native, whatever the Promise option', async () => {
    const Bluebird = require('bluebird')
    const lock = reach.make({ Promise: Bluebird })
    const pending = lock.lock('k')
    assert.equal(Object.getPrototypeOf(pending), Promise.prototype)
    const lease = await pending
    assert.equal(Object.getPrototypeOf(lease.release()), Promise.prototype)
    const viaOption = lock.acquire('k', () => {})
    assert.ok(viaOption instanceof Bluebird, 'acquire() uses the option')
    await viaOption
    const closing = lock.close()
    assert.equal(Object.getPrototypeOf(closing), Promise.prototype)
    await closing
  })

  test('bad arguments reject with a TypeError naming them, before anything is locked', async () => {
    const lock = reach.make()
    const cases = [
      [[undefined], /keyed-lock: key must be/],
      [[{}], /keyed-lock: key must be/],
      [[[]], /keyed-lock: key must be .*; got an array/],
      [[['a', ['b']]], /keyed-lock: key\[1\] must be/],
      [['k', 5], /keyed-lock: options must be an object; got 5/],
      [['k', { timeout: -1 }], /keyed-lock: options\.timeout must be/],
      [['k', { timeout: '5' }], /keyed-lock: options\.timeout must be .*; got "5"/],
      [['k', { timeout: 2 ** 31 }], /keyed-lock: options\.timeout must be/],
      [['k', { signal: {} }], /keyed-lock: options\.signal must be an AbortSignal; got an object/],
    ]
    for (const [args, message] of cases) {
      let result
      assert.doesNotThrow(() => (result = lock.lock(...args)))
      await assert.rejects(result, { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message })
    }
    // Bad input is reported before an aborted signal.
    await assert.rejects(lock.lock({}, { signal: AbortSignal.abort() }), TypeError)
    assert.equal(lock.isBusy(), false)
    // null options are no options.
    await (await lock.lock('k', null)).release()
  })
})
