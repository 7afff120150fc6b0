'use strict'
// Issue 17, defect 2: no message, stack, `cause` or own property of any
// error keyed-lock gives ever contains a password, for every URL form keyed-lock
// accepts or builds, on every error path: constructor validation, Redis
// unreachable at the first call, authentication refused, a lease lost while
// Redis stalls, and the locky / exclusive-lock facades given URLs, options
// or ioredis / node-redis client objects. Every password below contains
// "SECRET" (user names do not), so one search covers every piece of one:
// the tail after an unencoded '@', a percent-encoded form, a query value.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const util = require('node:util')
const AsyncLock = require('../index.js')
const Locky = require('../locky.js')
const ExclusiveLock = require('../exclusive-lock.js')
const IORedis = require('ioredis')
const { startRedis, freePort } = require('../support/redis-harness')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Every text an error exposes: message, stack, each own property (hidden ones too), JSON, inspect, down the cause chain. */
function exposed(err, seen = new Set()) {
  if (err === null || err === undefined || seen.has(err)) return []
  if (typeof err !== 'object' && typeof err !== 'function') return [String(err)]
  seen.add(err)
  const out = [util.inspect(err, { showHidden: true, depth: Infinity })]
  try {
    out.push(JSON.stringify(err, Object.getOwnPropertyNames(err)))
  } catch {}
  for (const name of Object.getOwnPropertyNames(err)) {
    const value = err[name]
    if (value !== null && typeof value === 'object') out.push(...exposed(value, seen))
    else out.push(String(value))
  }
  return out
}

const table = []

/** Asserts `err` is an Error that gives away nothing of a password, and records what it shows. */
function assertRedacted(err, what) {
  assert.ok(err instanceof Error, `${what}: expected an error, got ${util.inspect(err)}`)
  for (const text of exposed(err)) {
    assert.ok(!text.includes('SECRET'), `${what}: a password shows in\n${text}`)
  }
  table.push(`${what}: ${err.name}${err.code ? ` [${err.code}]` : ''}: ${err.message}`)
}

function thrown(fn) {
  try {
    fn()
  } catch (err) {
    return err
  }
  return null
}

async function rejection(promise) {
  try {
    await promise
  } catch (err) {
    return err
  }
  return null
}

/** The URL forms: a closed TCP port and a missing socket (unreachable), or forms that cannot be opened. */
async function urlForms() {
  const closed = await freePort()
  const sock = '/nonexistent-keyed-lock-dir/r.sock'
  return [
    ['user:password', `redis://user:plainSECRET@127.0.0.1:${closed}`],
    ['password only', `redis://:plainSECRET@127.0.0.1:${closed}/2`],
    ['password as user name', `redis://nameSECRET@127.0.0.1:${closed}`],
    ["unencoded '@' in the password", `redis://user:leftSECRET@rightSECRET@127.0.0.1:${closed}`],
    ["unencoded '#', '?', '/' in the password", `redis://user:aSECRET#b?cSECRET/dSECRET@127.0.0.1:${closed}`],
    ['percent-encoded password', `redis://user:${encodeURIComponent('p@ss SECRET&x')}@127.0.0.1:${closed}`],
    ['rediss://', `rediss://user:plainSECRET@127.0.0.1:${closed}`],
    ['bad port', `redis://user:plainSECRET@127.0.0.1:99999`],
    ['wrong scheme', `http://user:plainSECRET@127.0.0.1:${closed}`],
    ['no scheme', `user:plainSECRET@127.0.0.1:${closed}`],
    ['redis+unix ?pass=', `redis+unix://${sock}?pass=plainSECRET`],
    ["redis+unix ?pass= with an unencoded '&'", `redis+unix://${sock}?db=1&pass=ampSECRET&tailSECRET&user=u`],
    ['unix ?password=', `unix://${sock}?password=plainSECRET`],
    ['cluster seed nodes', [`redis://u:oneSECRET@127.0.0.1:${closed}`, `redis://u:twoSECRET@127.0.0.1:${closed}`]],
    ['cluster seed node with a bad port', [`redis://u:oneSECRET@127.0.0.1:99999`]],
  ]
}

