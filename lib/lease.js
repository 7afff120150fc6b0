'use strict'
// keyed-lock's lease API on every reach: `lock.lock()` (lockLease below), the
// Lease it resolves with, LockLostError, and how lock() reads its
// arguments. A lease waits in the very queues acquire() uses, through the
// Space contract (lib/spaces/index.js), so FIFO, all-or-nothing multi-key
// and maxPending are the reach's. The reach decides when a lease is
// granted, what its tokens are, what releasing it does and whether it can
// be lost (`space.watch`: only on Redis; on the in-process reaches nothing
// but release() gives the keys up, since the lock's maxOccupationTime and
// maxExecutionTime are about acquire()'s fn, which a lease does not have).

const { messages, invalidArg, internalError } = require('./errors')
const { GRANTED, QUEUED, REJECTED, TIMED_OUT, deliver, releaseKeys, pendingForNative } = require('./spaces')
const { traced, Trace, queuedAt } = require('./trace')

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
      throw internalError('a Lease needs as many tokens as keys, and at least one key')
    }
    if (typeof release !== 'function') throw internalError('a Lease needs a release function')
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
 * and does nothing, if the signal had aborted already. Only a reach whose
 * leases can expire (Redis, through `space.watch`) calls it.
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
  return { timeout, signal, options }
}

/** What an aborted signal rejects with: its reason, or an AbortError if it has none. */
function abortReason(signal) {
  return signal.reason !== undefined ? signal.reason : new DOMException('This operation was aborted', 'AbortError')
}

// ---------------------------------------------------------------------------
// lock() on a space.

/** One lock() call, from the request to its lease's release: a waiter of the Space contract. */
class LeaseRequest {
  constructor(space, stats, names, ids, signal, resolve, reject) {
    this.space = space
    /** the lock's Stats (lib/trace.js) */
    this.stats = stats
    /** a Trace while someone listens to the channels, else null */
    this.trace = null
    /** when the wait began, or 0 if it never queued */
    this.since = 0
    this.names = names
    this.ids = ids
    this.signal = signal
    this.resolve = resolve
    this.reject = reject
    this.ticket = -1
    this.timer = null
    /** the promise is settled: granted, refused, timed out or aborted */
    this.settled = false
    /** lease.release()'s resolve/reject while a RELEASING release is in flight */
    this.onReleased = null
  }

  granted() {
    if (this.settled) {
      // The grant raced a timeout or abort that already rejected the caller
      // (it was on its way from another thread or from Redis, or parked in a
      // delivery further up the stack): nobody will release it, so pass it on now.
      this.release().catch(noop)
      return
    }
    this.settled = true
    this.stopWaiting()
    this.resolve(makeLease(this))
  }

  /** The wait ended without a grant (a reach that decides waits itself). */
  denied(outcome, detail) {
    if (this.settled) return
    this.settled = true
    this.stopWaiting()
    if (outcome === REJECTED) this.fail(new Error(messages.tooManyPending(this.names[detail])), 'refused')
    else if (outcome === TIMED_OUT) this.fail(new Error(messages.timedOut(this.names[detail])), 'timeout')
    else this.fail(detail, 'error')
  }

  /** Rejects the caller: the request ended without a grant, for `outcome`'s reason. */
  fail(err, outcome) {
    this.stats.failed(outcome)
    if (this.trace !== null) this.trace.failed(outcome, err)
    this.reject(err)
  }

  /** The holder's release (lease.release()): what the stats and channels see, then release(). */
  releaseHeld() {
    this.stats.released++
    if (this.trace !== null) this.trace.released(undefined, undefined)
    return this.release()
  }

  /** Gives the keys back: resolves true, or false when the reach had lost them already. */
  release() {
    if (releaseKeys(this.space, this.ids, this)) return Promise.resolve(true)
    return new Promise((resolve, reject) => {
      this.onReleased = { resolve, reject }
    })
  }

