'use strict'
// close() on the Redis reach, the only reach where it takes anything away
// (issue 17, defect 7; docs/compat.md "Redis reach", close()): a closed
// lock's pending waits end with KEYED_LOCK_CLOSED (not async-lock's timeout
// message), and every later call refuses with KEYED_LOCK_CLOSED, also while
// another lock still shares its connection. The in-process reaches' close()
// (resolves, the lock stays usable) is pinned in lease.test.js.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const AsyncLock = require('../index.js')
const Locky = require('../locky')
const { startRedis } = require('../support/redis-harness')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const closed = { code: 'KEYED_LOCK_CLOSED', message: /closed/ }

/** How `promise` settles, observed at once (a wait that close() rejects is no unhandled rejection). */
const outcome = (promise) =>
  promise.then(
    (value) => ({ value }),
    (error) => ({ error }),
  )

function assertClosed(settled, what) {
  assert.ok(settled.error, `${what} was not rejected`)
  assert.equal(settled.error.code, 'KEYED_LOCK_CLOSED', `${what}: ${settled.error.message}`)
  assert.match(settled.error.message, /closed/)
}

let server
before(async () => {
  server = await startRedis()
})
after(() => server.stop())

let next = 0
const freshName = () => 'close' + ++next

/** A holder of `key` on a connection of its own (another URL string for the same server). */
async function holder(t, name, key) {
  const other = new AsyncLock({ redis: server.url + '/0', name })
  t.after(() => other.close())
  return other.lock(key)
}

test('close() ends the waits still pending with KEYED_LOCK_CLOSED: acquire() in both modes and lock()', async (t) => {
  const name = freshName()
  const held = await holder(t, name, 'k')
  const lock = new AsyncLock({ redis: server.url, name })
  let ran = false
  const promised = outcome(lock.acquire('k', () => (ran = true)))
  const called = new Promise((resolve) => lock.acquire('k', (done) => done(), (err) => resolve(err)))
  const leased = outcome(lock.lock('k'))
  const multi = outcome(lock.acquire(['k', 'other'], () => (ran = true), { timeout: 60000 }))
  await sleep(100) // queued in Redis behind the holder
  await lock.close()
  assertClosed(await promised, 'acquire() in promise mode')
  assertClosed({ error: await called }, 'acquire() in callback mode')
  assertClosed(await leased, 'lock()')
  assertClosed(await multi, 'a multi-key acquire() with a timeout')
  assert.equal(ran, false)
  await held.release()
})

test('a closed lock refuses every later call with KEYED_LOCK_CLOSED while another lock shares its connection', async (t) => {
  const name = freshName()
  const a = new AsyncLock({ redis: server.url, name })
  const b = new AsyncLock({ redis: server.url, name }) // same URL and prefix: one shared connection
  t.after(() => b.close())
  await (await a.lock('k')).release()
  await a.close()
  let ran = false
  await assert.rejects(
    a.acquire('k', () => (ran = true)),
    closed,
  )
  const cbErr = await new Promise((resolve) => a.acquire('k', (done) => done(), (err) => resolve(err)))
  assert.equal((cbErr || {}).code, 'KEYED_LOCK_CLOSED')
  await assert.rejects(a.lock('k'), closed)
  assert.throws(() => a.isBusy('k'), closed)
  assert.equal(ran, false)
  assert.equal(await a.close(), undefined, 'idempotent')
  // The lock sharing the connection is untouched.
  const lease = await b.lock('k', { timeout: 5000 })
  assert.equal(a.isBusy(), false)
  await lease.release()
  assert.equal(await b.acquire('k', () => 'b still works'), 'b still works')
})

test('closing one of two locks that share a connection ends only its own waits', async (t) => {
  const name = freshName()
  const held = await holder(t, name, 'k')
  const a = new AsyncLock({ redis: server.url, name })
  const b = new AsyncLock({ redis: server.url, name })
  t.after(() => b.close())
  const first = outcome(a.acquire('k', () => 'a'))
  const second = outcome(b.acquire('k', () => 'b'))
  await sleep(100)
  await a.close()
  await held.release()
  assertClosed(await first, "the closed lock's wait")
  assert.deepEqual(await second, { value: 'b' }, 'the other lock still gets the key')
})

test("a closed Locky's calls reject with KEYED_LOCK_CLOSED (message unchanged)", async () => {
  const locky = new Locky({ redis: server.url, name: freshName() })
  await locky.close()
  await assert.rejects(locky.lock([{ resource: 'r', locker: 'me' }]), {
    code: 'KEYED_LOCK_CLOSED',
    message: 'keyed-lock: this Locky was closed',
  })
})

test('a constructor that throws after its Redis client could be opened gives its share back: the last close() closes the connection', async () => {
  // A database of its own, so that this URL's connection can be counted.
  const url = server.url + '/7'
  const connections = async () => (await server.command('CLIENT', 'LIST')).split('\n').filter((line) => / db=7 /.test(line)).length
  const lock = new AsyncLock({ redis: url, name: freshName() })
  await (await lock.lock('k')).release()
  assert.equal(await connections(), 1)
  // An option checked after the redis option was read.
  assert.throws(() => new AsyncLock({ redis: url, timeout: -1 }), { name: 'TypeError', message: /"timeout"/ })
  // A quorum whose last URL is refused, after the first one's client was opened.
  assert.throws(() => new AsyncLock({ redis: { quorum: [url, server.url + '/8', 'http://not-redis'] } }), { name: 'TypeError' })
  await lock.close()
  const deadline = Date.now() + 3000
  while ((await connections()) !== 0) {
    assert.ok(Date.now() < deadline, 'the connection is still open after the last close()')
    await sleep(20)
  }
})