test('AsyncLock: constructor, first call, isBusy: no error shows a password, whatever the URL form', async () => {
  for (const [form, url] of await urlForms()) {
    let lock
    const ctor = thrown(() => (lock = new AsyncLock({ redis: url, name: 'r' })))
    if (ctor !== null) {
      assertRedacted(ctor, `AsyncLock constructor, ${form}`)
      assert.ok(ctor instanceof TypeError && /option "redis"/.test(ctor.message), `${form}: ${ctor.message}`)
      continue
    }
    try {
      assertRedacted(await rejection(lock.lock('k', { timeout: 3000 })), `lock(), ${form}`)
      assertRedacted(await rejection(lock.acquire('k', () => {}, { timeout: 3000 })), `acquire(), ${form}`)
      if (!Array.isArray(url)) assertRedacted(thrown(() => lock.isBusy('k')), `isBusy(key), ${form}`)
    } finally {
      await lock.close()
    }
  }
})

test('Locky and ExclusiveLock given these URLs: no error shows a password', async () => {
  for (const [form, url] of await urlForms()) {
    let locky
    const ctor = thrown(() => (locky = new Locky({ redis: url })))
    if (ctor !== null) assertRedacted(ctor, `Locky constructor, ${form}`)
    else {
      assertRedacted(await rejection(locky.lock([{ resource: 'r', locker: 'me' }])), `Locky lock(), ${form}`)
      await locky.close()
    }
    if (Array.isArray(url)) continue
    let exclusive
    const ctor2 = thrown(() => (exclusive = new ExclusiveLock({ name: 'r', cache_connection: url })))
    if (ctor2 !== null) assertRedacted(ctor2, `ExclusiveLock constructor, ${form}`)
    else {
      assertRedacted(await rejection(exclusive.acquire()), `ExclusiveLock acquire(), ${form}`)
      await exclusive.release().catch(() => {})
    }
  }
})

test('facades given client objects and options (URLs keyed-lock builds): no error shows a password', async () => {
  const closed = await freePort()
  const sock = '/nonexistent-keyed-lock-dir/r.sock'
  const io = [
    ['ioredis, host + password', new IORedis({ host: '127.0.0.1', port: closed, password: 'ioSECRET@x', lazyConnect: true })],
    ['ioredis, tls', new IORedis({ host: '127.0.0.1', port: closed, username: 'u', password: 'tlsSECRET', tls: {}, lazyConnect: true })],
    ['ioredis, unix socket', new IORedis({ path: sock, password: 'sockSECRET&more', lazyConnect: true })],
  ]
  const clients = [
    ...io,
    ['node-redis shape, url + password', { options: { url: `redis://127.0.0.1:${closed}`, password: 'nrSECRET' } }],
    ['node-redis shape, socket path', { options: { socket: { path: sock }, password: 'nrSockSECRET', database: 3 } }],
    ['node-redis shape, tls socket', { options: { socket: { host: '127.0.0.1', port: closed, tls: true }, password: 'nrTlsSECRET' } }],
  ]
  try {
    for (const [form, client] of clients) {
      for (const [face, make, use] of [
        ['Locky', () => new Locky({ redis: client }), (l) => l.lock([{ resource: 'r', locker: 'me' }])],
        ['Locky (function)', () => new Locky({ redis: () => client }), (l) => l.lock([{ resource: 'r', locker: 'me' }])],
        ['ExclusiveLock', () => new ExclusiveLock({ name: 'r', cache_connection: { set() {}, ...client, options: client.options } }), (l) => l.acquire()],
      ]) {
        let made
        const ctor = thrown(() => (made = make()))
        if (ctor !== null) {
          assertRedacted(ctor, `${face} constructor, ${form}`)
          continue
        }
        assertRedacted(await rejection(use(made)), `${face} call, ${form}`)
        await (face === 'ExclusiveLock' ? made.release().catch(() => {}) : made.close())
      }
    }
    // then-redis options: {host, port, password} and {path, password}.
    for (const [form, options] of [
      ['then-redis options', { host: '127.0.0.1', port: closed, password: 'thenSECRET' }],
      ['then-redis socket options', { path: sock, password: 'thenSockSECRET' }],
    ]) {
      const locky = new Locky({ redis: options })
      assertRedacted(await rejection(locky.lock([{ resource: 'r', locker: 'me' }])), `Locky call, ${form}`)
      await locky.close()
    }
  } finally {
    for (const [, client] of io) client.disconnect()
  }
})

