'use strict'
// The @logdna/exclusive-lock 2.0.0 face over keyed-lock's Redis client. The
// constructor checks (messages, codes, order), defaults, slugged key,
// fields, events and log calls are the original's; what changed is what it
// did to Redis. A refresh extends only this instance's own lease and a
// release deletes only that lease, so a stale holder can no longer extend or
// delete the next holder's lock, and a lease found gone is reported as an
// 'error' (LockLostError) instead of a 'refreshed'. docs/compat.md lists
// every kept and fixed behaviour with the test that pins it.

const { EventEmitter } = require('events')
const { cacheConnectionUrl } = require('./lib/redis/url')
const { HeldLease, openClient } = require('./lib/redis/held-lease')
const { tlsFromClient } = require('./lib/redis/options')
const { ttlOption, oneHolderOnly } = require('./lib/validate')
const { LockLostError } = require('./lib/lease')
const { messages } = require('./lib/errors')

const DEFAULT_LOCK_TTL_MS = 3000
const DEFAULT_LOCK_REFRESH_MS = 1000
const REQUIRED_MIN_MS_DIFF = 500
const DEFAULT_LOCK_CONTENTS = '1'
const DEFAULT_KEY_PREFIX = 'exclusive-lock'
const SLUGIFY_REGEX = /[\s\W]+/g

// abstract-logging 2's shape, without the dependency.
const noop = () => {}
const abstractLogging = { fatal: noop, error: noop, warn: noop, info: noop, debug: noop, trace: noop }

// ---------------------------------------------------------------------------
// The original validated its options with ajv against a JSON schema
// (draft-07, ajv defaults: first error only). This reproduces that schema's
// verdicts and messages by hand, keyword by keyword in the order ajv runs
// them: the root type, `required`, `dependencies`, then `properties` in the
// schema's order. ajv tests presence with `!== undefined` (inherited
// properties count, an own property set to undefined does not) and its
// `number` excludes NaN and ±Infinity.

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)
const isNumber = (v) => typeof v === 'number' && Number.isFinite(v)
const isString = (v) => typeof v === 'string'

const PROPERTIES = [
  ['name', isString, 'string'],
  // keyed-lock: a URL string is accepted too (the original took only a client object).
  ['cache_connection', (v) => isObject(v) || isString(v), 'object'],
  ['log', isObject, 'object'],
  ['lock_ttl_ms', isNumber, 'number'],
  ['lock_refresh_ms', isNumber, 'number'],
  ['lock_contents', isString, 'string'],
  ['key_prefix', isString, 'string'],
]

function firstSchemaError(opts) {
  if (!isObject(opts)) return { instancePath: '', message: 'must be object' }
  for (const required of ['name', 'cache_connection']) {
    if (opts[required] === undefined) return { instancePath: '', message: `must have required property '${required}'` }
  }
  for (const [present, needed] of [
    ['lock_ttl_ms', 'lock_refresh_ms'],
    ['lock_refresh_ms', 'lock_ttl_ms'],
  ]) {
    if (opts[present] !== undefined && opts[needed] === undefined) {
      return { instancePath: '', message: `must have property ${needed} when property ${present} is present` }
    }
  }
  for (const [prop, ok, type] of PROPERTIES) {
    const value = opts[prop]
    if (value === undefined) continue
    if (!ok(value)) return { instancePath: `/${prop}`, message: `must be ${type}` }
    if (prop === 'name' && value.length === 0) {
      return { instancePath: '/name', message: 'must NOT have fewer than 1 characters' }
    }
  }
  return null
}

// A URL string, or keyed-lock's `{url}` options object: keyed-lock's own ways of
// naming the server, which the original's client-object check must let through.
const namesServerByUrl = (conn) =>
  typeof conn === 'string' || (isObject(conn) && typeof conn.set !== 'function' && typeof conn.url === 'string')

class ExclusiveLock extends EventEmitter {
  #key
  #url
  #tls
  #client = null
  #uses = 0
  #lease = null
  #releasing = null
  /** acquire() calls of this instance still waiting for Redis */
  #acquiring = new Set()

