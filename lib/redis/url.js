'use strict'
// The Redis facades (keyed-lock/locky, keyed-lock/exclusive-lock) talk to Redis
// through keyed-lock's own Rust client, never through the client object the
// user hands them: fast-locky and exclusive-lock took a JS client, so all we
// can honour is *where* that client points. This turns what those libraries
// accepted (a URL, then-redis options, an ioredis or node-redis client) into
// one redis URL. A user who passed a client keeps owning it; we only read
// its options.

const { invalidConnection: connectionError } = require('../errors')

/**
 * A URL as messages show it, without its password, for every form keyed-lock
 * accepts or builds: the same rules as `redact` in src/redis/error.rs (which
 * shows URLs in the native errors). It never parses, so it also hides the
 * password of a URL that does not parse, and it hides too much rather than
 * too little: not a URL at all (no `://`, maybe a password pasted in the
 * wrong place) shows as `(not a URL)`; the userinfo runs to the *last* `@`
 * (a password may hold an unencoded `@`) and keeps only the user name; in
 * the query (`redis+unix:///path?pass=…`) everything from the first
 * parameter whose name contains `pass` on is hidden.
 */
function redactUrl(url) {
  if (Array.isArray(url)) return url.map(redactUrl).join(',')
  if (typeof url !== 'string') return '(not a URL)'
  const schemeEnd = url.indexOf('://')
  if (schemeEnd < 0) return '(not a URL)'
  let rest = url.slice(schemeEnd + 3)
  let out = url.slice(0, schemeEnd + 3)
  // A unix socket URL has no authority: an `@` there is in the path.
  if (!rest.startsWith('/')) {
    const at = rest.lastIndexOf('@')
    if (at >= 0) {
      const colon = rest.slice(0, at).indexOf(':')
      out += colon >= 0 ? rest.slice(0, colon) + ':***@' : '***@'
      rest = rest.slice(at + 1)
    }
  }
  const q = rest.indexOf('?')
  if (q < 0) return out + rest
  out += rest.slice(0, q + 1)
  const params = rest.slice(q + 1).split('&')
  for (let i = 0; i < params.length; i++) {
    const name = params[i].split('=')[0]
    if (i > 0) out += '&'
    if (name.toLowerCase().includes('pass')) return out + name + '=***'
    out += params[i]
  }
  return out
}

// Loaded lazily: lib/redis/options.js requires lib/errors.js, and this file is required early.
const redisOptions = () => require('./options')

const SCHEMES = new Set(['redis:', 'rediss:', 'redis+unix:', 'unix:'])

const isObject = (value) => value !== null && typeof value === 'object'
const nonEmpty = (value) => (typeof value === 'string' && value !== '' ? value : undefined)

/** A URL string the Rust client can open, or undefined. */
function parseUrl(text) {
  if (typeof text !== 'string') return undefined
  // A Sentinel URL (several hosts): read by lib/redis/options.js sentinelOption.
  if (/^rediss?\+sentinel:\/\/[^/]+\/[^/]/.test(text)) return text
  let url
  try {
    url = new URL(text)
  } catch {
    return undefined
  }
  if (!SCHEMES.has(url.protocol)) return undefined
  const unix = url.protocol === 'redis+unix:' || url.protocol === 'unix:'
  return (unix ? url.pathname.length > 1 : url.hostname !== '') ? text : undefined
}

/**
 * Builds a URL from loose connection fields. `host` may be an IPv6 literal;
 * credentials are percent-encoded by the URL class (redis-rs decodes them).
 */
