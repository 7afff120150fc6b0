'use strict'
// The async-lock 1.5.0 face. Same constructor, options, statics, argument
// juggling, call order and messages; the queues live in the Rust core (see
// lib/engine.js). Where keylock deliberately differs, docs/compat.md says
// so and names the test that pins it.

const { Space, deliver, internAll, GRANTED, QUEUED, REMOTE } = require('./lib/engine')
const { SharedSpace } = require('./lib/shared')
const { RedisSpace } = require('./lib/redis')
const { messages, invalidArg } = require('./lib/errors')
const { timeOption, maxPendingOption, normalizeKey } = require('./lib/validate')
const { LockLostError, leaseKeys, leaseOptions, abortReason } = require('./lib/lease')
const { lockLocal } = require('./lib/local-lease')

const MAX_I32 = 0x7fffffff

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

/**
 * The lock space: this lock's own (scope 'isolate', the default), or the
 * process-wide one named `name` that every worker thread naming it shares.
 */
function spaceOption(opts) {
  const { scope, name } = opts
  if (opts.redis !== undefined && opts.redis !== null) {
    if (scope !== undefined && scope !== 'redis') {
      throw invalidArg('option "scope"', "'redis' or unset when the redis option is given", scope)
    }
    return new RedisSpace(opts.redis, { name, prefix: opts.prefix, ttl: opts.ttl, tls: opts.tls, waitReplicas: opts.waitReplicas })
  }
  if (scope === 'redis') throw invalidArg('option "redis"', "a Redis URL when scope is 'redis'", opts.redis)
  if (scope === undefined || scope === 'isolate') return new Space()
  if (scope !== 'process') throw invalidArg('option "scope"', "'isolate', 'process' or 'redis'", scope)
  if (typeof name !== 'string' || name === '') {
    throw invalidArg('option "name"', "a non-empty string when scope is 'process'", name)
  }
  return SharedSpace.open(name)
}

const pendingForNative = (n) => (n === Infinity ? -1 : Math.min(n, MAX_I32))

function AsyncLock(opts) {
  opts = opts || {}
  this.Promise = promiseOption(opts.Promise)
  const space = spaceOption(opts)
  Object.defineProperty(this, '_space', { value: space })
  // Read-only view in async-lock's shape: a key is present while held or
  // waited on, its value's length is the number of waiters.
  Object.defineProperty(this, 'queues', { enumerable: true, get: () => space.snapshot() })
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
}

AsyncLock.DEFAULT_TIMEOUT = 0 // never
AsyncLock.DEFAULT_MAX_OCCUPATION_TIME = 0 // never
AsyncLock.DEFAULT_MAX_EXECUTION_TIME = 0 // never
AsyncLock.DEFAULT_MAX_PENDING = 1000

// The reason a lease's signal aborts with (see lock()); a class, for instanceof.
AsyncLock.LockLostError = LockLostError

/**
 * What only some tasks need: timers, a per-call execution limit, a domain.
 * Kept off the Task so that a plain acquisition stays small (a million
 * queued waiters is a real workload).
 */
class Extra {
  constructor() {
    this.timer = null
    this.occupationTimer = null
    this.executionTimer = null
    this.maxExecutionTime = 0
    this.domainRun = null
    /** Redis reach: ends the wait in Redis (maxOccupationTime while queued) */
    this.remoteWait = null
  }
}

const LOCKED = 1
const RESOLVED = 2
const CALLED = 4

/** One acquire call, from the call to its settlement and release. */
class Task {
  constructor(lock, fn, cb, name, ids) {
    this.lock = lock
    this.fn = fn
    /** the caller's cb in callback mode, the promise's resolve otherwise */
    this.resolve = cb
    /** the promise's reject; null in callback mode */
    this.reject = null
    /** normalized key, or the array of them */
    this.name = name
    /** key id, or the array of them */
    this.ids = ids
    this.ticket = -1
    /** LOCKED | RESOLVED | CALLED: one field, since a million waiters is a real workload */
    this.state = 0
    /** an Extra, or null */
    this.extra = null
  }

  /** Called by the engine when a queued task is handed its keys. */
  granted() {
    if (this.extra !== null && this.extra.domainRun !== null) this.extra.domainRun(true)
    else this.run(true)
  }

