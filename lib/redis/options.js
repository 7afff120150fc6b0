'use strict'
// What a Redis URL cannot say: TLS certificates (and, for the facades, what
// an ioredis or node-redis client was configured with). Validated here, on
// the JS thread, so a bad option is a TypeError naming it; the native side
// (src/redis/conn.rs) gets PEM bytes and booleans only.
//
// The `tls` option has the shape of Node's `tls.connect` options, as
// ioredis's `tls` and node-redis's `socket` take them:
//   { ca, cert, key, servername, rejectUnauthorized }
// `ca`, `cert`: PEM string or Buffer, or an array of them; `key`: PEM string
// or Buffer. `tls: true` means TLS with the default trusted roots. Other
// `tls.connect` options (ciphers, minVersion, checkServerIdentity, ...) are
// not honoured and are refused when given to AsyncLock directly.

const crypto = require('node:crypto')
const { invalidArg, redisSentinelClient, replicasNotConfirmed } = require('../errors')

const isObject = (value) => value !== null && typeof value === 'object'
const isPem = (value) => typeof value === 'string' || value instanceof Uint8Array

const TLS_KEYS = new Set(['ca', 'cert', 'key', 'servername', 'rejectUnauthorized'])

/** PEM text(s) as one Buffer (a PEM file may hold several certificates). */
function pem(name, value, many) {
  if (value === undefined || value === null) return undefined
  const items = many && Array.isArray(value) ? value : [value]
  // Not PEM at all (a file path, DER bytes, a pasted secret): refused here, never echoed.
  const looksPem = (item) => Buffer.from(item).includes('-----BEGIN ')
  if (items.length === 0 || !items.every(isPem) || !items.every(looksPem)) {
    throw invalidArg(name, many ? 'PEM text (-----BEGIN …) as a string or Buffer, or an array of them' : 'PEM text (-----BEGIN …) as a string or Buffer', typeof value === 'string' ? '(a string that is not PEM)' : value)
  }
  return Buffer.concat(items.flatMap((item) => [Buffer.from(item), Buffer.from('\n')]))
}

/**
 * The TLS settings of `tls` (AsyncLock's option, or what a client object
 * carries) as the native side takes them, or undefined for no TLS options.
 * `strict`: refuse keys keyed-lock cannot honour (AsyncLock's own option);
 * a client object's other settings are not ours to judge.
 */
function tlsOptions(tls, name = 'option "tls"', strict = true) {
  if (tls === undefined || tls === null || tls === false) return undefined
  if (tls === true) return { rejectUnauthorized: true }
  if (!isObject(tls) || Array.isArray(tls)) throw invalidArg(name, 'true or an object of tls.connect options (ca, cert, key, servername, rejectUnauthorized)', tls)
  if (strict) {
    for (const key of Object.keys(tls)) {
      if (!TLS_KEYS.has(key) && tls[key] !== undefined) {
        throw invalidArg(`${name}.${key}`, 'unset: keyed-lock honours only ca, cert, key, servername and rejectUnauthorized', tls[key])
      }
    }
  }
  const out = {
    ca: pem(`${name}.ca`, tls.ca, true),
    cert: pem(`${name}.cert`, tls.cert, true),
    key: pem(`${name}.key`, tls.key, false),
    rejectUnauthorized: tls.rejectUnauthorized !== false,
  }
  if ((out.cert === undefined) !== (out.key === undefined)) {
    throw invalidArg(`${name}.${out.cert === undefined ? 'cert' : 'key'}`, `given with ${name}.${out.cert === undefined ? 'key' : 'cert'} (a client certificate needs both)`, undefined)
  }
  if (tls.servername !== undefined && tls.servername !== null) {
    if (typeof tls.servername !== 'string' || tls.servername === '') throw invalidArg(`${name}.servername`, 'a host name', tls.servername)
    out.servername = tls.servername
  }
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k]
  return out
}

/**
 * The URL(s) and native options of a connection: with TLS options a
 * `redis://` URL is upgraded to `rediss://` (as ioredis does with `tls`), a
 * unix socket is refused (no TLS there). `servername` (the name the server
 * certificate must be valid for, sent as SNI) may differ from the URL's host
 * for a single Redis (connect to 127.0.0.1, verify `redis.test`); on a
 * Cluster or through Sentinel, where the nodes' addresses come from the
 * servers, it must be the URL's host. `key` identifies the settings for the
 * per-thread client cache without keeping a copy of the private key in it.
 */