test('authentication refused, and a lease lost while an authenticated Redis stalls: no error shows a password', async (t) => {
  const tcp = await startRedis()
  const unix = await startRedis({ unix: true })
  t.after(async () => {
    if (tcp.paused) tcp.resume()
    await Promise.all([tcp.stop(), unix.stop()])
  })
  // Set after start (the harness's readiness PING would be refused); the
  // harness's own connection stays authenticated as it was.
  for (const server of [tcp, unix]) await server.command('CONFIG', 'SET', 'requirepass', 'goodSECRETpass')
  const wrong = [
    ['wrong password (tcp)', `redis://default:wrongSECRET@127.0.0.1:${tcp.port}`],
    ['wrong password, no user (tcp)', `redis://:wrongSECRET@127.0.0.1:${tcp.port}`],
    ["wrong password with an unencoded '@' (tcp)", `redis://default:wrongSECRET@tailSECRET@127.0.0.1:${tcp.port}`],
    ['wrong password (redis+unix ?pass=)', `${unix.url}?pass=wrongSECRET`],
    ['wrong password (unix ?pass=)', `${unix.unixUrl2}?db=0&pass=wrongSECRET`],
    ['no password', tcp.url],
  ]
  for (const [form, url] of wrong) {
    const lock = new AsyncLock({ redis: url, name: 'auth' })
    assertRedacted(await rejection(lock.lock('k', { timeout: 3000 })), `lock(), ${form}`)
    await lock.close()
    const locky = new Locky({ redis: url })
    assertRedacted(await rejection(locky.lock([{ resource: 'r', locker: 'me' }])), `Locky lock(), ${form}`)
    await locky.close()
    const exclusive = new ExclusiveLock({ name: 'r', cache_connection: url })
    assertRedacted(await rejection(exclusive.acquire()), `ExclusiveLock acquire(), ${form}`)
  }
  // The right password works, and the errors of that client stay clean too.
  const lock = new AsyncLock({ redis: `redis://default:goodSECRETpass@127.0.0.1:${tcp.port}`, name: 'auth', ttl: 600 })
  t.after(() => lock.close())
  const lease = await lock.lock('k', { timeout: 3000 })
  const lost = new Promise((resolve) => lease.signal.addEventListener('abort', () => resolve(lease.signal.reason), { once: true }))
  tcp.pause()
  const reason = await Promise.race([lost, sleep(5000).then(() => null)])
  assertRedacted(reason, 'lease lost while Redis stalls')
  assertRedacted(thrown(() => lock.isBusy('k')), 'isBusy(key) while Redis stalls')
  tcp.resume()
  await lease.release()
})

