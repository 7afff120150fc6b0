'use strict'
// The JS half of the Redis reach (src/redis/mod.rs has the guarantees).
// RedisClient: one Rust client per (url, prefix) per thread, shared by every
// lock and facade that names them, reference-counted. RedisSpace: the lock
// space an `AsyncLock({ redis })` runs on. Unlike the in-process spaces,
// every decision takes a round trip, so a grant always arrives later than
// the call that asked for it (`remote = true` tells index.js so).

const native = require('./native')
const { Lease, leaseLost } = require('./lease')
const { REMOTE } = require('./engine')
const { messages, invalidArg, invalidUrl } = require('./errors')
const { redactUrl } = require('./redis-url')
const redisOptions = require('./redis-options')
const { ttlOption } = require('./validate')

/** Lease time-to-live when the caller gives none; the watchdog renews it every third of that. */
const DEFAULT_TTL = 10000
const MODES = { try: 0, wait: 1, force: 2 }
/** The native outcome of an acquisition (src/core/outcome.rs), as the status this file reports. */
const STATUS = {
  [native.OUTCOME.GRANTED]: 'granted',
  [native.OUTCOME.BUSY]: 'busy',
  [native.OUTCOME.REJECTED]: 'rejected',
  [native.OUTCOME.TIMED_OUT]: 'timeout',
}

/** `${url}\0${prefix}` -> RedisClient of this thread */
const clients = new Map()

// A process that ends holding leases (its script ran out, or process.exit())
// frees them at once rather than a ttl later. Synchronous, bounded to half a
// second per client by the native side.
let exitHooked = false
function closeAllAtExit() {
  for (const client of clients.values()) native.redisCloseAtExit(client.handle)
}

// A promise made by a napi async function does not keep Node's event loop
// alive, so `await lock.lock(k)` in a script with nothing else to do would
// end the process mid-wait, and a final `await lease.release()` could exit
// before the release reached Redis. One ref'd timer stands in for all calls
// in flight.
let inFlight = 0
let keepAliveTimer = null
function keepAlive(promise) {
  if (inFlight++ === 0) keepAliveTimer = setInterval(() => {}, 0x7fffffff)
  const done = () => {
    if (--inFlight === 0) clearInterval(keepAliveTimer)
  }
  promise.then(done, done)
  return promise
}

function coded(message, code) {
  const out = new Error(message)
  out.code = code
  return out
}

/** A native error as the user sees it, chosen by its `code` (src/core/error.rs). */
function fromNative(err) {
  switch (err && err.code) {
    case 'KEYLOCK_REDIS':
      return coded('keylock: Redis at ' + err.message, err.code)
    case 'KEYLOCK_CLOSED':
      return coded('keylock: ' + err.message, err.code)
    case 'KEYLOCK_CROSSSLOT': {
      const out = new TypeError(
        `keylock: keys[${err.keyIndex}] hashes to another Redis Cluster slot than keys[0]; ` +
          'every key of one request must share a hash tag, e.g. "{order:42}:items" and "{order:42}:total"',
      )
      out.code = 'ERR_INVALID_ARG_VALUE'
      return out
    }
    default:
      return err
  }
}

/**
 * A URL string, or an array of seed-node URLs for a Redis Cluster. Returns
 * the list of URLs.
 */
function checkUrl(url, name) {
  const urls = Array.isArray(url) ? url : [url]
  if (urls.length === 0 || urls.some((u) => typeof u !== 'string' || u === '')) {
    throw invalidArg(
      name,
      'a Redis URL such as "redis://127.0.0.1:6379" or "redis+unix:///path/to/redis.sock", ' +
        'or an array of Redis Cluster node URLs',
      url,
    )
  }
  return urls
}

/** A lease ttl in whole ms within the bounds of lib/errors.js (TypeError / RangeError naming `name`). */
function checkTtl(ttl, name) {
  if (ttl === undefined) return DEFAULT_TTL
  return ttlOption(name, ttl)
}