function connection(urls, tls, sentinel, addressesFromServers = false) {
  if (sentinel !== undefined) {
    // The sentinels keep their own scheme; `tls` is for the master (and for
    // any rediss:// sentinel).
    const master = tls === undefined ? sentinel.masterUrl : connection([sentinel.masterUrl], tls, undefined, true).urls[0]
    const inner = tls === undefined ? { native: {}, key: '' } : connection([], tls)
    const native = { ...inner.native, sentinel: { name: sentinel.name, masterUrl: master } }
    return { urls, native, key: `\0sentinel:${sentinel.name}\0${master}${inner.key}` }
  }
  if (tls === undefined) return { urls, native: undefined, key: '' }
  const out = urls.map((url) => {
    const unix = url.startsWith('redis+unix:') || url.startsWith('unix:')
    if (unix) throw invalidArg('option "tls"', 'unset for a unix socket URL (TLS needs a TCP rediss:// URL)', tls)
    return url.startsWith('redis://') ? 'rediss://' + url.slice('redis://'.length) : url
  })
  if (tls.servername !== undefined && (addressesFromServers || out.length !== 1)) {
    for (const url of out) {
      let host
      try {
        host = new URL(url).hostname.replace(/^\[|\]$/g, '')
      } catch {
        continue // the native side reports the bad URL
      }
      if (host !== tls.servername) {
        throw invalidArg(
          'option "tls.servername"',
          "the URL's host on a Redis Cluster or through Sentinel (the nodes' addresses come from the servers)",
          tls.servername,
        )
      }
    }
  }
  const hash = crypto.createHash('sha256')
  for (const part of [tls.ca, tls.cert, tls.key]) hash.update(part ?? '').update('\0')
  hash.update(String(tls.rejectUnauthorized)).update('\0').update(tls.servername ?? '')
  const native = { tls: { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized, servername: tls.servername } }
  for (const k of ['ca', 'cert', 'key', 'servername']) if (native.tls[k] === undefined) delete native.tls[k]
  return { urls: out, native, key: '\0tls:' + hash.digest('hex') }
}

/**
 * The TLS settings an ioredis or node-redis client (or its options) was
 * made with: ioredis `options.tls` (a Cluster: `redisOptions.tls`),
 * node-redis `options.socket` with `tls: true` (a cluster:
 * `defaults.socket`), whose tls.connect fields sit beside it. Undefined when
 * the client does not use TLS or says nothing about certificates.
 */
function tlsFromClient(client) {
  if (!isObject(client) && typeof client !== 'function') return undefined
  const options = isObject(client.options) ? client.options : client
  const tlsOf = (opts) => {
    if (!isObject(opts)) return undefined
    if (opts.tls !== undefined && opts.tls !== false && opts.tls !== null) return tlsOptions(opts.tls, 'the client\'s tls option', false)
    const socket = isObject(opts.socket) ? opts.socket : undefined
    if (socket && socket.tls) return tlsOptions(socket, 'the client\'s socket option', false)
    return undefined
  }
  return (
    tlsOf(options) ??
    tlsOf(options.redisOptions) ??
    tlsOf(options.defaults) ??
    (isObject(client._redisClient) ? tlsFromClient(client._redisClient) : undefined)
  )
}

/**
 * The Sentinel settings of an ioredis Sentinel client (`new Redis({
 * sentinels, name, username, password, db, sentinelUsername,
 * sentinelPassword })`) or a node-redis `createSentinel({ name,
 * sentinelRootNodes, nodeClientOptions, sentinelClientOptions })`, as
 * AsyncLock's `redis: { sentinels, name, ... }` option; undefined for any
 * other client. Such a client's host and port fields are only ioredis's
 * defaults (localhost:6379): read as a plain client it would send the locks
 * to whatever Redis listens there, so a shape keyed-lock cannot follow (no
 * master name, or ioredis `role: 'slave'`) is refused with a TypeError
 * naming `name`, never misrouted.
 */
