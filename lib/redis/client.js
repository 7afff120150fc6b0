'use strict'
// keyed-lock's Redis client, as JS sees it (src/redis/mod.rs has the
// guarantees): one Rust client per (url, prefix) per thread, shared by every
// lock and facade that names them, reference-counted. The lock space of
// `AsyncLock({ redis })` is lib/spaces/redis.js; the two Redis facades hold
// their leases through lib/redis/held-lease.js.

const native = require('../native')
const { messages, invalidArg, invalidUrl } = require('../errors')
const { redactUrl } = require('./url')
const redisOptions = require('./options')
const { ttlOption } = require('../validate')

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
    case 'KEYED_LOCK_REDIS':
      return coded(messages.redisAt(err.message), err.code)
    case 'KEYED_LOCK_CLOSED':
      return coded('keyed-lock: ' + err.message, err.code)
    case 'KEYED_LOCK_CROSSSLOT': {
      const out = new TypeError(messages.crossSlot(err.keyIndex))
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

// A lone surrogate has no UTF-8 form: the binding would store U+FFFD in its
// place, and two different keys would be one lock.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** A key, name or prefix as Redis will store it: a string with a UTF-8 form. */
function checkText(text, name) {
  if (LONE_SURROGATE.test(text)) throw invalidArg(name, 'a string without lone surrogates (Redis stores keys as UTF-8)', text)
  return text
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
  static open(url, { prefix = 'keyed-lock', tls } = {}) {
    // `tls`: already read by lib/redis/options.js tlsOptions (or undefined);
    // an object `url` is a Sentinel-managed master (lib/redis/options.js).
    const sentinel = redisOptions.sentinelOption(url)
    const conn = redisOptions.connection(sentinel ? sentinel.sentinels : checkUrl(url, 'option "redis"'), tls, sentinel, Array.isArray(url))
    const urls = conn.urls
    if (typeof prefix !== 'string' || prefix === '') throw invalidArg('option "prefix"', 'a non-empty string', prefix)
    checkText(prefix, 'option "prefix"')
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
    /**
     * lease id -> cause, for a loss reported before its handler was set: a
     * hand-off read late can be lost moments after it was granted, and the
     * report may overtake the grant on its way to JS.
     */
    this.lostEarly = new Map()
    try {
      this.handle = native.redisOpen(urls, cluster, prefix, (event) => this._lost(event), nativeOptions)
    } catch (err) {
      // Shown without its password (the native cause redacts it the same way).
      throw invalidUrl('option "redis"', redactUrl(this.url), err)
    }
  }

  _lost({ lease, reason }) {
    const handler = this.lostHandlers.get(lease)
    const cause = new Error(messages.leaseLostCause(reason))
    cause.code = 'KEYED_LOCK_LEASE_LOST'
    if (handler === undefined) {
      this.lostEarly.set(lease, cause)
      return
    }
    this.lostHandlers.delete(lease)
    handler(cause)
  }

  /** The Redis key that holds the lease of lock name `name` of `space` (docs/redis-keys.md). */
  keyOf(name, space = '') {
    return native.redisLeaseKey(this.prefix, name, space)
  }

  /**
   * Takes every name of `names` at once (or waits in every queue at once).
   * Resolves { status: 'granted' | 'busy' | 'rejected' | 'timeout', lease,
   * index, holder, pttl }; lease is { id, owner, tokens } when granted.
   * An aborted `signal` ends the wait like a timeout ('timeout'), unless the
   * grant won the race (then 'granted': the caller holds it). `opts.space`:
   * the lock space of the names (an AsyncLock's `name`), part of each key.
   * `opts.permits` (> 1) and `opts.weights` (one per name): a counted lock
   * (docs/semaphores.md); 'rejected' with `permits` set means a name is
   * held or waited for with that other limit.
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
      for (const name of names) checkText(name, 'key')
      asked = keepAlive(
        native.redisAcquire(this.handle, request, names, {
          ttl,
          timeout: opts.timeout > 0 ? opts.timeout : 0,
          mode,
          maxPending: opts.maxPending === undefined || opts.maxPending < 0 ? -1 : opts.maxPending,
          skipQueue: !!opts.skipQueue,
          owner,
          watchdog: opts.watchdog !== false,
          space: opts.space === undefined ? '' : opts.space,
          // A counted lock (docs/semaphores.md): its limit and the permits
          // taken of each name; unset for the mutex.
          permits: opts.permits,
          weights: opts.weights,
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
        // Rejected because a name is counted with another limit: that limit.
        if (r.permits !== undefined && r.permits !== null) out.permits = r.permits
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
    this.lostEarly.delete(leaseId)
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
    const early = this.lostEarly.get(leaseId)
    if (early === undefined) return void this.lostHandlers.set(leaseId, handler)
    this.lostEarly.delete(leaseId)
    queueMicrotask(() => handler(early))
  }

  /** { owner, pttl } of the lease on `name` (of `space`), or null when nobody holds it. */
  inspect(name, space = '') {
    return keepAlive(native.redisInspect(this.handle, checkText(name, 'key'), space)).then(
      (r) => (r.owner === undefined || r.owner === null ? null : { owner: r.owner, pttl: r.pttl, waiters: r.waiters }),
      (err) => {
        throw fromNative(err)
      },
    )
  }

  /** Whether anybody, in any process, holds or waits for `name` (one synchronous round trip). */
  isBusy(name, space = '', counted = false) {
    try {
      return native.redisIsBusy(this.handle, checkText(name, 'key'), space, counted)
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
    this.lostEarly.clear()
    return keepAlive(native.redisClose(this.handle))
  }
}

module.exports = { RedisClient, DEFAULT_TTL, checkTtl, checkText }