class RedisClient {
  /**
   * The client of this thread for `url` under `prefix` (one connection,
   * made on first use). Every open() needs its close().
   */
  static open(url, { prefix = 'keylock', tls } = {}) {
    // `tls`: already read by lib/redis-options.js tlsOptions (or undefined);
    // an object `url` is a Sentinel-managed master (lib/redis-options.js).
    const sentinel = redisOptions.sentinelOption(url)
    const conn = redisOptions.connection(sentinel ? sentinel.sentinels : checkUrl(url, 'option "redis"'), tls, sentinel)
    const urls = conn.urls
    if (typeof prefix !== 'string' || prefix === '') throw invalidArg('option "prefix"', 'a non-empty string', prefix)
    const id = (Array.isArray(url) ? 'cluster:' + urls.join(',') : urls.join(',')) + '\0' + prefix + conn.key
    let client = clients.get(id)
    if (client === undefined) {
      client = new RedisClient(urls, Array.isArray(url), prefix, id, conn.native)
      clients.set(id, client)
      if (!exitHooked) {
        exitHooked = true
        process.once('exit', closeAllAtExit)
      }
    } else {
      client.refs++
    }
    return client
  }

  constructor(urls, cluster, prefix, id, nativeOptions) {
    this.url = cluster || urls.length > 1 ? urls : urls[0]
    this.cluster = cluster
    this.prefix = prefix
    this.id = id
    this.refs = 1
    this.requests = 0
    /** lease id -> called once if the lease is lost */
    this.lostHandlers = new Map()
    try {
      this.handle = native.redisOpen(urls, cluster, prefix, (event) => this._lost(event), nativeOptions)
    } catch (err) {
      // Shown without its password (the native cause redacts it the same way).
      throw invalidUrl('option "redis"', redactUrl(this.url), err)
    }
  }

  _lost({ lease, reason }) {
    const handler = this.lostHandlers.get(lease)
    if (handler === undefined) return
    this.lostHandlers.delete(lease)
    const cause = new Error('keylock: ' + reason)
    cause.code = 'KEYLOCK_LEASE_LOST'
    handler(cause)
  }

  /** The Redis key that holds the lease of lock name `name`. */
  keyOf(name) {
    return native.redisLeaseKey(this.prefix, name)
  }

  /**
   * Takes every name of `names` at once (or waits in every queue at once).
   * Resolves { status: 'granted' | 'busy' | 'rejected' | 'timeout', lease,
   * index, holder, pttl }; lease is { id, owner, tokens } when granted.
   * An aborted `signal` ends the wait like a timeout ('timeout'), unless the
   * grant won the race (then 'granted': the caller holds it).
   */
  acquire(names, opts = {}) {
    const ttl = checkTtl(opts.ttl, 'option "ttl"')
    const owner = opts.owner === undefined ? '' : String(opts.owner)
    const request = ++this.requests
    const signal = opts.signal
    const mode = opts.force ? MODES.force : opts.wait === false ? MODES.try : MODES.wait
    let onAbort = null
    if (signal !== undefined) {
      onAbort = () => native.redisAbort(this.handle, request)
      if (signal.aborted) onAbort()
      else signal.addEventListener('abort', onAbort, { once: true })
    }
    let asked
    try {
      // Started synchronously (so calls reach Redis in call order); a closed
      // client or a refused key throws here and rejects below.
      asked = keepAlive(
        native.redisAcquire(this.handle, request, names, {
          ttl,
          timeout: opts.timeout > 0 ? opts.timeout : 0,
          mode,
          maxPending: opts.maxPending === undefined || opts.maxPending < 0 ? -1 : opts.maxPending,
          skipQueue: !!opts.skipQueue,
          owner,
          watchdog: opts.watchdog !== false,
        }),
      )
    } catch (err) {
      asked = Promise.reject(err)
    }
    return asked.then(
      (r) => {
        if (onAbort !== null) signal.removeEventListener('abort', onAbort)
        const status = STATUS[r.outcome]
        const lease = status === 'granted' ? { id: r.lease, owner, tokens: r.tokens } : null
        const out = { status, lease, index: r.index, holder: r.holder === undefined ? null : r.holder, pttl: r.pttl }
        if (lease === null || opts.waitReplicas === undefined) return out
        return redisOptions.confirmReplicas(this, lease, names, ttl, opts.waitReplicas).then(() => out)
      },
      (err) => {
        if (onAbort !== null) signal.removeEventListener('abort', onAbort)
        throw fromNative(err)
      },
    )
  }

