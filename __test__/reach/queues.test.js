'use strict'
// FIFO, multi-key all-or-nothing, opposite key orders and fencing tokens on
// every reach, through the public API (helpers/reaches.js runs each test
// once per reach).

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { forEachReach, settled } = require('../helpers/reaches')

const TOO_MANY = (key) => `Too many pending tasks in queue ${key}`

forEachReach((reach) => {
  test('FIFO: waiters are granted in call order, acquire() and lock() alike, held key or free', async () => {
    const lock = reach.make()
    // docs/compat.md#redis-reach "FIFO": by a ticket Redis hands out, in
    // call order within a process: the same order here.
    for (const firstFree of [false, true]) {
      const held = firstFree ? null : await lock.lock('k')
      const order = []
      const done = []
      for (let i = 0; i < 20; i++) {
        done.push(
          i % 3 === 0
            ? lock.lock('k').then((lease) => (order.push(i), lease.release()))
            : lock.acquire('k', () => order.push(i)),
        )
      }
      if (held) await held.release()
      await Promise.all(done)
      assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i), `first key ${firstFree ? 'free' : 'held'}`)
    }
    assert.equal(lock.isBusy(), false)
  })

  test('FIFO across the AsyncLock instances of one space; a release hands the key straight on (no barging)', async () => {
    const lock = reach.make()
    const twin = reach.twin(lock) || lock
    const held = await lock.lock('k')
    const order = []
    const first = twin.acquire('k', () => order.push('twin, queued first'))
    await reach.queued(lock, 'k', 1)
    const second = lock.acquire('k', () => order.push('lock, queued second'))
    await reach.queued(lock, 'k', 2)
    await held.release()
    // The releaser asks again at once: it goes behind the waiters.
    const again = lock.acquire('k', () => order.push('releaser again'))
    await Promise.all([first, second, again])
    assert.deepEqual(order, ['twin, queued first', 'lock, queued second', 'releaser again'])
  })

  test('multi-key: all or nothing; keys deduplicated by string form, in order; one token for every key', async () => {
    const lock = reach.make()
    const b = await lock.lock('b')
    const both = lock.lock(['a', 'b', 1, 'a', '1'])
    const acquired = lock.acquire(['a', 'b'], () => 'acquire ran')
    assert.equal(await settled(reach, both), false, 'waits for b')
    await b.release()
    const lease = await both
    assert.deepEqual(lease.keys, ['a', 'b', '1'])
    assert.equal(lease.tokens.length, 3)
    for (const key of ['a', 'b', '1']) assert.equal(lock.isBusy(key), true)
    assert.equal(await settled(reach, acquired), false, 'the second request waits for all of its keys')
    await lease.release()
    assert.equal(await acquired, 'acquire ran')
    assert.equal(lock.isBusy(), false)
  })

  test('multi-key: FIFO per key, so a free key can have a queue; a request runs when it heads every queue', async () => {
    const lock = reach.make()
    const holder = await lock.lock(['a', 'b'])
    const order = []
    const bc = lock.lock(['b', 'c']).then((lease) => (order.push('b+c'), lease))
    await reach.queued(lock, 'c', 1)
    // 'c' is free, but the b+c request queued on it first (docs/compat.md,
    // "multi-key"; on Redis "one ticket in every queue, granted at the head
    // of all"): no barging past it.
    const c = lock.lock('c').then((lease) => (order.push('c'), lease))
    assert.equal(await settled(reach, c), false)
    assert.equal(await settled(reach, bc), false)
    await holder.release()
    const first = await bc
    assert.equal(await settled(reach, c), false, 'c waits while b+c holds it')
    await first.release()
    await (await c).release()
    assert.deepEqual(order, ['b+c', 'c'])
    assert.equal(lock.isBusy(), false)
  })

  test('multi-key in opposite orders from many callers: all complete, never two holders of a key', async () => {
    const lock = reach.make()
    const twin = reach.twin(lock) || lock
    const inside = new Set()
    const callers = []
    const rounds = reach.name === 'redis' ? 5 : 10
    for (let c = 0; c < 10; c++) {
      const keys = c % 2 === 0 ? ['x', 'y', 'z'] : ['z', 'y', 'x']
      const on = c % 3 === 0 ? twin : lock
      callers.push(
        (async () => {
          for (let i = 0; i < rounds; i++) {
            const use = async () => {
              for (const key of keys) {
                assert.equal(inside.has(key), false, `two holders of ${key}`)
                inside.add(key)
              }
              await new Promise((resolve) => setImmediate(resolve))
              for (const key of keys) inside.delete(key)
            }
            if (i % 2 === 0) {
              const lease = await on.lock(keys)
              await use()
              await lease.release()
            } else {
              await on.acquire(keys, use)
            }
          }
        })(),
      )
    }
    await Promise.all(callers)
    assert.equal(lock.isBusy(), false)
  })

  test('multi-key maxPending: checked on every key before anything is queued; the first full key is named', async () => {
    const lock = reach.make({ maxPending: 1 })
    const holder = await lock.lock(['a', 'k'])
    const waiting = lock.acquire('k', () => 'ran')
    await reach.queued(lock, 'k', 1)
    await assert.rejects(lock.lock(['free', 'k']), { message: TOO_MANY('k') })
    await assert.rejects(lock.acquire(['free', 'k', 'a'], () => {}), { message: TOO_MANY('k') })
    // Nothing of the refused requests was queued: 'a' has no waiter.
    await reach.quiet()
    assert.equal(lock.queues.a.length, 0)
    await holder.release()
    assert.equal(await waiting, 'ran')
    assert.equal(lock.isBusy(), false)
  })

  test('tokens strictly increase per key: leases, multi-key leases, hand-offs, other instances', async () => {
    const lock = reach.make()
    const twin = reach.twin(lock)
    let last = 0
    const n = reach.name === 'redis' ? 60 : 300
    for (let i = 0; i < n; i++) {
      const on = twin && i % 4 === 3 ? twin : lock
      const lease = await on.lock(i % 3 === 0 ? ['k', 'other'] : 'k')
      assert.ok(Number.isSafeInteger(lease.token))
      assert.ok(lease.token > last, `token ${lease.token} after ${last}`)
      last = lease.token
      // Releasing and re-taking in the same tick is the tightest case.
      if (i % 2 === 0) await lease.release()
      else lease.release()
    }
    // Queued hand-offs too.
    const holder = await lock.lock('k')
    assert.ok(holder.token > last)
    const queued = Array.from({ length: 20 }, (_, i) => (twin && i % 2 ? twin : lock).lock('k'))
    let current = holder
    for (const next of queued) {
      const prev = current.token
      current.release()
      current = await next
      assert.ok(current.token > prev, `hand-off token ${current.token} after ${prev}`)
    }
    await current.release()
  })
})
