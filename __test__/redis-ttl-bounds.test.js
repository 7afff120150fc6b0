'use strict'
// Issue 17, defect 8: a lease ttl that cannot work is refused up front,
// naming the option, on every face that takes one. Bounds (lib/errors.js):
// at least 50 ms (a renewal at ttl/3 must have time for its round trip
// under the drift rule), at most 2^31 - 1 ms (the longest Node timer; far
// inside Redis's PX and JS's safe integers). The bounds themselves work.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const AsyncLock = require('../index.js')
const Locky = require('../locky.js')
const ExclusiveLock = require('../exclusive-lock.js')
const { startRedis } = require('./redis-harness')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const MAX = 2 ** 31 - 1
// No connection is made by a constructor: nothing listens here.
const URL = 'redis://127.0.0.1:1'

const outOfRange = (name) => (err) => {
  assert.ok(err instanceof RangeError, `${err && err.name}: ${err && err.message}`)
  assert.equal(err.code, 'ERR_OUT_OF_RANGE')
  assert.ok(err.message.includes(`"${name}"`), err.message)
  assert.match(err.message, /50 to 2147483647/)
  return true
}

test('a ttl that cannot work is a RangeError naming it, on every face', async () => {
  for (const ttl of [1e300, MAX + 1, 1, 5, 49]) {
    assert.throws(() => new AsyncLock({ redis: URL, ttl }), outOfRange('ttl'), `AsyncLock ttl ${ttl}`)
    assert.throws(() => new Locky({ redis: URL, ttl }), outOfRange('ttl'), `Locky ttl ${ttl}`)
    assert.throws(() => new Locky({ redis: URL, ttl: String(ttl) }), outOfRange('ttl'), `Locky ttl '${ttl}'`)
    assert.throws(() => new Locky({ redis: URL, leaseTtl: ttl }), outOfRange('leaseTtl'), `Locky leaseTtl ${ttl}`)
    assert.throws(
      () => new ExclusiveLock({ name: 'a', cache_connection: URL, lock_ttl_ms: ttl, lock_refresh_ms: Math.min(ttl - 1000, 1000) }),
      outOfRange('lock_ttl_ms'),
      `ExclusiveLock lock_ttl_ms ${ttl}`,
    )
  }
  // Not a duration at all: a TypeError naming it, as before.
  for (const ttl of [-5, 0.0 - 1, Infinity, NaN, 'soon']) {
    assert.throws(() => new AsyncLock({ redis: URL, ttl }), { name: 'TypeError', message: /option "ttl"/ })
  }
  // At the bounds (and a fraction rounded up into them): accepted.
  for (const ttl of [50, 49.2, MAX]) {
    const lock = new AsyncLock({ redis: URL, ttl })
    await lock.close()
    await new Locky({ redis: URL, ttl }).close()
    await new Locky({ redis: URL, leaseTtl: ttl }).close()
  }
  new ExclusiveLock({ name: 'a', cache_connection: URL, lock_ttl_ms: MAX, lock_refresh_ms: 1000 })
})

test('the bounds work in Redis: a 50 ms lease is kept by its watchdog, a 2^31 - 1 ms one is set as asked', async (t) => {
  const server = await startRedis()
  t.after(() => server.stop())
  const short = new AsyncLock({ redis: server.url, name: 'short', ttl: 50 })
  const long = new AsyncLock({ redis: server.url, name: 'long', ttl: MAX })
  t.after(() => Promise.all([short.close(), long.close()]))
  const lease = await short.lock('k', { timeout: 3000 })
  await sleep(500)
  assert.equal(lease.signal.aborted, false, 'renewed every ttl/3 for ten ttls')
  assert.equal(await lease.release(), true)
  const held = await long.lock('k', { timeout: 3000 })
  const found = await long._space.client.inspect('k', 'long')
  assert.ok(found.pttl > MAX - 60000 && found.pttl <= MAX, `PTTL ${found.pttl}`)
  await held.release()
})
