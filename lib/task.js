'use strict'
// One acquire() call of the async-lock face, from the call to its settlement
// and release: the task state machine and its timers (timeout,
// maxOccupationTime, maxExecutionTime), over the Space contract
// (lib/spaces/index.js), the same on every reach. index.js reads the
// arguments and makes the Task; start() takes it from there.
//
// States (one bit field, since a million queued tasks is a real workload):
//
//   from                event                          to / what happens
//   new                 acquire GRANTED                LOCKED: fn runs
//   new                 acquire QUEUED                 queued (ticket set): timers armed
//   new                 acquire REJECTED               RESOLVED: the caller gets maxPending's error
//   queued              granted()                      LOCKED: fn runs
//   queued              timeout / maxOccupationTime    RESOLVED: leaves the queue, the caller is told
//   queued, grant on    timeout                        stays queued: the grant stands, fn runs
//     its way (cancel
//     answered null)
//   queued, outcome     maxOccupationTime              RESOLVED: the caller is told; the grant, when
//     on its way                                       it comes, is passed straight on (fn never runs)
//   queued              denied()                       RESOLVED: the caller gets the reach's answer
//   LOCKED              fn settles / done()            released (idle keys first), RESOLVED: the
//                                                      caller is told, then the keys are handed on
//   LOCKED              maxExecutionTime               released and RESOLVED now; fn's late finish
//                                                      releases nothing
//   LOCKED              maxOccupationTime              RESOLVED: the caller is told; the keys stay
//                                                      held until fn finishes
//
// A task that was told already when its grant arrives passes the keys on
// without running fn, as async-lock's dead queue entries do.

