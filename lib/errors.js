'use strict'
// Every message a user can see, in one place. The async-lock strings are
// reproduced to the character (they are what existing code matches on).

const keyText = (key) => (typeof key === 'symbol' ? key.toString() : String(key))

const messages = {
  noFunction: 'You must pass a function to execute',
  timedOut: (key) => 'async-lock timed out in queue ' + keyText(key),
  tooManyPending: (key) => 'Too many pending tasks in queue ' + keyText(key),
  occupationExceeded: (key) => 'Maximum occupation time is exceeded in queue ' + keyText(key),
  executionExceeded: (key) => 'Maximum execution time is exceeded ' + keyText(key),
  lockLost: (key, token) => `keyed-lock: the lease on ${keyText(key)} (fencing token ${token}) was lost`,
  /** an AsyncLock on the Redis reach after its close() */
  closed: 'keyed-lock: this lock was closed',
  /** a Locky after its close() (the message is pinned by docs/compat.md) */
  lockyClosed: 'keyed-lock: this Locky was closed',
  /** the cause of a lease's loss that the Redis client's watchdog reports */
  leaseLostCause: (reason) => 'keyed-lock: ' + reason,
  /** a KEYED_LOCK_REDIS error: `detail` names the URL (password hidden) and what failed */
  redisAt: (detail) => 'keyed-lock: Redis at ' + detail,
  crossSlot: (index) =>
    `keyed-lock: keys[${index}] hashes to another Redis Cluster slot than keys[0]; ` +
    'every key of one request must share a hash tag, e.g. "{order:42}:items" and "{order:42}:total"',
  /** exclusive-lock's refresh that Redis never confirmed in time */
  refreshUnconfirmed: (key, ttl) => `keyed-lock: no refresh of ${key} was confirmed within lock_ttl_ms (${ttl} ms)`,
  // @logdna/exclusive-lock's constructor errors, to the character.
  exclusiveInvalid: 'Input validation failed',
  exclusiveNoConnection: 'A valid cache_connection to a cache store is required',
  exclusiveRefreshGap: (min) => `lock_refresh_ms must be at least ${min}ms less than lock_ttl_ms`,
  domainMissing:
    'Domain-reentrant locks require `process.domain` to exist. Please flip `opts.domainReentrant = false`, ' +
    'use a NodeJS version that still implements Domain, or install a browser polyfill.',
}

const describe = (value) => {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'symbol') return value.toString()
  if (typeof value === 'function') return 'a function'
  if (value === null) return 'null'
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object'
  return String(value)
}

/**
 * A face that admits one holder per key (alock, Locky, ExclusiveLock) given
 * `permits`, `weight` or `mode` with a value other than the one holder it
 * always is: refused, never ignored.
 */
function oneHolderOption(face, name, allowed, value) {
  return invalidArg(
    `option "${name}"`,
    `${allowed} or unset (the ${face} face admits one holder per key; for a semaphore or a read/write lock use AsyncLock's \`permits\`)`,
    value,
  )
}

/** A TypeError that names the argument or option it is about. */
function invalidArg(name, expected, value) {
  const err = new TypeError(`keyed-lock: ${name} must be ${expected}; got ${describe(value)}`)
  err.code = 'ERR_INVALID_ARG_VALUE'
  return err
}

/**
 * A counted Redis key (docs/semaphores.md) held or waited for with another
 * limit than this lock's `permits`: refused before anything was queued.
 * Limits are shown as given (the largest count is `Infinity`).
 */
function otherLimit(key, stored, permits) {
  const shown = (n) => (n >= 0x7fffffff ? Infinity : n)
  return invalidArg(
    'option "permits"',
    `${shown(stored)}, the limit key ${JSON.stringify(keyText(key))} has in Redis while anybody holds or waits for it`,
    shown(permits),
  )
}

/**
 * A TypeError for a Redis URL that cannot be opened. `shown` is the URL
 * already redacted (lib/redis/url.js `redactUrl`): a connection string may
 * carry a password, so it is never quoted as given.
 */
function invalidUrl(name, shown, cause) {
  const err = new TypeError(
    `keyed-lock: ${name} must be a Redis URL (redis://, rediss://, redis+unix:// or unix://) that can be opened; got ${shown}`,
  )
  err.code = 'ERR_INVALID_ARG_VALUE'
  if (cause !== undefined) err.cause = cause
  return err
}

