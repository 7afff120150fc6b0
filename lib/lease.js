'use strict'
// What the leases of every reach share: the Lease handed out by
// `lock.lock()`, LockLostError, and how lock() reads its arguments. A reach
// only decides when a lease is granted, what its tokens are, what releasing
// it does and whether it can be lost (see leaseLost).
//
// The contract a reach implements (index.js calls it after the checks below,
// and only with a signal that has not aborted yet):
//   lockLease(keys, { timeout, signal, maxPending }) -> Promise<Lease>
// keys: normalized, deduplicated, non-empty; timeout: ms, 0 = wait forever;
// signal: an AbortSignal or undefined; maxPending: the lock's. It rejects
// with messages.timedOut(key) / messages.tooManyPending(key) / the signal's
// reason, and once it has rejected the caller holds nothing.

const { messages, invalidArg } = require('./errors')

// Node < 20.4 (and 18 < 18.18) has no Symbol.asyncDispose; Node's own
// disposables are keyed by this registered symbol, which later became it.
const asyncDispose = Symbol.asyncDispose || Symbol.for('nodejs.asyncDispose')

/** The reason a lease's signal aborts with when the lease is lost. */
class LockLostError extends Error {
  /**
   * @param {string | symbol} key the key whose lock was lost
   * @param {number} token the lease's fencing token for that key
   * @param {unknown} [cause] what detected the loss
   */
  constructor(key, token, cause) {
    super(messages.lockLost(key, token))
    this.code = 'ELOCKLOST'
    this.key = key
    this.token = token
    this.cause = cause
  }
}
// On the prototype, so the stack's first line says LockLostError too.
LockLostError.prototype.name = 'LockLostError'

let abortLease = null
const toUndefined = () => undefined

/**
 * A held lock on one or several keys. Its fields are frozen; the keys go on
 * to the next waiter on the first release(), and never by any other means
 * on the in-process reaches.
 */
class Lease {
  #release
  #controller

  /**
   * @param {object} init
   * @param {Array<string | symbol>} init.keys the normalized keys, in request order (frozen, not copied)
   * @param {number[]} init.tokens the fencing token per key (frozen, not copied)
   * @param {number} [init.token] the lease's one token; default the largest of `tokens`
   * @param {() => Promise<boolean> | boolean} init.release gives the keys up; called at most once;
   *   `false` means there was nothing left to give up (the reach had already lost the lease)
   * @param {AbortController} [init.controller] whose signal is `lease.signal`; leaseLost aborts it
   */
  constructor(init) {
    const { keys, tokens, release } = init
    if (!Array.isArray(keys) || !Array.isArray(tokens) || keys.length === 0 || tokens.length !== keys.length) {
      throw new TypeError('keylock internal error: a Lease needs as many tokens as keys, and at least one key')
    }
    if (typeof release !== 'function') throw new TypeError('keylock internal error: a Lease needs a release function')
    let token = init.token
    if (token === undefined) {
      token = tokens[0]
      for (let i = 1; i < tokens.length; i++) if (tokens[i] > token) token = tokens[i]
    }
    this.keys = Object.freeze(keys)
    this.token = token
    this.tokens = Object.freeze(tokens)
    this.#controller = init.controller || new AbortController()
    this.signal = this.#controller.signal
    this.#release = release
    Object.freeze(this)
  }

  static {
    abortLease = (lease, reason) => lease.#controller.abort(reason)
  }

  /**
   * Gives the keys up. Resolves true on the first call, false on every later
   * one (and when the reach had nothing left to give up). If handing the keys
   * on runs another waiter's code that throws (a callback-mode acquire's cb),
   * the keys are released all the same and this rejects with that error, as
   * async-lock's done() would throw it.
   */
  release() {
    const release = this.#release
    if (release === null) return Promise.resolve(false)
    this.#release = null
    try {
      return Promise.resolve(release()).then((released) => released !== false)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** `await using lease = await lock.lock(key)`: release() at the end of the block. */
  [asyncDispose]() {
    return this.release().then(toUndefined)
  }
}

/**
 * Tells a lease's holder that it lost the lock: aborts `lease.signal` with a
 * LockLostError for `key` (default: the lease's first key). Returns false,
 * and does nothing, if the signal had aborted already. Only the remote reach
 * calls it: on the in-process reaches a lease is never lost.
 */
function leaseLost(lease, cause, key = lease.keys[0]) {
  if (lease.signal.aborted) return false
  const i = lease.keys.indexOf(key)
  abortLease(lease, new LockLostError(key, i === -1 ? lease.token : lease.tokens[i], cause))
  return true
}

// ---------------------------------------------------------------------------
// lock()'s arguments. Stricter than acquire()'s (which keeps async-lock's
// "anything String() can convert"): this API has no compatibility to keep,
// and an object or undefined key is almost always a bug.

const KEY_TYPES = 'a string, a number, a symbol, or a non-empty array of them'

function leaseKey(key, what) {
  if (typeof key === 'string' || typeof key === 'symbol') return key
  if (typeof key === 'number') return String(key)
  throw invalidArg(what, KEY_TYPES, key)
}

/** The normalized keys of lock(key): deduplicated by string form, in the order given. */
function leaseKeys(key) {
  if (!Array.isArray(key)) return [leaseKey(key, 'key')]
  if (key.length === 0) throw invalidArg('key', KEY_TYPES, key)
  const names = []
  const seen = new Set()
  for (let i = 0; i < key.length; i++) {
    const name = leaseKey(key[i], `key[${i}]`)
    if (seen.has(name)) continue
    seen.add(name)
    names.push(name)
  }
  return names
}

/** The longest delay setTimeout honours; beyond it Node fires after 1 ms. */
const MAX_TIMER = 0x7fffffff

/**
 * lock()'s options: `timeout` resolved against the lock's default (0 =
 * forever) and `signal` checked. A per-call `Infinity` waits forever even on
 * a lock with a default timeout.
 */
function leaseOptions(options, defaultTimeout) {
  if (options === undefined || options === null) return { timeout: Math.min(defaultTimeout, MAX_TIMER), signal: undefined }
  if (typeof options !== 'object') throw invalidArg('options', 'an object', options)
  let timeout = options.timeout
  if (timeout === undefined || timeout === 0) {
    timeout = Math.min(defaultTimeout, MAX_TIMER)
  } else if (timeout === Infinity) {
    timeout = 0
  } else if (typeof timeout !== 'number' || !(timeout > 0 && timeout <= MAX_TIMER)) {
    throw invalidArg(
      'options.timeout',
      `a number of milliseconds from 0 to ${MAX_TIMER} (0 or unset: the lock's timeout), or Infinity`,
      timeout,
    )
  }
  const signal = options.signal
  if (
    signal !== undefined &&
    (typeof signal !== 'object' ||
      signal === null ||
      typeof signal.aborted !== 'boolean' ||
      typeof signal.addEventListener !== 'function' ||
      typeof signal.removeEventListener !== 'function')
  ) {
    throw invalidArg('options.signal', 'an AbortSignal', signal)
  }
  return { timeout, signal }
}

/** What an aborted signal rejects with: its reason, or an AbortError if it has none. */
function abortReason(signal) {
  return signal.reason !== undefined ? signal.reason : new DOMException('This operation was aborted', 'AbortError')
}

module.exports = { Lease, LockLostError, leaseLost, leaseKeys, leaseOptions, abortReason, asyncDispose }