function sentinelFromClient(client, name) {
  if (!isObject(client) && typeof client !== 'function') return undefined
  const options = isObject(client.options) ? client.options : client
  const ioredis = Array.isArray(options.sentinels) && options.sentinels.length !== 0
  const nodeRedis = Array.isArray(options.sentinelRootNodes) || Array.isArray(client.sentinelRootNodes)
  if (!ioredis && !nodeRedis) return undefined
  const masterName = options.name
  // ioredis's natMap rewrites the addresses the sentinels give: read
  // without it, the locks would go to the unmapped ones.
  const mapped = ioredis && options.natMap !== undefined && options.natMap !== null
  if (typeof masterName !== 'string' || masterName === '' || (ioredis && options.role === 'slave') || mapped) throw redisSentinelClient(name)
  const nodes = ioredis ? options.sentinels : options.sentinelRootNodes ?? client.sentinelRootNodes
  const node = isObject(options.nodeClientOptions) ? options.nodeClientOptions : {}
  const sentinelSide = isObject(options.sentinelClientOptions) ? options.sentinelClientOptions : {}
  const sentinelUser = ioredis ? options.sentinelUsername : sentinelSide.username
  const sentinelPass = ioredis ? options.sentinelPassword : sentinelSide.password
  // Sentinels over TLS: ioredis's enableTLSForSentinelMode / sentinelTLS,
  // node-redis's sentinelClientOptions.socket.tls (the `tls` settings,
  // read by tlsFromClient, apply to them as to the master).
  const sentinelTls = ioredis
    ? Boolean(options.enableTLSForSentinelMode || options.sentinelTLS)
    : isObject(sentinelSide.socket) && Boolean(sentinelSide.socket.tls)
  const sentinels = nodes.map((n) => {
    const host = isObject(n) ? (n.host ?? (isObject(n.socket) ? n.socket.host : undefined)) : undefined
    const port = isObject(n) ? (n.port ?? (isObject(n.socket) ? n.socket.port : undefined)) : undefined
    const url = new URL(`${sentinelTls ? 'rediss' : 'redis'}://${host && host.includes(':') && !host.startsWith('[') ? `[${host}]` : host || '127.0.0.1'}:${port ?? 26379}`)
    if (typeof sentinelUser === 'string' && sentinelUser !== '') url.username = sentinelUser
    if (typeof sentinelPass === 'string' && sentinelPass !== '') url.password = sentinelPass
    return url.href.replace(/\/$/, '')
  })
  const out = { sentinels, name: masterName }
  const username = ioredis ? options.username : node.username
  const password = ioredis ? options.password : node.password
  const db = ioredis ? options.db : node.database
  if (typeof username === 'string' && username !== '') out.username = username
  if (typeof password === 'string' && password !== '') out.password = password
  if (Number.isInteger(db) && db > 0) out.db = db
  return out
}

const SENTINEL_KEYS = new Set(['sentinels', 'name', 'username', 'password', 'db'])

const SENTINEL_URL = /^(rediss?)\+sentinel:\/\/(?:(.*)@)?([^@/?#]+)\/([^/?#]+)(?:\/(\d+))?\/?$/

/**
 * `redis+sentinel://[user:pass@]host:port[,host:port…]/name[/db]` (or
 * `rediss+sentinel://`, TLS to the sentinels and the master) as the object
 * form of the Sentinel option; the credentials are the master's. Undefined
 * for any other string.
 */
function sentinelFromUrl(text) {
  if (!/^rediss?\+sentinel:/.test(text)) return undefined
  const m = SENTINEL_URL.exec(text)
  const expected = 'a Sentinel URL: redis+sentinel://[user:pass@]host:port[,host:port...]/masterName[/db]'
  if (m === null) throw invalidArg('option "redis"', expected, '(a malformed redis+sentinel:// URL)')
  const [, scheme, userinfo, hosts, name, db] = m
  const sentinels = hosts.split(',').map((h) => `${scheme}://${/:\d+$/.test(h) ? h : h + ':26379'}`)
  const out = { sentinels, name: decodeURIComponent(name) }
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':')
    const username = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon))
    if (username !== '') out.username = username
    if (colon >= 0) out.password = decodeURIComponent(userinfo.slice(colon + 1))
  }
  if (db !== undefined) out.db = Number(db)
  return { options: out, tls: scheme === 'rediss' }
}