  run(locked) {
    this.state = locked ? this.state | LOCKED : this.state & ~LOCKED
    const extra = this.extra
    if (extra !== null) {
      if (extra.timer !== null) {
        clearTimeout(extra.timer)
        extra.timer = null
      }
      const lock = this.lock
      if (locked && lock.domainReentrant) {
        for (const name of this.names()) lock.domains[name] = process.domain
      }
      if (extra.maxExecutionTime) {
        extra.executionTimer = setTimeout(onExecutionTimeout, extra.maxExecutionTime, this)
      }
    }
    const fn = this.fn
    if (fn.length === 1) {
      try {
        fn((err, ret) => {
          if ((this.state & CALLED) === 0) {
            this.state |= CALLED
            this.finish(err, ret)
          }
        })
      } catch (err) {
        if ((this.state & CALLED) === 0) {
          this.state |= CALLED
          this.finish(err, undefined)
        }
      }
      return
    }
    const P = this.lock.Promise
    let value
    try {
      value = fn()
    } catch (err) {
      P.reject(err).then(undefined, (e) => this.finish(e, undefined))
      return
    }
    P.resolve(value).then(
      (ret) => this.finish(undefined, ret),
      (err) => this.finish(err, undefined),
    )
  }

  /**
   * async-lock's done(): release, tell the caller (once), start the next
   * waiters. Keys nobody waits for are freed before the caller is told and
   * keys with waiters are handed on after (see Space.releaseIdle), as
   * async-lock does.
   */
  finish(err, ret) {
    if (this.extra !== null) this.clearTimers()
    let contended = null
    if ((this.state & LOCKED) !== 0) {
      this.state &= ~LOCKED
      const lock = this.lock
      if (lock.domainReentrant) for (const name of this.names()) delete lock.domains[name]
      contended = lock._space.releaseIdle(this.ids, this)
    }
    if ((this.state & RESOLVED) === 0) {
      this.state |= RESOLVED
      if (contended === null) {
        this.notify(err, ret)
        return
      }
      if (contended instanceof Promise) {
        this.notifyAfter(contended, err, ret)
        return
      }
      try {
        this.notify(err, ret)
      } finally {
        handOff(this.lock._space, contended)
      }
      return
    }
    if (contended !== null && !(contended instanceof Promise)) handOff(this.lock._space, contended)
  }

  /**
   * The Redis reach's releaseIdle answers with the release in flight (the
   * hand-off to the next waiter happens in the same script): as async-lock
   * tells the caller after releasing, the caller is told once Redis has it,
   * so the key is free in Redis by the time acquire() settles.
   */
  notifyAfter(released, err, ret) {
    released.then(() => {
      try {
        this.notify(err, ret)
      } catch (thrown) {
        // A throwing cb: an uncaught exception, as it is in async-lock.
        process.nextTick(() => {
          throw thrown
        })
      }
    })
  }

  clearTimers() {
    const extra = this.extra
    if (extra.occupationTimer !== null) {
      clearTimeout(extra.occupationTimer)
      extra.occupationTimer = null
    }
    if (extra.executionTimer !== null) {
      clearTimeout(extra.executionTimer)
      extra.executionTimer = null
    }
  }

  notify(err, ret) {
    if (this.reject === null) {
      if (this.resolve !== null) this.resolve(err, ret)
    } else if (err) {
      this.reject(err)
    } else {
      this.resolve(ret)
    }
  }

  /** Ends a task that never got its keys (refused, timed out). */
  fail(err, granted) {
    this.state |= RESOLVED
    if (this.extra !== null) this.clearTimers()
    if (granted === null || granted.length === 0) {
      this.notify(err, undefined)
      return
    }
    try {
      this.notify(err, undefined)
    } finally {
      deliver(granted)
    }
  }

  names() {
    return Array.isArray(this.name) ? this.name : [this.name]
  }

  /**
   * Leaves the queue. Returns the waiters that unblocks and the key still
   * awaited, or null if the task was granted already (on the process reach
   * a grant can be on its way from another thread): the grant stands and
   * the task will run.
   */
  leaveQueue() {
    const space = this.lock._space
    const granted = space.cancel(this)
    if (granted === null) return null
    const extra = this.extra
    if (extra !== null && extra.timer !== null) {
      clearTimeout(extra.timer)
      extra.timer = null
    }
    return { granted, blocking: this.names()[Math.max(0, space.blockingIndex)] }
  }
}

/** Releases keys that have waiters and starts the waiters they go to. */
function handOff(space, ids) {
  const granted = typeof ids === 'number' ? space.releaseOne(ids) : space.releaseMany(ids)
  if (granted.length !== 0) deliver(granted)
}

function onTimeout(task) {
  task.extra.timer = null
  if ((task.state & RESOLVED) !== 0 || task.ticket === -1) return
  const left = task.leaveQueue()
  if (left !== null) task.fail(new Error(messages.timedOut(left.blocking)), left.granted)
}