/**
 * The bounds of a Redis lease's ttl, in milliseconds, on every face that
 * takes one (AsyncLock `ttl`, Locky `ttl`/`leaseTtl`, ExclusiveLock
 * `lock_ttl_ms`, extend()).
 * - At least 50: the watchdog renews at ttl/3 and gives the lease up at
 *   `sent + ttl - (ttl/100 + 2 ms)` (redlock's drift rule), which leaves
 *   0.66 ttl - 2 ms for a renewal's round trip: 31 ms at 50 ms, room for a
 *   loopback round trip on a loaded host plus timer lateness. A ttl of a
 *   few ms ran out before the grant's reply was read.
 * - At most 2^31 - 1 (24.8 days): the longest delay a Node timer honours
 *   (the facades time leases and refreshes with setTimeout, which fires a
 *   longer one at once), well inside Redis's PX and JS's safe integers.
 */
const TTL_MIN_MS = 50
const TTL_MAX_MS = 2 ** 31 - 1

/** A RangeError for a ttl that cannot work, naming the option and the bounds. */
/**
 * A TypeError for a Sentinel client given to a facade: keyed-lock reads where
 * a client points, and a Sentinel client's host and port are only
 * ioredis's defaults, so reading them would misroute every lock.
 */
function redisSentinelClient(name) {
  const err = new TypeError(
    `keyed-lock: ${name} is a Redis Sentinel client keyed-lock cannot follow (it needs the master's name, the master rather than a replica, and no natMap): ` +
      "its host and port are not the master's, and reading them would send the locks to whatever Redis listens there.",
  )
  err.code = 'ERR_INVALID_ARG_VALUE'
  return err
}

/**
 * The error of an acquisition whose grant `WAIT` did not see on enough
 * replicas in time (`waitReplicas`): the grant was released, nobody holds it.
 */
function replicasNotConfirmed(names, acked, wanted, timeout) {
  const err = new Error(
    `keyed-lock: the grant of ${names.map(keyText).join(', ')} reached ${acked} of the ${wanted} replica(s) waitReplicas asks for ` +
      `within ${timeout} ms, so it was released: a failover now could lose it`,
  )
  err.code = 'KEYED_LOCK_REPLICAS'
  return err
}

/**
 * Quorum mode: fewer masters than a majority answered, so no lock can be
 * granted (`KEYED_LOCK_REDIS`, as for one unreachable Redis). `cause` is one
 * master's error, which already hides its password.
 */
function quorumUnreachable(answered, total, majority, cause) {
  const err = new Error(
    `keyed-lock: only ${answered} of the ${total} Redis masters of the quorum answered, and a lock needs ${majority}` +
      (cause && cause.message ? ` (${cause.message.replace(/^keyed-lock: /, '')})` : ''),
  )
  err.code = 'KEYED_LOCK_REDIS'
  if (cause !== undefined) err.cause = cause
  return err
}

function ttlOutOfRange(name, value) {
  const err = new RangeError(
    `keyed-lock: ${name} must be from ${TTL_MIN_MS} to ${TTL_MAX_MS} milliseconds ` +
      `(a lease must outlive a renewal round trip, and a Node timer holds at most 2^31 - 1 ms); got ${describe(value)}`,
  )
  err.code = 'ERR_OUT_OF_RANGE'
  return err
}

function badKey(cause) {
  const err = new TypeError(
    'keyed-lock: key must be a string, a number, a symbol, or a value whose String() form is a string; ' +
      `converting it threw: ${cause && cause.message}`,
  )
  err.code = 'ERR_INVALID_ARG_VALUE'
  err.cause = cause
  return err
}

/** KEYED_LOCK_CLOSED: a call on (or a wait of) a lock that was closed. */
function closedError(message = messages.closed) {
  const err = new Error(message)
  err.code = 'KEYED_LOCK_CLOSED'
  return err
}

/** A bug in keyed-lock, not in the caller's code: it says so, and what broke. */
function internalError(what) {
  return new TypeError('keyed-lock internal error: ' + what)
}

/**
 * A TypeError naming a connection option. Unlike invalidArg it never
 * echoes a string: a connection string may carry a password.
 */
function invalidConnection(name, expected, value) {
  let got
  if (typeof value === 'string') got = 'a string that is not a redis://, rediss://, redis+unix:// or unix:// URL'
  else if (value === null) got = 'null'
  else if (Array.isArray(value)) got = 'an array'
  else if (typeof value === 'object') got = 'an object from which no host, port, socket path or url could be read'
  else if (typeof value === 'function') got = 'a function'
  else got = String(value)
  const err = new TypeError(`keyed-lock: ${name} must be ${expected}; got ${got}`)
  err.code = 'ERR_INVALID_ARG_VALUE'
  return err
}

module.exports = {
  messages,
  invalidArg,
  otherLimit,
  oneHolderOption,
  invalidUrl,
  invalidConnection,
  ttlOutOfRange,
  TTL_MIN_MS,
  TTL_MAX_MS,
  badKey,
  closedError,
  redisSentinelClient,
  replicasNotConfirmed,
  quorumUnreachable,
  internalError,
  keyText,
}
