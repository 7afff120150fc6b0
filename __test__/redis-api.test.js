'use strict'
// Where AsyncLock({ redis }) answers unlike the in-process reaches, seen
// through the async-lock API from one process (docs/compat.md, "Redis
// reach"): fn is never run inside acquire(), keys must be strings or
// numbers, isBusy(key) asks Redis while isBusy() and queues count this
// process only, a queued task past maxOccupationTime keeps its place in
// Redis, domainReentrant is ignored, close() releases what is held. Two
// AsyncLock instances on one URL and name share the Redis locks (and this
// thread's connection) but no JS state, as two processes would; the
// multi-process tests are redis-processes.test.js. One throwaway server for
// the file; a fresh lock name per test.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const AsyncLock = require('../index.js')
const { startRedis } = require('../support/redis-harness')
const { lockKey } = require('./redis-keys')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

let server
before(async () => {
  server = await startRedis()
})
after(() => server.stop())

/** Resolves once the Redis queue `key` holds `n` waiters (polled; a hang fails the test by its timeout). */
async function queued(key, n) {
  while ((await server.command('ZCARD', key)) < n) await sleep(10)
}

let next = 0
/** Two locks on one fresh name; closed after the test. */
function pair(t, opts = {}) {
  const name = 'api' + ++next
  const a = new AsyncLock({ redis: server.url, name, ...opts })
  const b = new AsyncLock({ redis: server.url, name, ...opts })
  t.after(() => Promise.all([a.close(), b.close()]))
  return { name, a, b, lease: (key) => lockKey('keyed-lock', name, key, 'l'), queue: (key) => lockKey('keyed-lock', name, key, 'q') }
}

test('fn never runs inside acquire(), even on a free key', async (t) => {
  const { a } = pair(t)
  let ran = false
  const promise = a.acquire('k', () => (ran = true))
  assert.equal(ran, false)
  let cbRan = false
  a.acquire('k2', (done) => done(null, 1), () => (cbRan = true))
  assert.equal(cbRan, false)
  await promise
  assert.equal(ran, true)
})

test('symbol keys are a TypeError: thrown by acquire, a rejection from lock()', async (t) => {
  const { a } = pair(t)
  const check = { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /symbol/ }
  assert.throws(() => a.acquire(Symbol('s'), () => {}), check)
  assert.throws(() => a.acquire(['x', Symbol('s')], () => {}), check)
  let promise
  assert.doesNotThrow(() => (promise = a.lock(Symbol('s'))))
  await assert.rejects(promise, check)
  await assert.rejects(a.lock(['x', Symbol('s')]), check)
  assert.equal(a.isBusy('x'), false, 'nothing was taken')
})

test('isBusy(key) answers for every client; isBusy() and queues for this one only', async (t) => {
  const { a, b } = pair(t)
  const held = await a.lock('k')
  assert.equal(b.isBusy('k'), true)
  assert.equal(b.isBusy(), false)
  assert.deepEqual(Object.keys(b.queues), [])
  assert.equal(a.isBusy(), true)
  assert.deepEqual(Object.keys(a.queues), ['k'])
  // isBusy() and queues count this process's tasks from the call on: no wait for Redis.
  const waiting = b.acquire('k', () => 'b')
  assert.equal(b.isBusy(), true)
  assert.deepEqual(Object.keys(b.queues), ['k'])
  await held.release()
  assert.equal(await waiting, 'b')
  assert.equal(a.isBusy('k'), false)
  assert.equal(a.isBusy(), false)
})

test('maxOccupationTime on a queued task: the caller is told and the waiter leaves the queue in Redis', async (t) => {
  const { a, b, lease, queue } = pair(t)
  const held = await a.lock('k')
  let ran = false
  await assert.rejects(
    b.acquire('k', () => (ran = true), { maxOccupationTime: 100 }),
    { message: 'Maximum occupation time is exceeded in queue k' },
  )
  // The leaving script runs after the caller is told: poll for it for as
  // long as a loaded machine may need (it never came back in 10 s = failure).
  for (let i = 0; i < 1000 && (await server.command('ZCARD', queue('k'))) !== 0; i++) await sleep(10)
  assert.equal(await server.command('ZCARD', queue('k')), 0, 'left the Redis queue, as it leaves an in-process one')
  await held.release()
  assert.equal(await server.command('EXISTS', lease('k')), 0, 'nobody was waiting, so nobody holds it')
  assert.equal(ran, false)
})

test('domainReentrant is accepted and ignored: a nested acquire of a held key waits', async (t) => {
  const { a } = pair(t, { domainReentrant: true })
  const domain = require('node:domain')
  const order = []
  await new Promise((resolve, reject) => {
    domain.create().run(() => {
      a.acquire('k', async () => {
        a.acquire('k', () => order.push('nested')).then(resolve, reject)
        await sleep(100)
        order.push('outer done')
      }).catch(reject)
    })
  })
  assert.deepEqual(order, ['outer done', 'nested'])
})