const { GRANTED, QUEUED, REJECTED, TIMED_OUT, RELEASED, RELEASING, HANDOFF, deliver, handOff, pendingForNative } = require('./spaces')
const { messages } = require('./errors')
const { timeOption, maxPendingOption, callWeight } = require('./validate')
const { traced, Trace, queuedAt } = require('./trace')

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
    /** what the caller is told once a release that answered RELEASING is done: [err, ret] */
    this.owed = null
    /** a Trace (lib/trace.js) while someone listens to the channels */
    this.trace = null
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
    /** when the wait began (queuedAt(), a small integer), or 0 while it has not queued: stats read no clock for a free key */
    this.since = 0
  }

  /** The space handed a queued task its keys. */
  granted() {
    if ((this.state & RESOLVED) !== 0) {
      this.passOn()
      return
    }
    this.lock._stats.grant(this.since)
    if (this.extra !== null && this.extra.domainRun !== null) this.extra.domainRun(true)
    else this.run(true)
  }

  /** Granted after the caller was told (see onOccupationTimeout): gives the keys straight back. */
  passOn() {
    const extra = this.extra
    if (extra !== null && extra.timer !== null) {
      clearTimeout(extra.timer)
      extra.timer = null
    }
    this.state |= LOCKED
    // Never counted as a grant (fn does not run): balance finish()'s release.
    this.lock._stats.released--
    this.finish(undefined, undefined)
  }

  /** The wait ended without a grant (a reach that decides waits itself, see the Space contract). */
  denied(outcome, detail) {
    if ((this.state & RESOLVED) !== 0) return
    const extra = this.extra
    if (extra !== null && extra.timer !== null) {
      clearTimeout(extra.timer)
      extra.timer = null
    }
    if (outcome === REJECTED) refuse(this, detail)
    else if (outcome === TIMED_OUT) this.fail(new Error(messages.timedOut(this.names()[detail])), null, 'timeout')
    else this.fail(detail, null, 'error')
  }

  run(locked) {
    this.state = locked ? this.state | LOCKED : this.state & ~LOCKED
    const extra = this.extra
    if (extra !== null) {
      if (extra.trace !== null && locked) extra.trace.granted(grantToken(this))
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
    if (P === NativePromise && (typeof value !== 'object' || value === null) && typeof value !== 'function') {
      settleLater(this, value)
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
   * keys with waiters are handed on after (the Space contract's
   * releaseIdle), as async-lock does.
   */
  finish(err, ret) {
    if (this.extra !== null) this.clearTimers()
    let contended = null
    if ((this.state & LOCKED) !== 0) {
      this.state &= ~LOCKED
      const lock = this.lock
      if (lock.domainReentrant) for (const name of this.names()) delete lock.domains[name]
      const stats = lock._stats
      stats.released++
      if (err) stats.errors++
      const space = lock._space
      const released = space.releaseIdle(this.ids, this)
      if (this.extra !== null && this.extra.trace !== null) {
        this.extra.trace.released(err || undefined, released === HANDOFF ? true : released === RELEASED ? false : undefined)
      }
      if (released === HANDOFF) {
        contended = space.contended
        space.contended = null
      } else if (released === RELEASING) {
        // As async-lock tells the caller after releasing, the caller is told
        // once the release is done (released()), so the keys are free where
        // the queue lives by the time acquire() settles.
        if ((this.state & RESOLVED) === 0) {
          this.state |= RESOLVED
          extraOf(this).owed = [err, ret]
        }
        return
      }
    } else if (this.extra !== null && this.extra.trace !== null) {
      // Ran unqueued in its holder's domain, holding nothing: fn settled,
      // nothing to give back.
      this.extra.trace.released(err || undefined, undefined, false)
    }
    if ((this.state & RESOLVED) === 0) {
      this.state |= RESOLVED
      if (contended === null) {
        this.notify(err, ret)
        return
      }
      try {
        this.notify(err, ret)
      } finally {
        handOff(this.lock._space, contended)
      }
      return
    }
    if (contended !== null) handOff(this.lock._space, contended)
  }

  /** A release that answered RELEASING is done: the caller is told now, if it is owed that. */
  released() {
    const extra = this.extra
    if (extra === null || extra.owed === null) return
    const [err, ret] = extra.owed
    extra.owed = null
    try {
      this.notify(err, ret)
    } catch (thrown) {
      // A throwing cb: an uncaught exception, as it is in async-lock.
      process.nextTick(() => {
        throw thrown
      })
    }
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

  /** Ends a task that never got its keys; `outcome` says why: 'timeout' | 'refused' | 'error'. */
  fail(err, granted, outcome) {
    this.state |= RESOLVED
    this.lock._stats.failed(outcome)
    if (this.extra !== null) {
      this.clearTimers()
      if (this.extra.trace !== null) this.extra.trace.failed(outcome, err)
    }
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
   * awaited, or null if the outcome of the wait is on its way (a grant from
   * another thread, or any answer from a reach that decides waits itself):
   * it will reach granted() or denied().
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

// fn returned a plain value (not an object, so no `then` to look up) and
// the lock's Promise is the native one: finish() runs one microtask later,
// exactly as after P.resolve(value).then(...), but through one shared
// handler and one shared fulfilled promise instead of a fresh promise, a
// context and two closures per task. Reaction jobs of one fulfilled
// promise run in the order they were queued, so the handler takes the
// oldest entry of a ring (task, value; a power-of-two length that only
// grows, so a steady stream allocates nothing).
const NativePromise = Promise
const FULFILLED = NativePromise.resolve()
let ring = new Array(64).fill(undefined)
let ringHead = 0
let ringUsed = 0

function settleLater(task, value) {
  if (ringUsed === ring.length) growRing()
  const at = (ringHead + ringUsed) & (ring.length - 1)
  ring[at] = task
  ring[at + 1] = value
  ringUsed += 2
  FULFILLED.then(settleNext)
}

function settleNext() {
  const at = ringHead
  const task = ring[at]
  const value = ring[at + 1]
  ring[at] = ring[at + 1] = undefined
  ringHead = (at + 2) & (ring.length - 1)
  ringUsed -= 2
  task.finish(undefined, value)
}

function growRing() {
  const old = ring
  const mask = old.length - 1
  ring = new Array(old.length * 2).fill(undefined)
  for (let i = 0; i < ringUsed; i++) ring[i] = old[(ringHead + i) & mask]
  ringHead = 0
}

function onTimeout(task) {
  task.extra.timer = null
  if ((task.state & RESOLVED) !== 0 || task.ticket === -1) return
  const left = task.leaveQueue()
  if (left !== null) task.fail(new Error(messages.timedOut(left.blocking)), left.granted, 'timeout')
}

function onOccupationTimeout(task) {
  task.extra.occupationTimer = null
  if ((task.state & RESOLVED) !== 0) return
  if (task.ticket !== -1) {
    // Still queued: it leaves the queue (async-lock leaves a dead entry).
    const left = task.leaveQueue()
    if (left !== null) {
      task.fail(new Error(messages.occupationExceeded(left.blocking)), left.granted, 'timeout')
      return
    }
    // Its wait's outcome is on its way: a grant is passed straight on
    // (granted() sees RESOLVED), a denial is ignored.
  }
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

/**
 * Takes the task's keys or queues it; the no-options, no-timer case stays
 * lean. Returns REJECTED when a full queue refused it: the caller then
 * fails it with refusedMessage() (see index.js: the Error is made in the
 * call the user made, so its stack starts there, as async-lock's does, and
 * V8 walks two frames fewer for it).
 */
function start(lock, task, opts) {
  if (opts || lock.timeout || lock.maxOccupationTime || lock.maxExecutionTime || lock.domainReentrant || traced(false)) {
    return startWithOptions(lock, task, opts)
  }
  const space = lock._space
  const ids = task.ids
  const maxPending = pendingForNative(lock.maxPending)
  // No timeout argument: none is set here (the contract reads a missing one as 0).
  const outcome =
    typeof ids === 'number' ? space.acquireOne(ids, maxPending, false, task) : space.acquireMany(ids, maxPending, false, task)
  if (outcome === GRANTED) {
    // Never waited: counted without reading the clock.
    lock._stats.free++
    task.run(true)
  } else if (outcome === QUEUED) task.since = queuedAt()
  else return REJECTED
  return outcome
}

/** A full queue refused the task; `index` is the full key's position in the request. */
function refuse(task, index) {
  task.fail(new Error(refusedMessage(task, index)), null, 'refused')
}

/** maxPending's message for a refused task: its full key, at `index` in the request. */
function refusedMessage(task, index) {
  return messages.tooManyPending(Array.isArray(task.name) ? task.name[index] : task.name)
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
  // `weight` / `mode` (docs/semaphores.md): read only from a call that has
  // options, and set on the task only when it is not the default, so a
  // mutex's tasks keep their shape. Checked before a trace starts: a
  // TypeError leaves no trace open.
  if (opts && (opts.weight !== undefined || opts.mode !== undefined)) {
    const weight = callWeight(opts, space.permits || 1, typeof task.ids === 'number' ? 1 : task.ids.length)
    if (weight !== undefined) task.weight = weight
  }
  let trace = null
  if (traced(false)) {
    trace = extraOf(task).trace = new Trace(lock._stats, task.name, task.reject === null ? 'callback' : 'promise')
    trace.start()
  }
  const { timeout, maxOccupationTime, maxExecutionTime, maxPending, skipQueue } = new CallOptions(lock, opts)
  if (maxExecutionTime) extraOf(task).maxExecutionTime = maxExecutionTime
  if (lock.domainReentrant && space.reentrant && process.domain) {
    const domain = process.domain
    if (task.names().every((name) => space.isBusy(name) && lock.domains[name] === domain)) {
      // Same domain as the holder: runs at once, unqueued, holding nothing.
      if (maxOccupationTime) extraOf(task).occupationTimer = setTimeout(onOccupationTimeout, maxOccupationTime, task)
      if (trace !== null) {
        trace.end()
        trace.granted(undefined)
      }
      task.run(false)
      return
    }
    extraOf(task).domainRun = domain.bind((locked) => task.run(locked))
  }
  const ids = task.ids
  const outcome =
    typeof ids === 'number'
      ? space.acquireOne(ids, pendingForNative(maxPending), skipQueue, task, timeout)
      : space.acquireMany(ids, pendingForNative(maxPending), skipQueue, task, timeout)
  // The call's synchronous part ends here, before fn runs: every reach
  // publishes start, end, then asyncStart (grant) or error.
  if (trace !== null) trace.end()
  if (outcome === GRANTED) {
    lock._stats.free++
    if (maxOccupationTime) extraOf(task).occupationTimer = setTimeout(onOccupationTimeout, maxOccupationTime, task)
    task.run(true)
  } else if (outcome === QUEUED) {
    task.since = queuedAt()
    // Where the reach decides waits itself, the timeout went with the request.
    if (timeout && !space.timesWaits) extraOf(task).timer = setTimeout(onTimeout, timeout, task)
    if (maxOccupationTime) extraOf(task).occupationTimer = setTimeout(onOccupationTimeout, maxOccupationTime, task)
  } else {
    return REJECTED
  }
  return outcome
}

/** The fencing token of a granted task, for the trace (a grant's token is the largest of its keys'). */
function grantToken(task) {
  const tokens = task.lock._space.tokens(task, Array.isArray(task.ids) ? task.ids.length : 1)
  let token = tokens[0]
  for (let i = 1; i < tokens.length; i++) if (tokens[i] > token) token = tokens[i]
  return token
}

/** The task's Extra, made on first need: a call whose options arm nothing costs none. */
function extraOf(task) {
  return task.extra !== null ? task.extra : (task.extra = new Extra())
}


module.exports = { Task, start, refusedMessage }