function onOccupationTimeout(task) {
  task.extra.occupationTimer = null
  if ((task.state & RESOLVED) !== 0) return
  // (On the Redis reach a ticket is a lease: the task runs.)
  if (task.ticket !== -1 && task.lock._space.remote !== true) {
    // Still queued: it leaves the queue (async-lock leaves a dead entry).
    const left = task.leaveQueue()
    if (left !== null) {
      task.fail(new Error(messages.occupationExceeded(left.blocking)), left.granted)
      return
    }
  }
  // Still waiting in Redis: it leaves the queue there (a grant that wins
  // the race is passed straight on when it arrives, see startRemote).
  if (task.ticket === -1 && task.extra.remoteWait !== null) task.extra.remoteWait.abort()
  // Running: the caller is told, the task keeps its keys until fn finishes.
  task.state |= RESOLVED
  task.notify(new Error(messages.occupationExceeded(task.names()[0])), undefined)
}

function onExecutionTimeout(task) {
  task.extra.executionTimer = null
  if ((task.state & (RESOLVED | LOCKED)) === RESOLVED) return
  // A lease, as in async-lock: the caller is told and the keys pass on now,
  // while fn may still be running; fn is no longer the holder. Its late
  // finish releases nothing (async-lock releases a second time then, which
  // frees the key under whoever holds it next).
  task.finish(new Error(messages.executionExceeded(task.names()[0])), undefined)
}

/** Takes the task's keys or queues it; the no-options, no-timer case stays lean. */
function start(lock, task, opts) {
  if (opts || lock.timeout || lock.maxOccupationTime || lock.maxExecutionTime || lock.domainReentrant) {
    startWithOptions(lock, task, opts)
    return
  }
  const space = lock._space
  const ids = task.ids
  const maxPending = pendingForNative(lock.maxPending)
  const outcome =
    typeof ids === 'number' ? space.acquireOne(ids, maxPending, false, task) : space.acquireMany(ids, maxPending, false, task)
  if (outcome === GRANTED) task.run(true)
  else if (outcome === REMOTE) startRemote(lock, task, undefined)
  else if (outcome !== QUEUED) refuse(task, space)
}

function refuse(task, space) {
  const full = Array.isArray(task.name) ? task.name[space.rejectedIndex] : task.name
  task.fail(new Error(messages.tooManyPending(full)), null)
}

/** One call's limits: its options over the lock's, read as async-lock reads them. */
class CallOptions {
  constructor(lock, opts) {
    this.timeout = lock.timeout
    this.maxOccupationTime = lock.maxOccupationTime
    this.maxExecutionTime = lock.maxExecutionTime
    this.maxPending = lock.maxPending
    this.skipQueue = false
    if (opts) {
      this.timeout = timeOption('timeout', opts.timeout) || this.timeout
      this.maxOccupationTime = timeOption('maxOccupationTime', opts.maxOccupationTime) || this.maxOccupationTime
      this.maxExecutionTime = timeOption('maxExecutionTime', opts.maxExecutionTime) || this.maxExecutionTime
      this.maxPending = maxPendingOption(opts.maxPending || this.maxPending, this.maxPending)
      this.skipQueue = !!opts.skipQueue
    }
  }
}

function startWithOptions(lock, task, opts) {
  const space = lock._space
  if (space.remote === true) {
    startRemote(lock, task, opts)
    return
  }
  const { timeout, maxOccupationTime, maxExecutionTime, maxPending, skipQueue } = new CallOptions(lock, opts)
  if (maxExecutionTime) extraOf(task).maxExecutionTime = maxExecutionTime
  if (lock.domainReentrant && process.domain) {
    const domain = process.domain
    if (task.names().every((name) => space.isBusy(name) && lock.domains[name] === domain)) {
      // Same domain as the holder: runs at once, unqueued, holding nothing.
      if (maxOccupationTime) extraOf(task).occupationTimer = setTimeout(onOccupationTimeout, maxOccupationTime, task)
      task.run(false)
      return
    }
    extraOf(task).domainRun = domain.bind((locked) => task.run(locked))
  }
  const ids = task.ids
  const outcome =
    typeof ids === 'number'
      ? space.acquireOne(ids, pendingForNative(maxPending), skipQueue, task)
      : space.acquireMany(ids, pendingForNative(maxPending), skipQueue, task)
  if (outcome === GRANTED) {
    if (maxOccupationTime) extraOf(task).occupationTimer = setTimeout(onOccupationTimeout, maxOccupationTime, task)
    task.run(true)
  } else if (outcome === QUEUED) {
    if (timeout) extraOf(task).timer = setTimeout(onTimeout, timeout, task)
    if (maxOccupationTime) extraOf(task).occupationTimer = setTimeout(onOccupationTimeout, maxOccupationTime, task)
  } else {
    refuse(task, space)
  }
}