test('close() releases the leases still held and hands the keys on; the closed lock rejects', async (t) => {
  const name = 'api' + ++next
  const a = new AsyncLock({ redis: server.url, name })
  // Another URL string for the same server: a connection of its own, which
  // a.close() does not close.
  const b = new AsyncLock({ redis: server.url + '/0', name })
  t.after(() => b.close())
  await a.lock('k')
  const waiting = b.lock('k')
  await sleep(100)
  await a.close()
  const lease = await waiting
  assert.deepEqual(lease.keys, ['k'])
  await assert.rejects(a.lock('k'), { code: 'KEYED_LOCK_CLOSED' })
  await lease.release()
})

test('unix-socket URLs, both spellings, reach the same locks', async (t) => {
  const unixServer = await startRedis({ unix: true })
  t.after(() => unixServer.stop())
  const a = new AsyncLock({ redis: unixServer.url, name: 'sock' }) // redis+unix:///…/r.sock
  const b = new AsyncLock({ redis: unixServer.unixUrl2, name: 'sock' }) // unix:///…/r.sock
  t.after(() => Promise.all([a.close(), b.close()]))
  const held = await a.lock('k')
  assert.equal(b.isBusy('k'), true)
  const order = []
  const waiting = b.acquire('k', () => order.push('b'))
  await sleep(100)
  order.push('a releases')
  await held.release()
  await waiting
  assert.deepEqual(order, ['a releases', 'b'])
  assert.equal(await unixServer.command('EXISTS', lockKey('keyed-lock', 'sock', 'k', 'l')), 0)
})

test('prefix: locks under different prefixes share nothing; the keys live under the prefix', async (t) => {
  const a = new AsyncLock({ redis: server.url, name: 'pre', prefix: 'app1' })
  const b = new AsyncLock({ redis: server.url, name: 'pre', prefix: 'app2' })
  t.after(() => Promise.all([a.close(), b.close()]))
  const la = await a.lock('k')
  const lb = await b.lock('k', { timeout: 1000 })
  assert.ok((await server.command('GET', lockKey('app1', 'pre', 'k', 'l'))) !== null)
  assert.ok((await server.command('GET', lockKey('app2', 'pre', 'k', 'l'))) !== null)
  await Promise.all([la.release(), lb.release()])
  assert.throws(() => new AsyncLock({ redis: server.url, prefix: '' }), { name: 'TypeError', message: /option "prefix"/ })
  assert.throws(() => new AsyncLock({ redis: server.url, ttl: -5 }), { name: 'TypeError', message: /option "ttl"/ })
  assert.throws(() => new AsyncLock({ redis: 42 }), { name: 'TypeError', message: /option "redis"/ })
  assert.throws(() => new AsyncLock({ redis: 'http://nope' }), { name: 'TypeError', message: /option "redis"/ })
})

test('skipQueue goes ahead of every waiter, across instances, as async-lock does within one', async (t) => {
  const { a, b, queue } = pair(t)
  const held = await a.lock('k')
  const order = []
  // The release waits until both are queued in Redis, as long as that
  // takes (no fixed sleep).
  const first = b.acquire('k', () => order.push('queued first'))
  await queued(queue('k'), 1)
  const skipper = a.acquire('k', () => order.push('skipQueue'), { skipQueue: true })
  await queued(queue('k'), 2)
  await held.release()
  await Promise.all([first, skipper])
  assert.deepEqual(order, ['skipQueue', 'queued first'])
})

test('timeout: Infinity waits without limit, as in async-lock (not a zero-length wait)', async (t) => {
  const { a, b } = pair(t)
  const held = await a.lock('k')
  const order = []
  const waiting = b.acquire('k', () => order.push('acquire ran'), { timeout: Infinity })
  const leased = b.lock('k', { timeout: Infinity }).then((lease) => {
    order.push('lock granted')
    return lease.release()
  })
  await sleep(300)
  assert.deepEqual(order, [])
  await held.release()
  await Promise.all([waiting, leased])
  assert.deepEqual(order, ['acquire ran', 'lock granted'])
})

test('FIFO within a process: calls made one after another are granted in that order', async (t) => {
  const { a, b } = pair(t)
  for (const firstFree of [false, true]) {
    const held = firstFree ? null : await a.lock('k')
    const order = []
    const done = []
    for (let i = 0; i < 20; i++) {
      const lock = i % 2 ? a : b
      done.push(i % 3 === 0 ? lock.lock('k').then((l) => (order.push(i), l.release())) : lock.acquire('k', () => order.push(i)))
    }
    if (held) await held.release()
    await Promise.all(done)
    assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i), `first key ${firstFree ? 'free' : 'held'}`)
  }
})
