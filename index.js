'use strict'
// The async-lock 1.5.0 face: the constructor, options, statics and argument
// juggling, with the same call order and messages. A call becomes a Task
// (lib/task.js) or a lease request (lib/lease.js) on the lock's space, one
// of the reaches behind the Space contract (lib/spaces/index.js); nothing
// here knows which. Where keyed-lock deliberately differs, docs/compat.md says
// so and names the test that pins it.

const { openSpace, REJECTED } = require('./lib/spaces')
const { Task, start, refusedMessage } = require('./lib/task')
const { messages, invalidArg } = require('./lib/errors')
const { timeOption, maxPendingOption, normalizeKey, callWeight } = require('./lib/validate')
const { LockLostError, leaseKeys, leaseOptions, abortReason, lockLease } = require('./lib/lease')
const { Stats, reachOf, DEFAULT_TOP } = require('./lib/trace')

// `new P(capture)` hands resolve/reject over without a closure per call.
let capturedResolve = null
let capturedReject = null
function capture(resolve, reject) {
  capturedResolve = resolve
  capturedReject = reject
}

function promiseOption(P) {
  if (!P) return Promise
  if (typeof P !== 'function') throw invalidArg('option "Promise"', 'a Promise constructor', P)
  capturedResolve = null
  let made
  try {
    made = new P(capture)
  } catch (err) {
    throw invalidArg('option "Promise"', 'a Promise constructor (constructing one threw: ' + (err && err.message) + ')', P)
  }
  const ok = capturedResolve !== null && made && typeof made.then === 'function'
  capturedResolve = capturedReject = null
  if (!ok) {
    // Q is the classic case: `new Q(executor)` never calls the executor.
    throw invalidArg('option "Promise"', 'a constructor that calls its executor synchronously, like Promise (for q, pass Q.Promise)', P)
  }
  return P
}

/** lock.queues */
function queuesView() {
  return this._space.snapshot()
}

function AsyncLock(opts) {
  opts = opts || {}
  this.Promise = promiseOption(opts.Promise)
  // Read-only view in async-lock's shape: a key is present while held or
  // waited on, its value's length is the number of waiters. It keeps its
  // place among the own properties, where async-lock has it, although the
  // reach is opened last (below). One getter for every lock: a getter
  // closure per lock would give each lock a map of its own, so the hot
  // paths' property loads on the lock would be polymorphic across locks and
  // their optimized code thrown away whenever a lock is collected.
  Object.defineProperty(this, 'queues', { enumerable: true, get: queuesView })
  this.domainReentrant = opts.domainReentrant || false
  if (this.domainReentrant) {
    if (typeof process === 'undefined' || typeof process.domain === 'undefined') {
      throw new Error(messages.domainMissing)
    }
    this.domains = Object.create(null)
  }
  this.timeout = timeOption('timeout', opts.timeout) || timeOption('AsyncLock.DEFAULT_TIMEOUT', AsyncLock.DEFAULT_TIMEOUT)
  this.maxOccupationTime =
    timeOption('maxOccupationTime', opts.maxOccupationTime) ||
    timeOption('AsyncLock.DEFAULT_MAX_OCCUPATION_TIME', AsyncLock.DEFAULT_MAX_OCCUPATION_TIME)
  this.maxExecutionTime =
    timeOption('maxExecutionTime', opts.maxExecutionTime) ||
    timeOption('AsyncLock.DEFAULT_MAX_EXECUTION_TIME', AsyncLock.DEFAULT_MAX_EXECUTION_TIME)
  this.maxPending = maxPendingOption(opts.maxPending, AsyncLock.DEFAULT_MAX_PENDING)
  // Opened last, once every other option has passed: a Redis client opened
  // by a constructor that then threw would keep its share of the
  // connection, and that URL's last close() would never come.
  const space = openSpace(opts)
  Object.defineProperty(this, '_space', { value: space })
  // Never a URL: a Redis lock is named by its `name` option only.
  Object.defineProperty(this, '_stats', {
    value: new Stats(reachOf(opts), typeof opts.name === 'string' ? opts.name : undefined),
  })
}

AsyncLock.DEFAULT_TIMEOUT = 0 // never
AsyncLock.DEFAULT_MAX_OCCUPATION_TIME = 0 // never
AsyncLock.DEFAULT_MAX_EXECUTION_TIME = 0 // never
AsyncLock.DEFAULT_MAX_PENDING = 1000

// The reason a lease's signal aborts with (see lock()); a class, for instanceof.
AsyncLock.LockLostError = LockLostError

/**
 * Acquire a lock on `key` (or every key of an array, all at once) and run
 * `fn` under it. See index.d.ts for the full contract.
 */