function buildUrl({ host, port, path, username, password, db, tls }) {
  let url
  if (nonEmpty(path)) {
    url = new URL('redis+unix://')
    url.pathname = path
    if (db !== undefined && db !== null && String(db) !== '0') url.searchParams.set('db', String(db))
    if (nonEmpty(username)) url.searchParams.set('user', username)
    if (nonEmpty(password)) url.searchParams.set('pass', password)
    // URL's serializer turns an empty host into `redis+unix:` + path without the `//`.
    return 'redis+unix://' + url.pathname + url.search
  }
  host = nonEmpty(host) || '127.0.0.1'
  if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`
  url = new URL(`${tls ? 'rediss' : 'redis'}://${host}`)
  if (port !== undefined && port !== null && port !== '') url.port = String(port)
  if (nonEmpty(username)) url.username = username
  if (nonEmpty(password)) url.password = password
  if (db !== undefined && db !== null && String(db) !== '' && String(db) !== '0') url.pathname = '/' + String(db)
  return url.href.replace(/\/$/, '')
}

/**
 * A Redis Cluster client: ioredis's `Cluster` (`startupNodes`, shared
 * `options.redisOptions`) or node-redis's `createCluster` (`options.rootNodes`,
 * `options.defaults`). The seed nodes' URLs, which keyed-lock's client takes as
 * an array; undefined for anything else.
 */
function clusterUrls(client) {
  const options = isObject(client.options) ? client.options : {}
  let nodes
  let shared
  if (client.isCluster === true || Array.isArray(client.startupNodes)) {
    nodes = client.startupNodes
    shared = isObject(options.redisOptions) ? options.redisOptions : {}
  } else if (Array.isArray(options.rootNodes)) {
    nodes = options.rootNodes
    const defaults = isObject(options.defaults) ? options.defaults : {}
    shared = { ...defaults, tls: isObject(defaults.socket) ? defaults.socket.tls : undefined }
  } else {
    return undefined
  }
  if (!Array.isArray(nodes)) return []
  const common = { username: shared.username, password: shared.password, tls: Boolean(shared.tls) }
  const urls = []
  for (const node of nodes) {
    let url
    if (typeof node === 'number') url = buildUrl({ ...common, port: node })
    else if (typeof node === 'string') {
      url = parseUrl(node)
      if (url === undefined && /^[^/]+:\d+$/.test(node)) {
        const at = node.lastIndexOf(':')
        url = buildUrl({ ...common, host: node.slice(0, at), port: node.slice(at + 1) })
      }
    } else if (isObject(node)) {
      const socket = isObject(node.socket) ? node.socket : {}
      url = parseUrl(node.url) ?? buildUrl({ ...common, host: node.host ?? socket.host, port: node.port ?? socket.port })
    }
    if (url === undefined) return []
    urls.push(url)
  }
  return urls
}

/**
 * ioredis (`client.options`: host, port, path, username, password, db, tls),
 * node-redis ≥ 4 (`client.options`: url, socket {host, port, path, tls},
 * username, password, database), node_redis 2/3 (`connection_options`,
 * `options.password`/`auth_pass`, `selected_db`), and then-redis, which
 * wraps a node_redis client; a cluster client gives its seed nodes' URLs
 * (an array). Undefined when nothing says where it connects.
 */
function urlFromClient(client) {
  if (!isObject(client) && typeof client !== 'function') return undefined
  const cluster = clusterUrls(client)
  if (cluster !== undefined) return cluster.length !== 0 ? cluster : undefined
  const options = isObject(client.options) ? client.options : undefined
  if (options) {
    const socket = isObject(options.socket) ? options.socket : {}
    const fromUrl = parseUrl(options.url)
    if (fromUrl) {
      // node-redis lets the separate fields override what the url says.
      if (options.database === undefined && options.password === undefined && options.username === undefined) return fromUrl
      const u = new URL(fromUrl)
      if (options.username !== undefined) u.username = options.username
      if (options.password !== undefined) u.password = options.password
      if (options.database !== undefined) u.pathname = '/' + options.database
      return u.href
    }
    const conn = isObject(client.connection_options) ? client.connection_options : {}
    const host = options.host ?? socket.host ?? conn.host
    const port = options.port ?? socket.port ?? conn.port
    const path = options.path ?? socket.path ?? conn.path
    if (host !== undefined || port !== undefined || nonEmpty(path)) {
      return buildUrl({
        host,
        port,
        path,
        username: options.username,
        password: options.password ?? options.auth_pass,
        db: options.db ?? options.database ?? client.selected_db,
        tls: Boolean(options.tls ?? socket.tls),
      })
    }
  }
  // then-redis keeps the node_redis client it wraps.
  for (const inner of [client._redisClient, client.redisClient]) {
    if (isObject(inner) && inner !== client) {
      const url = urlFromClient(inner)
      if (url) return url
    }
  }
  return undefined
}

