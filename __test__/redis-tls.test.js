'use strict'
// Issue 14 point 1: `rediss://` with TLS options in the shape of Node's
// tls.connect (ca, cert, key, servername, rejectUnauthorized), on AsyncLock
// and read from the ioredis / node-redis clients given to the facades,
// against a real redis-server started with --tls-port. The CA, server and
// client certificates are made here with the openssl CLI. Also: a Sentinel
// client the facades cannot follow is refused, not misrouted.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const AsyncLock = require('../index.js')
const Locky = require('../locky.js')
const ExclusiveLock = require('../exclusive-lock.js')
const { startRedis, freePort } = require('../support/redis-harness')
const { makeCertificates, tlsArgs } = require('./helpers/tls')

/** A redis-server with a TLS port beside its plain one (the harness checks readiness on the plain one). */
async function startTls(certs, { authClients, cert }) {
  const tlsPort = await freePort()
  const server = await startRedis({ args: tlsArgs(certs, tlsPort, { authClients, cert }) })
  server.tlsPort = tlsPort
  return server
}

let certs
let server
let mtls
let tmp

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keyed-lock-tls-'))
  certs = makeCertificates(tmp)
  server = await startTls(certs, { authClients: false })
  mtls = await startTls(certs, { authClients: true })
})

after(async () => {
  await Promise.all([server && server.stop(), mtls && mtls.stop()])
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

async function rejection(promise) {
  try {
    await promise
  } catch (err) {
    return err
  }
  assert.fail('expected a rejection')
}

/** Takes and releases one lock; resolves with the ms the first grant took (connection + handshake included). */
async function roundTrip(options) {
  const lock = new AsyncLock({ name: 'tls', ...options })
  try {
    const started = performance.now()
    const lease = await lock.lock('k', { timeout: 4000 })
    const ms = performance.now() - started
    assert.ok(lease.token > 0)
    await lease.release()
    return ms
  } finally {
    await lock.close()
  }
}

test('rediss:// with the test CA connects; the TLS handshake cost is reported', async (t) => {
  const url = `rediss://127.0.0.1:${server.tlsPort}`
  // Same name in the URL as in the certificate: localhost works as well as the IP.
  await roundTrip({ redis: `rediss://localhost:${server.tlsPort}`, tls: { ca: certs.ca.toString(), servername: 'localhost' } })
  const tlsMs = []
  const plainMs = []
  for (let i = 0; i < 5; i++) {
    tlsMs.push(await roundTrip({ redis: url, tls: { ca: certs.ca }, prefix: `p${i}` }))
    plainMs.push(await roundTrip({ redis: server.url, prefix: `q${i}` }))
  }
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  t.diagnostic(`first grant incl. connect: TLS ${median(tlsMs).toFixed(2)} ms, plain ${median(plainMs).toFixed(2)} ms (medians of 5)`)
  // A lock over TLS serves a contended hand-off (the grant push travels on the TLS connection too).
  const a = new AsyncLock({ redis: url, tls: { ca: [certs.other, certs.ca] }, name: 'tls' })
  const b = new AsyncLock({ redis: url, tls: { ca: certs.ca, rejectUnauthorized: true }, name: 'tls', prefix: 'other-client' })
  t.after(() => Promise.all([a.close(), b.close()]))
  const held = await a.lock('handoff', { timeout: 4000 })
  const waiting = new AsyncLock({ redis: url, tls: { ca: certs.ca }, name: 'tls' })
  t.after(() => waiting.close())
  const next = waiting.lock('handoff', { timeout: 4000 })
  await new Promise((r) => setTimeout(r, 100))
  await held.release()
  const lease = await next
  assert.ok(lease.token > held.token)
  await lease.release()
})

test('a server certificate from another CA is refused: the error names the URL (no password) and says certificate', async () => {
  const url = `rediss://default:pwSECRET@127.0.0.1:${server.tlsPort}`
  const lock = new AsyncLock({ redis: url, tls: { ca: certs.other }, name: 'tls' })
  const err = await rejection(lock.lock('k', { timeout: 4000 }))
  await lock.close()
  assert.equal(err.code, 'KEYED_LOCK_REDIS')
  assert.match(err.message, new RegExp(`rediss://default:\\*\\*\\*@127\\.0\\.0\\.1:${server.tlsPort}`))
  assert.match(err.message, /TLS certificate verification failed/)
  assert.ok(!JSON.stringify(err, Object.getOwnPropertyNames(err)).includes('SECRET'))
  // Without a `ca`, the default roots (Mozilla's) do not know the test CA either.
  const noCa = new AsyncLock({ redis: `rediss://127.0.0.1:${server.tlsPort}`, name: 'tls' })
  const err2 = await rejection(noCa.lock('k', { timeout: 4000 }))
  await noCa.close()
  assert.match(err2.message, /certificate/)
})

test('rejectUnauthorized: false connects whatever the certificate', async () => {
  await roundTrip({ redis: `rediss://127.0.0.1:${server.tlsPort}`, tls: { ca: certs.other, rejectUnauthorized: false } })
  await roundTrip({ redis: `rediss://127.0.0.1:${server.tlsPort}`, tls: { rejectUnauthorized: false }, prefix: 'x' })
})

test('mutual TLS: a client certificate connects, none is refused by the server', async () => {
  const url = `rediss://127.0.0.1:${mtls.tlsPort}`
  await roundTrip({ redis: url, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey.toString() } })
  const lock = new AsyncLock({ redis: url, tls: { ca: certs.ca }, name: 'tls', prefix: 'nocert' })
  const err = await rejection(lock.lock('k', { timeout: 4000 }))
  await lock.close()
  assert.equal(err.code, 'KEYED_LOCK_REDIS')
  assert.match(err.message, new RegExp(`rediss://127\\.0\\.0\\.1:${mtls.tlsPort}`))
})

test('the tls option is validated: TypeErrors naming it', () => {
  const url = `rediss://127.0.0.1:${server.tlsPort}`
  const cases = [
    [{ ca: 42 }, /option "tls"\.ca/],
    [{ cert: certs.clientCert }, /option "tls"\.key/],
    [{ key: certs.clientKey }, /option "tls"\.cert/],
    [{ ciphers: 'x' }, /option "tls"\.ciphers/],
    ['yes', /option "tls"/],
    [{ servername: '' }, /option "tls"\.servername/],
  ]
  for (const [tls, message] of cases) {
    assert.throws(() => new AsyncLock({ redis: url, tls }), (err) => err instanceof TypeError && message.test(err.message))
  }
  // A servername other than the host, where the addresses come from the
  // servers: refused rather than applied to nodes it may not name.
  const elsewhere = { servername: 'elsewhere.example' }
  assert.throws(() => new AsyncLock({ redis: [url], tls: elsewhere }), /option "tls\.servername"/)
  assert.throws(() => new AsyncLock({ redis: { sentinels: [url], name: 'm' }, tls: elsewhere }), /option "tls\.servername"/)
  // No TLS on a unix socket.
  assert.throws(() => new AsyncLock({ redis: 'redis+unix:///tmp/x.sock', tls: true }), TypeError)
  // The key never shows in a message.
  const err = (() => {
    try {
      new AsyncLock({ redis: url, tls: { key: 'PRIVATE-SECRET' } })
    } catch (e) {
      return e
    }
  })()
  assert.ok(!err.message.includes('SECRET'))
})

test('servername: a certificate issued for another name than the host connected to', async (t) => {
  // Issued for redis.test only; reached at 127.0.0.1.
  const named = await startTls(certs, { authClients: false, cert: 'named' })
  t.after(() => named.stop())
  const url = `rediss://127.0.0.1:${named.tlsPort}`
  await roundTrip({ redis: url, tls: { ca: certs.ca, servername: 'redis.test' } })
  // Checked for the host: refused, as a certificate failure.
  for (const tls of [{ ca: certs.ca }, { ca: certs.ca, servername: 'other.test' }]) {
    const lock = new AsyncLock({ redis: url, tls, name: 'tls', prefix: `n-${tls.servername}` })
    const err = await rejection(lock.lock('k', { timeout: 4000 }))
    await lock.close()
    assert.equal(err.code, 'KEYED_LOCK_REDIS')
    assert.match(err.message, /TLS certificate verification failed/)
    assert.match(err.message, new RegExp(`rediss://127\\.0\\.0\\.1:${named.tlsPort}`))
  }
  // The connection is remade (same name) after the server drops it, and a
  // waiter is still handed the lock over it.
  const a = new AsyncLock({ redis: url, tls: { ca: certs.ca, servername: 'redis.test' }, name: 'named' })
  const b = new AsyncLock({ redis: url, tls: { ca: certs.ca, servername: 'redis.test' }, name: 'named', prefix: 'named-b' })
  t.after(() => Promise.all([a.close(), b.close()]))
  await (await a.lock('k', { timeout: 4000 })).release()
  await named.command('CLIENT', 'KILL', 'TYPE', 'pubsub')
  await named.command('CLIENT', 'KILL', 'TYPE', 'normal')
  const held = await a.lock('k', { timeout: 4000 })
  const waiting = a.lock('k', { timeout: 4000 })
  await new Promise((r) => setTimeout(r, 100))
  await held.release()
  const next = await waiting
  assert.ok(next.token > held.token)
  await next.release()
  // Read from an ioredis client's tls option by the facades too.
  const locky = new Locky({ redis: { options: { host: '127.0.0.1', port: named.tlsPort, tls: { ca: certs.ca, servername: 'redis.test' } } } })
  assert.equal(await locky.lock([{ resource: 'n', locker: 'me' }]), true)
  await locky.close()
})

test('with tls options a redis:// URL is upgraded to TLS (as ioredis does)', async () => {
  await roundTrip({ redis: `redis://127.0.0.1:${server.tlsPort}`, tls: { ca: certs.ca } })
})

test('the facades read TLS settings from an ioredis or node-redis client', async () => {
  // ioredis: options.tls holds the tls.connect options.
  const ioredisLike = { options: { host: '127.0.0.1', port: mtls.tlsPort, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } } }
  const locky = new Locky({ redis: ioredisLike })
  try {
    assert.equal(await locky.lock([{ resource: 'r', locker: 'me' }]), true)
    assert.equal(await locky.unlock(['r']), true)
  } finally {
    await locky.close()
  }
  // node-redis: options.socket = { host, port, tls: true, ca, cert, key }.
  const nodeRedisLike = {
    set() {},
    options: { socket: { host: '127.0.0.1', port: mtls.tlsPort, tls: true, ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } },
  }
  const exclusive = new ExclusiveLock({ name: 'r', cache_connection: nodeRedisLike })
  await exclusive.acquire()
  await exclusive.release()
  // The same client without its certificate is refused by the server.
  const bare = new ExclusiveLock({ name: 'r2', cache_connection: { set() {}, options: { socket: { host: '127.0.0.1', port: mtls.tlsPort, tls: true, ca: certs.ca } } } })
  await rejection(bare.acquire())
})

test('the facades refuse a Sentinel client they cannot follow rather than misroute it to localhost:6379', () => {
  // No master name (ioredis would fail too), and an ioredis client for a replica.
  const nameless = { set() {}, options: { sentinels: [{ host: '127.0.0.1', port: 26379 }], host: 'localhost', port: 6379 } }
  const replica = { set() {}, options: { sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'mymaster', role: 'slave' } }
  const nodeRedisNameless = { set() {}, options: { sentinelRootNodes: [{ host: '127.0.0.1', port: 26379 }] } }
  // ioredis's natMap rewrites the sentinels' addresses: not followed, so refused.
  const natMapped = { set() {}, options: { sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'mymaster', natMap: { '10.0.0.1:6379': { host: '127.0.0.1', port: 6379 } } } }
  for (const client of [nameless, replica, nodeRedisNameless, natMapped]) {
    assert.throws(() => new Locky({ redis: client }), (err) => err instanceof TypeError && /Sentinel/.test(err.message) && /option "redis"/.test(err.message))
    assert.throws(
      () => new ExclusiveLock({ name: 'r', cache_connection: client }),
      (err) => err instanceof TypeError && /Sentinel/.test(err.message) && /option "cache_connection"/.test(err.message),
    )
  }
})