AsyncLock.prototype.acquire = function (key, fn, cb, opts) {
  if (Array.isArray(key)) return this._acquireBatch(key, fn, cb, opts)
  if (typeof fn !== 'function') throw new Error(messages.noFunction)
  const name = typeof key === 'string' ? key : normalizeKey(key)
  if (typeof cb === 'function') {
    const task = new Task(this, fn, cb, name, this._space.intern(name))
    if (start(this, task, opts) === REJECTED) task.fail(new Error(refusedMessage(task, this._space.rejectedIndex)), null, 'refused')
    return undefined
  }
  const task = new Task(this, fn, null, name, this._space.intern(name))
  const promise = new this.Promise(capture)
  task.resolve = capturedResolve
  task.reject = capturedReject
  capturedResolve = capturedReject = null
  if (start(this, task, cb) === REJECTED) task.fail(new Error(refusedMessage(task, this._space.rejectedIndex)), null, 'refused')
  return promise
}

function collectKeys(keys, names, seen) {
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]
    if (Array.isArray(key)) {
      collectKeys(key, names, seen)
      continue
    }
    const name = normalizeKey(key)
    if (seen.has(name)) continue
    seen.add(name)
    names.push(name)
  }
}

AsyncLock.prototype._acquireBatch = function (keys, fn, cb, opts) {
  const names = []
  collectKeys(keys, names, new Set())
  if (typeof cb !== 'function') {
    opts = cb
    cb = null
  }
  const P = this.Promise
  if (typeof fn !== 'function') {
    const err = new Error(messages.noFunction)
    if (cb !== null) throw err
    return new P((resolve, reject) => reject(err))
  }
  if (names.length === 0) {
    // async-lock runs fn directly, taking no lock and ignoring options.
    if (cb !== null) {
      fn(cb)
      return undefined
    }
    return new P((resolve, reject) => {
      if (fn.length === 1) fn((err, ret) => (err ? reject(err) : resolve(ret)))
      else resolve(fn())
    })
  }
  if (names.length === 1) {
    return cb !== null ? this.acquire(names[0], fn, cb, opts) : this.acquire(names[0], fn, opts)
  }
  const ids = this._space.internAll(names)
  if (cb !== null) {
    const task = new Task(this, fn, cb, names, ids)
    if (start(this, task, opts) === REJECTED) task.fail(new Error(refusedMessage(task, this._space.rejectedIndex)), null, 'refused')
    return undefined
  }
  const task = new Task(this, fn, null, names, ids)
  const promise = new P(capture)
  task.resolve = capturedResolve
  task.reject = capturedReject
  capturedResolve = capturedReject = null
  if (start(this, task, opts) === REJECTED) task.fail(new Error(refusedMessage(task, this._space.rejectedIndex)), null, 'refused')
  return promise
}

/** Whether `key` (or, without a key, any key) is held or waited on. */
AsyncLock.prototype.isBusy = function (key) {
  if (!key) return this._space.busy
  return this._space.isBusy(normalizeKey(key))
}

/**
 * keyed-lock's lease API: resolves with a Lease once `key` (or every key of an
 * array) is held, on the same queues as acquire(). See index.d.ts for the
 * contract. Never throws: bad arguments reject with a TypeError. A native
 * Promise whatever the `Promise` option (that option is async-lock's, for
 * acquire(); `await using` and AbortSignal are of the native-Promise era).
 */
AsyncLock.prototype.lock = function (key, options) {
  let names
  let opts
  let weight
  try {
    names = leaseKeys(key)
    opts = leaseOptions(options, this.timeout)
    weight = callWeight(opts.options, this._space.permits || 1, names.length)
  } catch (err) {
    return Promise.reject(err)
  }
  const { timeout, signal } = opts
  // Node's convention: an aborted signal rejects before anything is queued.
  if (signal !== undefined && signal.aborted) {
    this._stats.aborts++
    return Promise.reject(abortReason(signal))
  }
  return lockLease(this._space, this._stats, names, timeout, this.maxPending, signal, weight)
}

/**
 * Counters and current state of this lock (index.d.ts: LockStats). Cheap:
 * counters are kept as calls go; the busy keys are read from the space
 * (this process's view on Redis) and sorted only here, `top` at most.
 */
AsyncLock.prototype.stats = function (options) {
  let top = DEFAULT_TOP
  if (options !== undefined && options !== null) {
    if (typeof options !== 'object') throw invalidArg('options', 'an object', options)
    if (options.top !== undefined) {
      top = options.top
      if (!Number.isInteger(top) || top < 0) throw invalidArg('options.top', 'a non-negative integer', top)
    }
  }
  return this._stats.read(this._space.snapshot(), top)
}

const toUndefined = () => undefined

/**
 * Lets go of what the lock space holds outside this thread (the Redis
 * reach's connection; its waits end with KEYED_LOCK_CLOSED and later calls
 * refuse). The in-process reaches hold nothing of the kind: it resolves at
 * once and the lock stays usable.
 */
AsyncLock.prototype.close = function () {
  try {
    return this._space.close().then(toUndefined)
  } catch (err) {
    return Promise.reject(err)
  }
}

AsyncLock.prototype._promiseTry = function (fn) {
  try {
    return this.Promise.resolve(fn())
  } catch (e) {
    return this.Promise.reject(e)
  }
}

module.exports = AsyncLock