/** A sentinel given as a URL, `host:port`, or `{ host, port }`: its URL. */
function sentinelUrl(value, name) {
  if (typeof value === 'string') {
    if (/^rediss?:\/\//.test(value)) return value
    if (/^[^/]+:\d+$/.test(value)) return 'redis://' + value
  } else if (isObject(value) && (typeof value.host === 'string' || value.port !== undefined)) {
    let host = typeof value.host === 'string' && value.host !== '' ? value.host : '127.0.0.1'
    if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`
    return `redis://${host}:${value.port ?? 26379}`
  }
  throw invalidArg(name, 'a sentinel as a redis:// URL, "host:port" or { host, port }', typeof value === 'string' ? '(a string)' : value)
}

/**
 * AsyncLock's `redis: { sentinels, name, username, password, db }`: a
 * Sentinel-managed master. Undefined when `redis` is not an object of this
 * shape (a URL, or an array of cluster URLs). `masterUrl` carries what
 * reaching the master needs besides its address (credentials, db); its
 * host is a placeholder the native side replaces.
 */
function sentinelOption(redis) {
  let scheme = 'redis'
  if (typeof redis === 'string') {
    const fromUrl = sentinelFromUrl(redis)
    if (fromUrl === undefined) return undefined
    redis = fromUrl.options
    if (fromUrl.tls) scheme = 'rediss'
  }
  if (!isObject(redis) || Array.isArray(redis)) return undefined
  for (const key of Object.keys(redis)) {
    if (!SENTINEL_KEYS.has(key) && redis[key] !== undefined) {
      throw invalidArg(`option "redis".${key}`, 'unset: a Sentinel redis option takes sentinels, name, username, password and db', '(set)')
    }
  }
  if (!Array.isArray(redis.sentinels) || redis.sentinels.length === 0) {
    throw invalidArg('option "redis".sentinels', 'a non-empty array of sentinel URLs', redis.sentinels)
  }
  if (typeof redis.name !== 'string' || redis.name === '') {
    throw invalidArg('option "redis".name', "the master's name in the sentinels' configuration (e.g. 'mymaster')", redis.name)
  }
  const sentinels = redis.sentinels.map((s, i) => sentinelUrl(s, `option "redis".sentinels[${i}]`))
  const master = new URL(`${scheme}://sentinel-master:6379`)
  for (const key of ['username', 'password']) {
    const value = redis[key]
    if (value === undefined || value === null) continue
    // Never echoed: it may be a password.
    if (typeof value !== 'string') throw invalidArg(`option "redis".${key}`, 'a string', typeof value)
    master[key] = value
  }
  if (redis.db !== undefined && redis.db !== null) {
    if (!Number.isInteger(redis.db) || redis.db < 0) throw invalidArg('option "redis".db', 'a database number', redis.db)
    master.pathname = '/' + redis.db
  }
  return { sentinels, name: redis.name, masterUrl: master.href.replace(/\/$/, '') }
}

const WAIT_TIMEOUT_MS = 1000

/**
 * AsyncLock's `waitReplicas`: a number of replicas, or `{ replicas, timeout }`
 * (timeout in ms, default 1000; WAIT's 0, "for ever", is refused: a lock
 * acquisition must end). Undefined when unset.
 */
function waitReplicasOption(value) {
  if (value === undefined || value === null || value === 0) return undefined
  const expected = 'a number of replicas (an integer >= 1) or { replicas, timeout } (timeout: milliseconds >= 1)'
  const spec = typeof value === 'number' ? { replicas: value } : value
  if (!isObject(spec)) throw invalidArg('option "waitReplicas"', expected, value)
  const replicas = spec.replicas
  const timeout = spec.timeout === undefined ? WAIT_TIMEOUT_MS : spec.timeout
  if (!Number.isInteger(replicas) || replicas < 1) throw invalidArg('option "waitReplicas"', expected, value)
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > 2 ** 31 - 1) throw invalidArg('option "waitReplicas".timeout', 'an integer number of milliseconds >= 1', timeout)
  return { replicas, timeout }
}

/**
 * After a grant: makes it count only once `wait.replicas` replicas have it.
 * An EXTEND first (a write on this client's connection, after the grant in
 * the one replication stream, so acknowledging it acknowledges the grant,
 * whichever connection wrote the grant: a hand-off is written by the
 * releaser's), then `WAIT replicas timeout`. Too few: the lease is released
 * and the acquisition fails with KEYED_LOCK_REPLICAS.
 */
async function confirmReplicas(client, lease, names, ttl, wait) {
  let acked = 0
  try {
    if (await client.extend(lease.id, ttl)) acked = Number(await client.command(['WAIT', wait.replicas, wait.timeout]))
  } catch (err) {
    await client.release(lease.id).catch(() => {})
    throw err
  }
  if (acked >= wait.replicas) return
  await client.release(lease.id).catch(() => {})
  throw replicasNotConfirmed(names, acked, wait.replicas, wait.timeout)
}

/** The masters of `redis: { quorum }`: at least 3 distinct URL strings (2 would need both for a majority). */
function quorumOption(urls) {
  const expected = 'an array of at least 3 distinct Redis URLs of independent masters'
  if (!Array.isArray(urls) || urls.length < 3 || urls.some((u) => typeof u !== 'string' || u === '') || new Set(urls).size !== urls.length) {
    throw invalidArg('option "redis".quorum', expected, Array.isArray(urls) ? `${urls.length} entries` : typeof urls)
  }
  return urls
}

module.exports = { quorumOption, waitReplicasOption, confirmReplicas, sentinelOption, sentinelFromClient, tlsOptions, connection, tlsFromClient }