test('ACL users: the right user and password serve every connection, a wrong one fails the first call as an authentication failure', async (t) => {
  const server = await startRedis()
  t.after(() => server.stop())
  await server.command('ACL', 'SETUSER', 'locker', 'on', '>lockerSECRETpw', '~*', '&*', '+@all')
  // The default user can no longer do anything: only the ACL user works.
  await server.command('ACL', 'SETUSER', 'default', 'off')
  const good = `redis://locker:lockerSECRETpw@127.0.0.1:${server.port}`
  // A contended hand-off: the grant reaches the waiter as a push on its
  // authenticated connection, and the watchdog's renewals run on it too.
  const a = new AsyncLock({ redis: good, name: 'acl', ttl: 300 })
  const b = new AsyncLock({ redis: good, name: 'acl', prefix: 'keyed-lock' })
  t.after(() => Promise.all([a.close(), b.close()]))
  const first = await a.lock('k', { timeout: 3000 })
  const second = b.lock('k', { timeout: 3000 })
  await sleep(400) // past a renewal of the 300 ms lease
  await first.release()
  const lease = await second
  assert.ok(lease.token > first.token)
  await lease.release()
  const locky = new Locky({ redis: { host: '127.0.0.1', port: server.port, username: 'locker', password: 'lockerSECRETpw' } })
  assert.equal(await locky.lock([{ resource: 'r', locker: 'me' }]), true)
  await locky.close()
  const exclusive = new ExclusiveLock({ name: 'r', cache_connection: { set() {}, options: { host: '127.0.0.1', port: server.port, username: 'locker', password: 'lockerSECRETpw' } } })
  await exclusive.acquire()
  await exclusive.release()
  for (const [form, url] of [
    ['wrong password', `redis://locker:wrongSECRET@127.0.0.1:${server.port}`],
    ['unknown user', `redis://nobody:nobodySECRET@127.0.0.1:${server.port}`],
    ['disabled default user', server.url],
  ]) {
    const lock = new AsyncLock({ redis: url, name: 'acl' })
    const err = await rejection(lock.lock('k', { timeout: 3000 }))
    await lock.close()
    assertRedacted(err, `ACL, ${form}`)
    assert.equal(err.code, 'KEYED_LOCK_REDIS', form)
    assert.match(err.message, /authentication failed/, form)
  }
})

test('Sentinel, quorum and TLS options unreachable or refused: no error shows a password or a key', async () => {
  const closed = await freePort()
  const forms = [
    ['Sentinel, sentinel and master passwords', { redis: { sentinels: [`redis://u:sentSECRET@127.0.0.1:${closed}`], name: 'm', password: 'masterSECRET' } }],
    ['quorum', { redis: { quorum: [1, 2, 3].map((i) => `redis://u:q${i}SECRET@127.0.0.1:${closed}`) } }],
    ['rediss://', { redis: `rediss://u:tlsSECRET@127.0.0.1:${closed}`, tls: { rejectUnauthorized: false } }],
  ]
  for (const [form, options] of forms) {
    const lock = new AsyncLock({ name: 'r', ...options })
    assertRedacted(await rejection(lock.lock('k', { timeout: 2000 })), `lock(), ${form}`)
    await lock.close()
  }
  assertRedacted(thrown(() => new AsyncLock({ redis: { sentinels: ['redis://h:1'], name: 'm', password: 42, bogus: 'xSECRET' } })), 'Sentinel option, unknown key')
  assertRedacted(thrown(() => new AsyncLock({ redis: { quorum: 'redis://u:oneSECRET@h:1' } })), 'quorum option, a string')
  assertRedacted(thrown(() => new AsyncLock({ redis: 'rediss://h:1', tls: { cert: '-----BEGIN CERTIFICATE-----', key: 'keySECRET' } })), 'tls option, a key that is not PEM')
  // PEM that does not parse: refused at construction or at the first call, never shown.
  const badPem = '-----BEGIN PRIVATE KEY-----\nnotbase64SECRET\n-----END PRIVATE KEY-----\n'
  let err = thrown(() => new AsyncLock({ redis: `rediss://127.0.0.1:${closed}`, tls: { cert: badPem, key: badPem } }))
  if (err === null) {
    const lock = new AsyncLock({ redis: `rediss://127.0.0.1:${closed}`, tls: { cert: badPem, key: badPem } })
    err = await rejection(lock.lock('k', { timeout: 2000 }))
    await lock.close()
  }
  assertRedacted(err, 'tls option, PEM that does not parse')
})

test('the redaction table', (t) => {
  for (const row of table) t.diagnostic(row)
  assert.ok(table.length > 50, `${table.length} error paths checked`)
})