  constructor(opts) {
    super()
    opts = opts ?? {}

    let { log } = opts
    if (!log) log = abstractLogging
    this.log = log

    const schemaError = firstSchemaError(opts)
    if (schemaError) {
      const err = new Error(messages.exclusiveInvalid)
      err.code = 'EINVAL'
      err.errors = [schemaError]
      this.log.error(err)
      throw err
    }

    const {
      name,
      cache_connection,
      lock_ttl_ms = DEFAULT_LOCK_TTL_MS,
      lock_refresh_ms = DEFAULT_LOCK_REFRESH_MS,
      lock_contents = DEFAULT_LOCK_CONTENTS,
      key_prefix = DEFAULT_KEY_PREFIX,
    } = opts

    if (!namesServerByUrl(cache_connection) && typeof cache_connection?.set !== 'function') {
      const err = new TypeError(messages.exclusiveNoConnection)
      err.code = 'EINVAL'
      throw err
    }
    const diff = lock_ttl_ms - lock_refresh_ms
    if (diff < REQUIRED_MIN_MS_DIFF) {
      const err = new RangeError(messages.exclusiveRefreshGap(REQUIRED_MIN_MS_DIFF))
      err.code = 'EINVAL'
      err.meta = { lock_ttl_ms, lock_refresh_ms, diff }
      throw err
    }
    // keyed-lock's own checks, after the original's: a ttl a lease can live
    // with (lib/errors.js TTL_MIN_MS..TTL_MAX_MS), and where the client points.
    ttlOption('option "lock_ttl_ms"', lock_ttl_ms)
    // An exclusive lock is one holder: asking for more is refused, not ignored.
    oneHolderOnly('ExclusiveLock', opts)
    this.#url = cacheConnectionUrl(cache_connection)
    this.#tls = tlsFromClient(cache_connection)

    this.cache_connection = cache_connection
    this.name = name.replace(SLUGIFY_REGEX, '-')
    this.lock_ttl_ms = lock_ttl_ms
    this.lock_refresh_ms = lock_refresh_ms
    this.lock_contents = lock_contents
    this.#key = `${key_prefix.replace(SLUGIFY_REGEX, '-')}:${this.name}`

    this.acquired = false
    this.is_refreshing = false
    this.refresh_timer = null
  }

  get [Symbol.toStringTag]() {
    return 'ExclusiveLock'
  }

  get key() {
    return this.#key
  }