  released(result) {
    const pending = this.onReleased
    this.onReleased = null
    if (pending === null) return
    if (result instanceof Error) pending.reject(result)
    else pending.resolve(result !== false)
  }

  /** The signal's 'abort' listener (an EventListener object: no closure per request). */
  handleEvent() {
    this.leave(abortReason(this.signal), 'aborted')
  }

  /** Rejects with `reason` (an error, or a function of the key still awaited) and leaves the queue. */
  leave(reason, outcome) {
    if (this.settled) return
    this.settled = true
    this.stopWaiting()
    let granted = null
    let blocking = this.names[0]
    if (this.ticket !== -1) {
      granted = this.space.cancel(this)
      if (granted !== null) blocking = this.names[Math.max(0, this.space.blockingIndex)]
    }
    // granted === null: the wait's outcome is on its way; granted() will
    // see `settled` and pass the keys on.
    this.fail(typeof reason === 'function' ? reason(blocking) : reason, outcome)
    if (granted !== null && granted.length !== 0) deliver(granted)
  }

  stopWaiting() {
    if (this.timer !== null) {
      clearTimeout(this.timer)
      this.timer = null
    }
    if (this.signal !== undefined) this.signal.removeEventListener('abort', this)
  }
}

const noop = () => {}
const timedOut = (key) => new Error(messages.timedOut(key))

function onTimeout(request) {
  request.timer = null
  request.leave(timedOut, 'timeout')
}

function makeLease(request) {
  const { space, names } = request
  request.stats.grant(request.since)
  // Lease calls release at most once.
  const lease = new Lease({ keys: names, tokens: space.tokens(request, names.length), release: () => request.releaseHeld() })
  if (request.trace !== null) request.trace.granted(lease.token)
  space.watch(request, (cause) => {
    if (lease.signal.aborted) return
    request.stats.lost++
    if (request.trace !== null) request.trace.lost(lease.keys[0], lease.tokens[0], cause)
    leaseLost(lease, cause)
  })
  return lease
}

/**
 * Takes a lease on `names` (normalized, distinct, non-empty) in `space`.
 * `timeout` 0 waits forever; `signal` has not aborted. Always a native
 * Promise; a key the reach refuses (a symbol on Redis) is a rejection too.
 * It rejects with messages.timedOut(key) / messages.tooManyPending(key) /
 * the signal's reason / the reach's error, and once it has rejected the
 * caller holds nothing.
 */
function lockLease(space, stats, names, timeout, maxPending, signal, weight) {
  const trace = traced(true) ? new Trace(stats, names, 'lease') : null
  if (trace !== null) trace.start()
  const promise = new Promise((resolve, reject) => {
    const ids = space.internAll(names)
    const request = new LeaseRequest(space, stats, names, ids, signal, resolve, reject)
    request.trace = trace
    // Counted keys only (docs/semaphores.md): the space reads it on acquire and release.
    if (weight !== undefined) request.weight = weight
    const max = pendingForNative(maxPending)
    const outcome =
      typeof ids === 'number'
        ? space.acquireOne(ids, max, false, request, timeout)
        : space.acquireMany(ids, max, false, request, timeout)
    // As for acquire(): start, end, then asyncStart (grant) or error, on every reach.
    if (trace !== null) trace.end()
    if (outcome === GRANTED) {
      request.settled = true
      resolve(makeLease(request))
    } else if (outcome === QUEUED) {
      if (request.settled) return // denied at once
      request.since = queuedAt()
      if (timeout && !space.timesWaits) request.timer = setTimeout(onTimeout, timeout, request)
      if (signal !== undefined) signal.addEventListener('abort', request, { once: true })
    } else {
      request.fail(new Error(messages.tooManyPending(names[typeof ids === 'number' ? 0 : space.rejectedIndex])), 'refused')
    }
  })
  return promise
}

module.exports = { Lease, LockLostError, leaseLost, leaseKeys, leaseOptions, abortReason, asyncDispose, lockLease }