/** then-redis / node_redis createClient options: `{host, port, password, database}`, `{url}`, `{path}`. */
function urlFromOptions(options) {
  if (!isObject(options)) return undefined
  const fromUrl = parseUrl(options.url)
  if (fromUrl) return fromUrl
  const host = options.host ?? options.hostname
  if (host === undefined && options.port === undefined && !nonEmpty(options.path)) return undefined
  return buildUrl({
    host,
    port: options.port,
    path: options.path,
    username: options.username ?? options.user,
    password: options.password ?? options.auth_pass,
    db: options.database ?? options.db,
    tls: Boolean(options.tls),
  })
}

const DEFAULT_URL = 'redis://127.0.0.1:6379'

/**
 * fast-locky's `redis` option: a function is called once and what it
 * returns is read; a URL string (keyed-lock: or an array of Redis Cluster
 * node URLs); then-redis options; a client object; undefined means
 * `REDIS_URL`, else 127.0.0.1:6379. Returns `{ url, client }`, where
 * `client` is the object the function returned (fast-locky owned it and
 * quit it on close). Throws a TypeError naming the option otherwise.
 */
function lockyConnection(redis, env = process.env) {
  let value = redis
  let client = null
  if (typeof redis === 'function') {
    value = redis()
    if (isObject(value)) client = value
  }
  if (value === undefined || value === null) {
    const fromEnv = nonEmpty(env.REDIS_URL)
    if (fromEnv === undefined) return { url: DEFAULT_URL, client }
    const url = parseUrl(fromEnv)
    if (url) return { url, client }
    throw connectionError('environment variable REDIS_URL', 'a redis:// URL', fromEnv)
  }
  let url
  let tls
  if (typeof value === 'string') url = parseUrl(value)
  else if (Array.isArray(value)) url = value.length !== 0 && value.every((u) => parseUrl(u)) ? [...value] : undefined
  else {
    url = redisOptions().sentinelFromClient(value, 'option "redis"') ?? urlFromClient(value) ?? urlFromOptions(value)
    tls = redisOptions().tlsFromClient(value)
  }
  if (url) return { url, client, tls }
  throw connectionError(
    'option "redis"',
    'a redis:// URL (or an array of Redis Cluster node URLs), {host, port, password, database} options, an ioredis or node-redis client, or a function returning one of these',
    value,
  )
}

/**
 * exclusive-lock's `cache_connection`: an ioredis / node-redis client, or
 * (keyed-lock's additions) a URL string or `{url}`. Throws a TypeError naming
 * the option when no server address can be read from it.
 */
function cacheConnectionUrl(connection) {
  const sentinel = redisOptions().sentinelFromClient(connection, 'option "cache_connection"')
  if (sentinel) return sentinel
  const url =
    typeof connection === 'string'
      ? parseUrl(connection)
      : urlFromClient(connection) ?? (isObject(connection) ? parseUrl(connection.url) : undefined)
  if (url) return url
  throw connectionError(
    'option "cache_connection"',
    'a redis:// URL, {url}, or an ioredis or node-redis client whose options say where the server is',
    connection,
  )
}

module.exports = { redactUrl, lockyConnection, cacheConnectionUrl, urlFromClient, urlFromOptions, clusterUrls, parseUrl, DEFAULT_URL }
