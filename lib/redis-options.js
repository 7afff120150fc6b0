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
const { invalidArg, redisSentinelClient } = require('./errors')

const isObject = (value) => value !== null && typeof value === 'object'
const isPem = (value) => typeof value === 'string' || value instanceof Uint8Array

const TLS_KEYS = new Set(['ca', 'cert', 'key', 'servername', 'rejectUnauthorized'])

/** PEM text(s) as one Buffer (a PEM file may hold several certificates). */
function pem(name, value, many) {
  if (value === undefined || value === null) return undefined
  const items = many && Array.isArray(value) ? value : [value]
  if (items.length === 0 || !items.every(isPem)) {
    throw invalidArg(name, many ? 'a PEM string or Buffer, or an array of them' : 'a PEM string or Buffer', value)
  }
  return Buffer.concat(items.flatMap((item) => [Buffer.from(item), Buffer.from('\n')]))
}

/**
 * The TLS settings of `tls` (AsyncLock's option, or what a client object
 * carries) as the native side takes them, or undefined for no TLS options.
 * `strict`: refuse keys keylock cannot honour (AsyncLock's own option);
 * a client object's other settings are not ours to judge.
 */
function tlsOptions(tls, name = 'option "tls"', strict = true) {
  if (tls === undefined || tls === null || tls === false) return undefined
  if (tls === true) return { rejectUnauthorized: true }
  if (!isObject(tls) || Array.isArray(tls)) throw invalidArg(name, 'true or an object of tls.connect options (ca, cert, key, servername, rejectUnauthorized)', tls)
  if (strict) {
    for (const key of Object.keys(tls)) {
      if (!TLS_KEYS.has(key) && tls[key] !== undefined) {
        throw invalidArg(`${name}.${key}`, 'unset: keylock honours only ca, cert, key, servername and rejectUnauthorized', tls[key])
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
 * unix socket is refused (no TLS there), and `servername` must be the URL's
 * host (the TLS name is the host keylock connects to; put the certificate's
 * name in the URL). `key` identifies the settings for the per-thread client
 * cache without keeping a copy of the private key in it.
 */
function connection(urls, tls) {
  if (tls === undefined) return { urls, native: undefined, key: '' }
  const out = urls.map((url) => {
    const unix = url.startsWith('redis+unix:') || url.startsWith('unix:')
    if (unix) throw invalidArg('option "tls"', 'unset for a unix socket URL (TLS needs a TCP rediss:// URL)', tls)
    return url.startsWith('redis://') ? 'rediss://' + url.slice('redis://'.length) : url
  })
  if (tls.servername !== undefined) {
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
          "the URL's host (keylock verifies the certificate for the host it connects to: put that name in the URL)",
          tls.servername,
        )
      }
    }
  }
  const hash = crypto.createHash('sha256')
  for (const part of [tls.ca, tls.cert, tls.key]) hash.update(part ?? '').update('\0')
  hash.update(String(tls.rejectUnauthorized))
  const native = { tls: { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized } }
  for (const k of ['ca', 'cert', 'key']) if (native.tls[k] === undefined) delete native.tls[k]
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
 * Throws when `client` is a Sentinel client (ioredis `new Redis({ sentinels,
 * name })`, node-redis `createSentinel`): the facades read where a client
 * points, and such a client's host/port fields are only ioredis's defaults
 * (localhost:6379), so reading them would send the locks to whatever Redis
 * listens there. `name` is the facade option.
 */
function refuseSentinelClient(client, name) {
  if (!isObject(client) && typeof client !== 'function') return
  const options = isObject(client.options) ? client.options : client
  const sentinels =
    (Array.isArray(options.sentinels) && options.sentinels.length !== 0) ||
    Array.isArray(options.sentinelRootNodes) ||
    Array.isArray(client.sentinelRootNodes)
  if (sentinels) throw redisSentinelClient(name)
}

module.exports = { tlsOptions, connection, tlsFromClient, refuseSentinelClient }
