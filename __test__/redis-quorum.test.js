'use strict'
// Issue 14 point 5: `redis: { quorum: [a, b, c] }`, the Redlock algorithm
// over three independent masters started here: no two holders at once under
// load, locks continue with one master killed, and with two killed an
// acquisition fails within its timeout with an error saying the quorum
// could not be reached; a holder that loses its majority gets
// LockLostError. A minority grant is released.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const AsyncLock = require('../index.js')
const { startRedis } = require('../support/redis-harness')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
let servers = []

before(async () => {
  servers = [await startRedis(), await startRedis(), await startRedis()]
})

after(async () => {
  await Promise.all(servers.map((s) => s.stop()))
})

/** `workers` locks on one key for `ms`; returns the grants and the most holders seen at once. */
async function load(locks, ms) {
  let holders = 0
  let most = 0
  let grants = 0
  const tokens = []
  const until = Date.now() + ms
  await Promise.all(
    locks.map(async (lock) => {
      while (Date.now() < until) {
        const lease = await lock.lock('k', { timeout: 5000 })
        holders++
        most = Math.max(most, holders)
        grants++
        tokens.push(lease.token)
        await sleep(2)
        holders--
        await lease.release()
      }
    }),
  )
  return { grants, most, tokens }
}

test('quorum: no two holders at once under load; one master killed, locks go on; two killed, a clear error within the timeout', async (t) => {
  // The harness's kill9() awaits an unref'd child's exit: keep the loop alive.
  const keep = setInterval(() => {}, 1000)
  t.after(() => clearInterval(keep))
  const urls = servers.map((s) => s.url)
  // Different prefixes would not contend: same prefix, separate lock objects.
  const locks = [0, 1, 2, 3].map(() => new AsyncLock({ redis: { quorum: urls }, name: 'q', ttl: 2000 }))
  t.after(() => Promise.all(locks.map((l) => l.close())))
  const before = await load(locks, 1500)
  assert.equal(before.most, 1, 'never two holders')
  assert.ok(before.grants >= 10, `${before.grants} grants`)
  // A majority of masters hold a granted lock, and the release frees them all.
  const lease = await locks[0].lock('seen', { timeout: 2000 })
  let holding = 0
  for (const s of servers) if ((await s.command('KEYS', '*seen*')).length > 0) holding++
  assert.ok(holding >= 2, `${holding} masters hold it`)
  assert.equal(locks[1].isBusy('seen'), true)
  await lease.release()
  assert.equal(locks[1].isBusy('seen'), false)

  await servers[0].kill9()
  const withTwo = await load(locks, 1500)
  assert.equal(withTwo.most, 1)
  assert.ok(withTwo.grants >= 5, `${withTwo.grants} grants with one master down`)

  // Held on the two masters left; losing one of them loses the majority:
  // the holder is told (LockLostError) once that master's part cannot be renewed.
  const short = new AsyncLock({ redis: { quorum: urls }, name: 'q', ttl: 300 })
  t.after(() => short.close())
  const held = await short.lock('lost', { timeout: 2000 })
  const lost = new Promise((resolve) => held.signal.addEventListener('abort', () => resolve(held.signal.reason), { once: true }))
  await servers[1].kill9()
  const reason = await Promise.race([lost, sleep(3000).then(() => null)])
  assert.ok(reason instanceof AsyncLock.LockLostError, `lost: ${reason}`)
  const started = Date.now()
  await assert.rejects(locks[0].lock('k', { timeout: 1000 }), (err) => {
    assert.equal(err.code, 'KEYED_LOCK_REDIS')
    assert.match(err.message, /only 1 of the 3 Redis masters of the quorum answered, and a lock needs 2/)
    return true
  })
  const ms = Date.now() - started
  assert.ok(ms < 1000 + 1500, `failed after ${ms} ms`)
  t.diagnostic(`grants in 1.5 s: ${before.grants} with 3 masters, ${withTwo.grants} with 2; two down: refused after ${ms} ms (timeout 1000)`)
})

test('quorum: a minority grant is released, the lock is not taken', async (t) => {
  const [a, b, c] = [await startRedis(), await startRedis(), await startRedis()]
  t.after(() => Promise.all([a.stop(), b.stop(), c.stop()]))
  const urls = [a.url, b.url, c.url]
  // Somebody else holds it on two of the three masters (plain locks there).
  const onA = new AsyncLock({ redis: a.url, name: 'q' })
  const onB = new AsyncLock({ redis: b.url, name: 'q' })
  t.after(() => Promise.all([onA.close(), onB.close()]))
  const heldA = await onA.lock('m')
  const heldB = await onB.lock('m')
  const quorum = new AsyncLock({ redis: { quorum: urls }, name: 'q' })
  t.after(() => quorum.close())
  await assert.rejects(quorum.lock('m', { timeout: 400 }), /timed out/)
  // Its grant on the third master was given back.
  assert.deepEqual(await c.command('KEYS', '*{q:m}'), [])
  await heldA.release()
  await heldB.release()
  const lease = await quorum.lock('m', { timeout: 2000 })
  await lease.release()
})

test('quorum option is validated', () => {
  for (const quorum of [[], ['redis://a', 'redis://b'], 'redis://a', ['redis://a', 'redis://a', 'redis://b']]) {
    assert.throws(() => new AsyncLock({ redis: { quorum } }), (err) => err instanceof TypeError && /quorum/.test(err.message))
  }
})

test('close() closes every connection the lock opened, on every master', async (t) => {
  const masters = [await startRedis(), await startRedis(), await startRedis()]
  t.after(() => Promise.all(masters.map((m) => m.stop())))
  const clients = () => Promise.all(masters.map(async (m) => (await m.command('CLIENT', 'LIST')).trim().split('\n').length))
  const baseline = await clients()
  const lock = new AsyncLock({ redis: { quorum: masters.map((m) => m.url) }, name: 'close' })
  const lease = await lock.lock('k', { timeout: 2000 })
  assert.deepEqual(await clients(), baseline.map((n) => n + 1))
  await lease.release()
  await lock.close()
  await sleep(100)
  assert.deepEqual(await clients(), baseline)
})
