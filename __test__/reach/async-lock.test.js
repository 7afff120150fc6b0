'use strict'
// The async-lock API on every reach: return values, callback and promise
// mode, messages, isBusy/queues, maxPending, skipQueue, domainReentrant,
// keys and close(). Each test runs once per reach (helpers/reaches.js);
// where a reach differs on purpose, the test names the documented
// difference and asserts it. The same scenarios against async-lock itself
// are __test__/differential.test.js.

const { test } = require('node:test')
// Loaded first: process.domain exists only once node:domain is.
const domain = require('node:domain')
const assert = require('node:assert/strict')
const { forEachReach, settled, outcome } = require('../helpers/reaches')

// async-lock 1.5.0's messages (differential.test.js checks keyed-lock's
// against async-lock's own on the isolate reach).
const TOO_MANY = (key) => `Too many pending tasks in queue ${key}`
const NO_FUNCTION = 'You must pass a function to execute'

forEachReach((reach) => {
  test('promise mode: fn\'s value, its rejection, a synchronous throw; a falsy rejection resolves (quirk 6, kept)', async () => {
    const lock = reach.make()
    assert.equal(await lock.acquire('k', () => 42), 42)
    assert.equal(await lock.acquire('k', async () => 'async'), 'async')
    const boom = new Error('boom')
    assert.equal((await outcome(lock.acquire('k', async () => Promise.reject(boom)))).error, boom)
    assert.equal(
      (await outcome(
        lock.acquire('k', () => {
          throw boom
        }),
      )).error,
      boom,
    )
    assert.deepEqual(await outcome(lock.acquire('k', () => Promise.reject(null))), { value: undefined })
    assert.equal(lock.isBusy(), false, 'every key was released')
  })

  test('callback mode (fn.length === 1): cb gets done\'s error and value, after the key is released', async () => {
    const lock = reach.make()
    const seen = await new Promise((resolve) => {
      lock.acquire(
        'k',
        (done) => done(null, 'value'),
        (err, ret) => resolve({ err, ret, busy: lock.isBusy('k') }),
      )
    })
    assert.deepEqual(seen, { err: null, ret: 'value', busy: false })
    const boom = new Error('boom')
    const failed = await new Promise((resolve) => lock.acquire('k', (done) => done(boom), (err) => resolve(err)))
    assert.equal(failed, boom)
    // A second done() is ignored.
    const calls = []
    await new Promise((resolve) => {
      lock.acquire(
        'k',
        (done) => {
          done(null, 1)
          done(null, 2)
        },
        (err, ret) => {
          calls.push(ret)
          resolve()
        },
      )
    })
    await reach.quiet()
    assert.deepEqual(calls, [1])
    // Without cb a callback-mode fn still gives a promise.
    assert.equal(await lock.acquire('k', (done) => done(null, 'p')), 'p')
  })

  test('when fn runs on a free key', async () => {
    const lock = reach.make()
    let ran = false
    const promise = lock.acquire('k', () => (ran = true))
    let cbRan = false
    lock.acquire('k2', (done) => done(null, 1), () => (cbRan = true))
    if (reach.synchronous) {
      // async-lock's order: a free key runs fn inside acquire(), and a
      // callback-mode fn that calls done() at once has its cb called too.
      assert.equal(ran, true)
      assert.equal(cbRan, true)
    } else {
      // docs/compat.md#redis-reach "when fn runs": never inside acquire(),
      // even on a free key; only Redis can say the key is free.
      assert.equal(ran, false)
      assert.equal(cbRan, false)
    }
    await promise
    assert.equal(ran, true)
  })

  test('a non-function fn throws async-lock\'s message synchronously; for an array the promise rejects', async () => {
    const lock = reach.make()
    assert.throws(() => lock.acquire('k', 'not a function'), { message: NO_FUNCTION })
    assert.throws(() => lock.acquire('k', null, () => {}), { message: NO_FUNCTION })
    await assert.rejects(lock.acquire(['a', 'b'], 42), { message: NO_FUNCTION })
    assert.equal(lock.isBusy(), false)
  })

  test('the same mistake is the same TypeError (code ERR_INVALID_ARG_VALUE, naming it) on every reach', async () => {
    const named = (what) => ({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: new RegExp(what) })
    for (const option of ['timeout', 'maxOccupationTime', 'maxExecutionTime']) {
      assert.throws(() => reach.make({ [option]: 'soon' }), named(`"${option}"`))
      assert.throws(() => reach.make({ [option]: -1 }), named(`"${option}"`))
    }
    assert.throws(() => reach.make({ Promise: 'yes' }), named('"Promise"'))
    const lock = reach.make()
    assert.throws(() => lock.acquire('k', () => {}, { timeout: 'soon' }), named('"timeout"'))
    assert.throws(() => lock.acquire(Object.create(null), () => {}), named('key'))
    await assert.rejects(lock.lock('k', { timeout: -1 }), named('options\\.timeout'))
    await reach.quiet()
    assert.equal(lock.isBusy(), false, 'nothing was locked')
  })

  test('isBusy(key), isBusy() and queues while a key is held and waited on', async () => {
    const lock = reach.make()
    const held = await lock.lock('k')
    assert.equal(lock.isBusy('k'), true)
    assert.equal(lock.isBusy('other'), false)
    assert.equal(lock.isBusy(), true)
    assert.deepEqual(Object.keys(lock.queues), ['k'])
    assert.equal(lock.queues.k.length, 0)
    const waiters = [lock.acquire('k', () => 'a'), lock.acquire('k', () => 'b')]
    assert.equal(lock.queues.k.length, 2, 'queues[key].length counts the waiters')
    await reach.queued(lock, 'k', 2)
    await held.release()
    assert.deepEqual(await Promise.all(waiters), ['a', 'b'])
    assert.equal(lock.isBusy('k'), false)
    assert.equal(lock.isBusy(), false)
    assert.deepEqual(Object.keys(lock.queues), [])
  })

  test('isBusy from another AsyncLock on the same space', async () => {
    const lock = reach.make()
    const twin = reach.twin(lock)
    const held = await lock.lock('k')
    if (reach.name === 'isolate') {
      // An isolate lock space is one AsyncLock instance: there is no twin.
      assert.equal(twin, null)
      assert.equal(reach.make().isBusy('k'), false)
    } else {
      assert.equal(twin.isBusy('k'), true, 'the key is shared')
      if (reach.name === 'redis') {
        // docs/compat.md#redis-reach "isBusy() (or a falsy key), queues":
        // this lock's own tasks in this process only, no round trip.
        assert.equal(twin.isBusy(), false)
        assert.deepEqual(Object.keys(twin.queues), [])
      } else {
        // The process space is one space for every thread and instance.
        assert.equal(twin.isBusy(), true)
        assert.deepEqual(Object.keys(twin.queues), ['k'])
      }
    }
    await held.release()
    if (twin) assert.equal(twin.isBusy('k'), false)
  })

  test('maxPending: the waiter past the limit is refused with async-lock\'s message; the others run', async () => {
    const lock = reach.make({ maxPending: 1 })
    const held = await lock.lock('k')
    const waiting = lock.acquire('k', () => 'ran')
    await reach.queued(lock, 'k', 1)
    let refusal = null
    lock.acquire('k', () => assert.fail('a refused task never runs'), (err) => (refusal = err))
    if (reach.synchronous) {
      // async-lock's order: cb is called before acquire() returns.
      assert.equal(refusal && refusal.message, TOO_MANY('k'))
    } else {
      // docs/compat.md#redis-reach "when fn runs": refusals too come after a
      // round trip, decided in Redis across processes ("maxPending").
      assert.equal(refusal, null)
      await reach.quiet()
      while (refusal === null) await reach.quiet()
      assert.equal(refusal.message, TOO_MANY('k'))
    }
    await assert.rejects(lock.acquire('k', () => {}), { message: TOO_MANY('k') })
    // skipQueue does not bypass it.
    await assert.rejects(lock.acquire('k', () => {}, { skipQueue: true }), { message: TOO_MANY('k') })
    // Per call, as async-lock merges it: `opts.maxPending || lock's`.
    const more = lock.acquire('k', () => 'more', { maxPending: 2 })
    await held.release()
    assert.deepEqual(await Promise.all([waiting, more]), ['ran', 'more'])
    assert.equal(lock.isBusy(), false)

    // maxPending 0: every task that would have to wait is refused; a free key still runs.
    const none = reach.make({ maxPending: 0 })
    const first = await none.lock('k')
    await assert.rejects(none.acquire('k', () => {}), { message: TOO_MANY('k') })
    await first.release()
    assert.equal(await none.acquire('k', () => 'free'), 'free')
  })

  test('maxPending counts the waiters of every AsyncLock on the space', async () => {
    const lock = reach.make({ maxPending: 1 })
    const twin = reach.twin(lock)
    const held = await lock.lock('k')
    const waiting = lock.acquire('k', () => 'ran')
    await reach.queued(lock, 'k', 1)
    if (twin === null) {
      // isolate: one instance is the whole space.
      await assert.rejects(lock.acquire('k', () => {}), { message: TOO_MANY('k') })
    } else {
      // process: the space is shared; redis: docs/compat.md#redis-reach
      // "maxPending": the waiters of every process in the key's Redis queue.
      await assert.rejects(twin.acquire('k', () => {}), { message: TOO_MANY('k') })
    }
    await held.release()
    assert.equal(await waiting, 'ran')
  })

  test('skipQueue goes to the front, the latest skipper first; on a free key it does nothing', async () => {
    const lock = reach.make()
    assert.equal(await lock.acquire('free', () => 'ran', { skipQueue: true }), 'ran')
    const held = await lock.lock('k')
    const order = []
    const runs = [
      lock.acquire('k', () => order.push('first')),
      lock.acquire('k', () => order.push('second')),
      lock.acquire('k', () => order.push('skip 1'), { skipQueue: true }),
      lock.acquire('k', () => order.push('skip 2'), { skipQueue: true }),
    ]
    await reach.queued(lock, 'k', 4)
    await held.release()
    await Promise.all(runs)
    // docs/compat.md#redis-reach "skipQueue": the front of the Redis queue,
    // ahead of every process's waiters, the latest first: the same order.
    assert.deepEqual(order, ['skip 2', 'skip 1', 'first', 'second'])
  })

  test('skipQueue from another AsyncLock on the space goes ahead of this one\'s waiters', async () => {
    const lock = reach.make()
    const twin = reach.twin(lock) || lock
    const held = await lock.lock('k')
    const order = []
    const first = lock.acquire('k', () => order.push('queued first'))
    await reach.queued(lock, 'k', 1)
    const skipper = twin.acquire('k', () => order.push('skipQueue'), { skipQueue: true })
    await reach.queued(lock, 'k', 2)
    await held.release()
    await Promise.all([first, skipper])
    assert.deepEqual(order, ['skipQueue', 'queued first'])
  })

  test('domainReentrant: a nested acquire in the holder\'s domain', async () => {
    // Made inside the domain: leaving the last domain sets process.domain to
    // undefined, and the constructor refuses domainReentrant without it (as
    // async-lock does), so a lock made after an earlier test's domain ended
    // would throw.
    const d = domain.create()
    const lock = d.run(() => reach.make({ domainReentrant: true }))
    const order = []
    let releaseOuter
    const outerMayFinish = new Promise((resolve) => (releaseOuter = resolve))
    let nested
    const outer = d.run(() =>
      lock.acquire('k', async () => {
        nested = lock.acquire('k', () => order.push('nested'))
        await outerMayFinish
        order.push('outer done')
      }),
    )
    while (nested === undefined) await reach.quiet()
    if (reach.name === 'redis') {
      // docs/compat.md#redis-reach "domainReentrant": accepted and ignored;
      // the nested acquire waits like any other.
      assert.equal(await settled(reach, nested), false)
    } else {
      // async-lock's behaviour: same domain as the holder, so it runs at once.
      await nested
      assert.deepEqual(order, ['nested'])
    }
    releaseOuter()
    await outer
    await nested
    assert.deepEqual(order, reach.name === 'redis' ? ['outer done', 'nested'] : ['nested', 'outer done'])
    assert.equal(lock.isBusy(), false)
  })

  test('keys: numbers and their strings are one key; symbols', async () => {
    const lock = reach.make()
    const held = await lock.lock(1)
    assert.equal(lock.isBusy('1'), true)
    assert.equal(await settled(reach, lock.acquire('1', () => {})), false, "'1' waits for 1")
    await held.release()
    const sym = Symbol('s')
    if (reach.name === 'redis') {
      // docs/compat.md#redis-reach "keys": a symbol cannot be named in
      // another process: a TypeError, thrown by acquire(), a rejection from lock().
      const check = { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /symbol/ }
      assert.throws(() => lock.acquire(sym, () => {}), check)
      assert.throws(() => lock.acquire(['x', sym], () => {}), check)
      await assert.rejects(lock.lock(sym), check)
      assert.equal(lock.isBusy('x'), false, 'nothing was taken')
    } else {
      // Symbols are keys by identity (docs/compat.md quirk 8; on the process
      // reach a symbol is private to its thread).
      const other = Symbol('s')
      const bySymbol = await lock.lock(sym)
      assert.equal(lock.isBusy(sym), true)
      assert.equal(lock.isBusy(other), false)
      assert.equal(await lock.acquire(other, () => 'other symbol'), 'other symbol')
      await bySymbol.release()
    }
    await reach.quiet()
    assert.equal(lock.isBusy(), false)
  })

  test('close()', async () => {
    const lock = reach.make()
    // On Redis the locks of one thread with the same URL share a connection
    // and only the last close() acts: another spelling of the URL gives the
    // closing lock a connection of its own.
    const closer = reach.name === 'redis' ? reach.twin(lock, { redis: reach.server.url + '/0' }) : reach.twin(lock) || lock
    const held = await closer.lock('k')
    const waiting = lock.lock('k')
    await reach.queued(lock, 'k', 1)
    assert.equal(await closer.close(), undefined)
    if (reach.name === 'redis') {
      // docs/compat.md#redis-reach "close()": it releases the leases still
      // held (the key goes to the next waiter), and calls after it reject
      // with KEYED_LOCK_CLOSED.
      const next = await waiting
      assert.deepEqual(next.keys, ['k'])
      await assert.rejects(closer.lock('k'), { code: 'KEYED_LOCK_CLOSED' })
      await assert.rejects(closer.acquire('k', () => {}), { code: 'KEYED_LOCK_CLOSED' })
      await next.release()
    } else {
      // In process close() resolves at once, takes nothing from a holder,
      // and the lock stays usable.
      assert.equal(await settled(reach, waiting), false)
      assert.equal(closer.isBusy('k'), true)
      await held.release()
      await (await waiting).release()
      assert.equal(await closer.acquire('k', () => 'still works'), 'still works')
    }
    assert.equal(lock.isBusy('k'), false)
  })
})