  async acquire() {
    if (this.acquired) {
      this.log.warn('%s lock is already acquired. Must call release() first.', this.key)
      return true
    }
    // A cache error rejects: the original let it throw ("a deal breaker").
    const client = this.#use()
    let lease
    const asked = HeldLease.take(client, this.#key, {
      ttl: this.lock_ttl_ms,
      owner: this.lock_contents,
      // The refresh timer below is the original's own renewal; a second,
      // hidden one would keep a lock alive after its holder stopped refreshing.
      watchdog: false,
    })
    const others = [...this.#acquiring]
    this.#acquiring.add(asked)
    try {
      lease = await asked
    } catch (err) {
      this.#unuse()
      throw err
    } finally {
      this.#acquiring.delete(asked)
    }
    if (lease === null) {
      this.#unuse()
      // Busy because an earlier acquire() of this very instance took it: the
      // original's replies came back in order on one connection, so that
      // one had set `acquired` by now. Ours may arrive in either order.
      if (others.length !== 0) await Promise.allSettled(others)
      return this.acquired
    }
    if (this.acquired) {
      // Another acquire() on this instance got there first and the lock was
      // released and re-taken in between: keep that one, give this one back.
      lease.release().catch(noop).finally(() => this.#unuse())
      return true
    }

    // This instance's own bookkeeping: the loss is reported once; a release
    // in flight makes a refresh outcome meaningless.
    lease.reported = false
    lease.releasing = false
    this.#lease = lease
    this.acquired = true
    lease.onLost((cause) => this.#onLost(lease, cause))
    // Not unref'd, as in the original: a process holding the lock stays up until release().
    this.refresh_timer = setInterval(() => this.#refresh(), this.lock_refresh_ms)
    this.log.info(
      {
        lock_contents: this.lock_contents,
        lock_refresh_ms: this.lock_refresh_ms,
        lock_ttl_ms: this.lock_ttl_ms,
      },
      '%s lock acquired',
      this.name,
    )
    this.emit('acquired', this.key)
    return this.acquired
  }

  async inspect() {
    const client = this.#use()
    let found
    try {
      found = await client.inspect(this.#key)
    } catch (err) {
      this.log.error({ key: this.key, err }, 'Error during inspect while getting the key: %s', err)
      throw err
    } finally {
      this.#unuse()
    }
    // Return null only if there is no lock file
    if (found === null || found === undefined) return null
    return { lock_ttl_ms: found.pttl, lock_contents: found.owner }
  }

  release() {
    if (!this.acquired) return Promise.resolve(undefined)
    // A second release() while one is in flight shares its outcome instead
    // of asking Redis again (and then calling the lease lost).
    if (this.#releasing === null) {
      this.#releasing = this.#release().finally(() => {
        this.#releasing = null
      })
    }
    return this.#releasing
  }

  async #release() {
    clearInterval(this.refresh_timer)
    this.refresh_timer = null
    const lease = this.#lease
    // From here on a refresh outcome says nothing about the lock: keyed-lock's
    // client may answer an extend racing this release with "gone".
    lease.releasing = true
    // A lease already reported lost is not this instance's, whatever Redis
    // answers (or however long it takes to answer).
    if (lease.reported) this.#forget(lease)
    try {
      const released = await lease.release()
      if (!released && !lease.reported) {
        // The original's DEL would have deleted whoever holds the key now.
        // Nothing was touched; the holder learns its lock had been lost.
        lease.reported = true
        const err = new LockLostError(this.key, lease.token)
        this.log.error({ err }, 'Could not refresh lock: %s', err)
        if (this.listenerCount('error') === 0) throw err
        this.emit('error', err)
      }
      this.log.info('%s lock removed', this.key)
      this.emit('released', this.key)
    } finally {
      this.#forget(lease)
      this.#unuse()
    }
  }

  #forget(lease) {
    if (this.#lease !== lease) return
    this.#lease = null
    this.acquired = false
  }

  #refresh() {
    const lease = this.#lease
    if (lease === null) return
    if (this.is_refreshing) {
      // The refresh in flight is still unanswered (a stalled or unreachable
      // server) and the lease may have ended meanwhile: treat it as lost
      // rather than wait for Redis to say so.
      if (lease.expired) {
        const cause = new Error(messages.refreshUnconfirmed(this.key, this.lock_ttl_ms))
        this.#refreshFailed(lease, new LockLostError(this.key, lease.token, cause))
      }
      return
    }
    this.is_refreshing = true
    this.#use()
    // A confirmed extend moves the lease's deadline (held-lease.js).
    lease
      .extend(this.lock_ttl_ms)
      .then((extended) => {
        if (lease !== this.#lease || lease.reported || lease.releasing) return // released or given up meanwhile
        if (!extended) throw new LockLostError(this.key, lease.token)
        // The original called trace unconditionally, so a logger without it
        // turned every refresh into an error and a release.
        if (typeof this.log.trace === 'function') this.log.trace('%s lock refreshed to %sms', this.key, this.lock_ttl_ms)
        this.emit('refreshed', { key: this.key, lock_ttl_ms: this.lock_ttl_ms })
      })
      .catch((err) => this.#refreshFailed(lease, err))
      .finally(() => {
        this.is_refreshing = false
        this.#unuse()
      })
  }

  #onLost(lease, cause) {
    // While a refresh is in flight its own outcome reports the loss.
    if (this.is_refreshing) return
    this.#refreshFailed(lease, new LockLostError(this.key, lease.token, cause))
  }

  // The original's refresh-failure path: log, 'error', then release(), and a
  // second 'error' if that fails. With no 'error' listener it threw inside a
  // promise (an unhandled rejection, the lock never released, the timer
  // still running); here the release happens first and the error is then
  // thrown as an uncaught exception, Node's rule for an unheard 'error'.
  #refreshFailed(lease, err) {
    if (lease !== this.#lease || lease.reported || lease.releasing) return
    lease.reported = true
    this.log.error({ err }, 'Could not refresh lock: %s', err)
    const unheard = []
    this.#emitError(err, unheard)
    let releasing
    try {
      releasing = this.release()
    } catch (releaseErr) {
      releasing = Promise.reject(releaseErr)
    }
    Promise.resolve(releasing)
      .catch((releaseErr) => {
        this.log.error({ err: releaseErr }, 'Error removing lock %s: %s', this.key, releaseErr)
        this.#emitError(releaseErr, unheard)
      })
      .then(() => {
        if (unheard.length !== 0) {
          process.nextTick(() => {
            throw unheard[0]
          })
        }
      })
  }

  #emitError(err, unheard) {
    if (this.listenerCount('error') === 0) unheard.push(err)
    else this.emit('error', err)
  }

  // The Redis client is shared per URL and reference-counted: an instance
  // holds a reference while it holds the lock or has a call in flight, so an
  // idle instance (the original had no close()) keeps no connection open.
  #use() {
    if (this.#client === null) this.#client = openClient(this.#url, { tls: this.#tls })
    this.#uses++
    return this.#client
  }

  #unuse() {
    if (--this.#uses > 0) return
    const client = this.#client
    this.#client = null
    if (client !== null) client.close().catch(noop)
  }
}

ExclusiveLock.ExclusiveLock = ExclusiveLock
ExclusiveLock.LockLostError = LockLostError

module.exports = ExclusiveLock