  /** true: released (each name handed to its next waiter); false: it had been lost. */
  release(leaseId) {
    this.lostHandlers.delete(leaseId)
    return keepAlive(native.redisRelease(this.handle, leaseId)).catch((err) => {
      throw fromNative(err)
    })
  }

  /** true: renewed to `ttl` ms; false: lost (an owner check in one script; never revived). */
  extend(leaseId, ttl) {
    return keepAlive(native.redisExtend(this.handle, leaseId, checkTtl(ttl, 'ttl'))).catch((err) => {
      throw fromNative(err)
    })
  }

  /** `handler(cause)` runs once if the watchdog finds the lease lost or cannot confirm it. */
  onLost(leaseId, handler) {
    this.lostHandlers.set(leaseId, handler)
  }

  /** { owner, pttl } of the lease on `name`, or null when nobody holds it. */
  inspect(name) {
    return keepAlive(native.redisInspect(this.handle, name)).then(
      (r) => (r.owner === undefined || r.owner === null ? null : { owner: r.owner, pttl: r.pttl, waiters: r.waiters }),
      (err) => {
        throw fromNative(err)
      },
    )
  }

  /** Whether anybody, in any process, holds or waits for `name` (one synchronous round trip). */
  isBusy(name) {
    try {
      return native.redisIsBusy(this.handle, name)
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** A raw command (for facades' bookkeeping); the reply as plain JS values. */
  command(args) {
    return keepAlive(native.redisCommand(this.handle, args.map(String))).then(JSON.parse, (err) => {
      throw fromNative(err)
    })
  }

  /** Drops one reference; the last releases every lease still held and closes the connection. */
  close() {
    if (this.refs === 0) return Promise.resolve()
    if (--this.refs > 0) return Promise.resolve()
    clients.delete(this.id)
    this.lostHandlers.clear()
    return keepAlive(native.redisClose(this.handle))
  }
}

/**
 * The lock space of `new AsyncLock({ redis, name })`: the keys of lock
 * `name` under the client's prefix, shared with every process using them.
 */
class RedisSpace {
  constructor(url, { name, prefix, ttl, tls, waitReplicas } = {}) {
    if (name !== undefined && typeof name !== 'string') throw invalidArg('option "name"', 'a string', name)
    this.ttl = checkTtl(ttl, 'option "ttl"')
    this.waitReplicas = redisOptions.waitReplicasOption(waitReplicas)
    // Required here: lib/redis-quorum.js builds on RedisClient.
    const { QuorumClient, quorumUrls } = require('./redis-quorum')
    const quorum = quorumUrls(url)
    if (this.waitReplicas !== undefined && (Array.isArray(url) || quorum !== undefined)) {
      throw invalidArg('option "waitReplicas"', 'unset on a Redis Cluster or a quorum (WAIT is per node)', waitReplicas)
    }
    const connect = { prefix: prefix === undefined ? 'keylock' : prefix, tls: redisOptions.tlsOptions(tls) }
    this.client = quorum !== undefined ? new QuorumClient(redisOptions.quorumOption(quorum), connect) : RedisClient.open(url, connect)
    this.namespace = name ? name + ':' : ''
    this.remote = true
    /** key -> holds + waits of this process, for `queues` and isBusy() without a key */
    this.local = new Map()
    this.closed = false
  }

  intern(key) {
    if (typeof key === 'symbol') {
      throw invalidArg('key', 'a string or a number on the Redis reach (a symbol cannot be shared between processes)', key)
    }
    return key
  }

  _track(names, delta) {
    for (const name of typeof names === 'string' ? [names] : names) {
      const n = (this.local.get(name) || 0) + delta
      if (n === 0) this.local.delete(name)
      else this.local.set(name, n)
    }
  }

  /** Decides nothing synchronously: the face starts the round trip (request()). */
  acquireOne() {
    return REMOTE
  }

  acquireMany() {
    return REMOTE
  }

  /**
   * Asks for the task's keys. Resolves { status, lease, index } as
   * RedisClient.acquire; index.js runs, refuses or times the task out.
   */
  request(task, { timeout, maxPending, skipQueue, signal }) {
    const names = typeof task.name === 'string' ? [task.name] : task.name
    this._track(names, 1)
    return this.client
      .acquire(
        names.map((n) => this.namespace + n),
        { ttl: this.ttl, timeout, maxPending, skipQueue, signal, waitReplicas: this.waitReplicas },
      )
      .then(
        (r) => {
          if (r.status !== 'granted') this._track(names, -1)
          return r
        },
        (err) => {
          this._track(names, -1)
          throw err
        },
      )
  }

  /** Releases the task's lease; the hand-off to the next waiter happens in Redis. */
  /**
   * Releases a running task's lease. Unlike the in-process spaces it answers
   * with the release in flight, which resolves once Redis has it (true) or
   * the release failed (false: the watchdog has stopped, so the lease runs
   * out within its ttl and passes on then; not the caller's error).
   */
  releaseIdle(ids, task) {
    this._track(ids, -1)
    if (task.ticket === -1) return Promise.resolve(false)
    return this.client.release(task.ticket).catch(() => false)
  }

  isBusy(key) {
    return this.client.isBusy(this.namespace + this.intern(key))
  }

  /** Whether this process holds or waits for any key of this lock. */
  get busy() {
    return this.local.size !== 0
  }

  /** async-lock's `queues`, for this process's holds and waits. */
  snapshot() {
    const out = Object.create(null)
    for (const [name, n] of this.local) out[name] = new Array(Math.max(0, n - 1))
    return out
  }

  lockLease(keys, { timeout, signal, maxPending }) {
    const names = keys.map((k) => this.intern(k))
    this._track(names, 1)
    const pending = maxPending === Infinity ? -1 : maxPending
    return this.client
      .acquire(
        names.map((n) => this.namespace + n),
        { ttl: this.ttl, timeout, maxPending: pending, signal, waitReplicas: this.waitReplicas },
      )
      .then(
        (r) => {
          if (r.status !== 'granted') {
            this._track(names, -1)
            if (signal !== undefined && signal.aborted) throw signal.reason
            if (r.status === 'rejected') throw new Error(messages.tooManyPending(names[Math.max(0, r.index)]))
            throw new Error(messages.timedOut(names[0]))
          }
          const client = this.client
          const leaseId = r.lease.id
          const lease = new Lease({
            keys: names,
            tokens: r.lease.tokens,
            // Lease calls it at most once.
            release: () => {
              this._track(names, -1)
              return client.release(leaseId)
            },
          })
          client.onLost(leaseId, (cause) => leaseLost(lease, cause))
          if (signal !== undefined && signal.aborted) {
            // The grant won the race with the abort: pass it straight on.
            lease.release().catch(() => {})
            throw signal.reason
          }
          return lease
        },
        (err) => {
          this._track(names, -1)
          throw err
        },
      )
  }

  close() {
    if (this.closed) return Promise.resolve()
    this.closed = true
    return this.client.close()
  }
}

module.exports = { RedisClient, RedisSpace, DEFAULT_TTL }