/**
 * The Redis reach: the grant comes back after a round trip, so fn never
 * runs synchronously inside acquire() there. Timeouts and maxPending are
 * decided in Redis (across processes); maxOccupationTime and
 * maxExecutionTime are timed here, as on the other reaches.
 */
function startRemote(lock, task, opts) {
  const space = lock._space
  const { timeout, maxOccupationTime, maxExecutionTime, maxPending, skipQueue } = new CallOptions(lock, opts)
  if (maxExecutionTime) extraOf(task).maxExecutionTime = maxExecutionTime
  let signal
  if (maxOccupationTime) {
    const extra = extraOf(task)
    extra.occupationTimer = setTimeout(onOccupationTimeout, maxOccupationTime, task)
    extra.remoteWait = new AbortController()
    signal = extra.remoteWait.signal
  }
  space.request(task, { timeout, maxPending: pendingForNative(maxPending), skipQueue, signal }).then(
    (r) => {
      if (r.status === 'granted') {
        task.ticket = r.lease.id
        if ((task.state & RESOLVED) !== 0) {
          // Told already (maxOccupationTime passed while it waited): pass the keys on.
          space.releaseIdle(task.ids, task)
          return
        }
        task.run(true)
      } else if ((task.state & RESOLVED) === 0) {
        if (r.status === 'rejected') {
          space.rejectedIndex = r.index
          refuse(task, space)
        } else {
          task.fail(new Error(messages.timedOut(task.names()[0])), null)
        }
      }
    },
    (err) => {
      if ((task.state & RESOLVED) === 0) task.fail(err, null)
    },
  )
}

/** The task's Extra, made on first need: a call whose options arm nothing costs none. */
function extraOf(task) {
  return task.extra !== null ? task.extra : (task.extra = new Extra())
}

/**
 * Acquire a lock on `key` (or every key of an array, all at once) and run
 * `fn` under it. See index.d.ts for the full contract.
 */
AsyncLock.prototype.acquire = function (key, fn, cb, opts) {
  if (Array.isArray(key)) return this._acquireBatch(key, fn, cb, opts)
  if (typeof fn !== 'function') throw new Error(messages.noFunction)
  const name = typeof key === 'string' ? key : normalizeKey(key)
  if (typeof cb === 'function') {
    start(this, new Task(this, fn, cb, name, this._space.intern(name)), opts)
    return undefined
  }
  const task = new Task(this, fn, null, name, this._space.intern(name))
  const promise = new this.Promise(capture)
  task.resolve = capturedResolve
  task.reject = capturedReject
  capturedResolve = capturedReject = null
  start(this, task, cb)
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
  const space = this._space
  const ids = internAll(space, names)
  if (cb !== null) {
    start(this, new Task(this, fn, cb, names, ids), opts)
    return undefined
  }
  const task = new Task(this, fn, null, names, ids)
  const promise = new P(capture)
  task.resolve = capturedResolve
  task.reject = capturedReject
  capturedResolve = capturedReject = null
  start(this, task, opts)
  return promise
}

/** Whether `key` (or, without a key, any key) is held or waited on. */
AsyncLock.prototype.isBusy = function (key) {
  if (!key) return this._space.busy
  return this._space.isBusy(normalizeKey(key))
}

/**
 * keylock's lease API: resolves with a Lease once `key` (or every key of an
 * array) is held, on the same queues as acquire(). See index.d.ts for the
 * contract. Never throws: bad arguments reject with a TypeError. A native
 * Promise whatever the `Promise` option (that option is async-lock's, for
 * acquire(); `await using` and AbortSignal are of the native-Promise era).
 */
AsyncLock.prototype.lock = function (key, options) {
  let names
  let opts
  try {
    names = leaseKeys(key)
    opts = leaseOptions(options, this.timeout)
  } catch (err) {
    return Promise.reject(err)
  }
  const { timeout, signal } = opts
  // Node's convention: an aborted signal rejects before anything is queued.
  if (signal !== undefined && signal.aborted) return Promise.reject(abortReason(signal))
  const space = this._space
  if (space.remote === true) {
    // A key the reach refuses (a symbol on Redis) is a rejection too.
    try {
      return space.lockLease(names, { timeout, signal, maxPending: this.maxPending })
    } catch (err) {
      return Promise.reject(err)
    }
  }
  return lockLocal(space, names, timeout, this.maxPending, signal)
}

/**
 * Lets go of what the lock space holds outside this thread (a remote reach's
 * connections). The in-process reaches hold nothing of the kind: it resolves
 * at once and the lock stays usable.
 */
AsyncLock.prototype.close = function () {
  const space = this._space
  if (typeof space.close !== 'function') return Promise.resolve()
  try {
    return Promise.resolve(space.close()).then(() => undefined)
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
