'use strict'
// The floor: the least a correct keyed FIFO lock with async-lock's API and
// timing has to do in plain JS, written for speed. keyed-lock has to come
// within 1.3x of it on every workload, or the native core is not paying
// for itself.
//
// What it does, exactly like async-lock: fn runs synchronously in acquire()
// on a free key; in promise mode completion is observed through
// `Promise.resolve(fn()).then(...)` and the next waiter starts in that same
// microtask; callback mode when fn.length === 1; FIFO per key; `timeout`
// on a queued call; maxPending (a queue holding that many refuses the
// call, as async-lock counts it). What it leaves out: skipQueue, maxOccupationTime, maxExecutionTime, domains,
// opts.Promise. Multi-key requests are NOT all-or-nothing: keys are taken
// one by one in sorted order, the simplest approach that cannot deadlock.
//
// Costs kept minimal: a Map of busy keys whose value is a shared HELD
// marker until someone waits (no queue allocated on the uncontended path),
// an array queue with a head index (shift() is O(n) on big arrays), one
// record per call, and a trampoline so a million synchronous hand-offs run
// in a loop instead of a million nested frames.

const HELD = 1

class Queue {
  constructor(first) {
    this.items = [first]
    this.head = 0
  }
}

// Trampoline: hand-offs requested while one is running are run by the
// outermost loop once the current one returns.
const handOffs = []
let handOffHead = 0
let handingOff = false

function handOff(task) {
  if (handingOff) {
    handOffs.push(task)
    return
  }
  handingOff = true
  let failed = false
  let failure
  try {
    task.granted()
  } catch (err) {
    failed = true
    failure = err
  }
  while (handOffHead < handOffs.length) {
    const next = handOffs[handOffHead]
    handOffs[handOffHead++] = undefined
    try {
      next.granted()
    } catch (err) {
      // Every granted waiter still starts; the first error goes to the caller.
      if (!failed) {
        failed = true
        failure = err
      }
    }
  }
  handOffs.length = 0
  handOffHead = 0
  handingOff = false
  if (failed) throw failure
}

let capturedResolve = null
let capturedReject = null
function capture(resolve, reject) {
  capturedResolve = resolve
  capturedReject = reject
}

class Task {
  constructor(lock, key, keys, fn, cb) {
    this.lock = lock
    this.key = key
    /** sorted distinct keys of a multi-key call, else null */
    this.keys = keys
    /** how many of `keys` this task holds */
    this.held = 0
    this.fn = fn
    this.cb = cb
    this.resolve = null
    this.reject = null
    this.timer = null
    this.dead = false
    this.called = false
  }

  /** The key it waited on is now its own. */
  granted() {
    if (this.keys === null) this.run()
    else {
      this.held++
      if (this.takeKeys()) this.run()
    }
  }

  /** Takes the remaining keys in order; false once it had to queue. */
  takeKeys() {
    const busy = this.lock.busy
    const keys = this.keys
    while (this.held < keys.length) {
      const key = keys[this.held]
      const state = busy.get(key)
      if (state === undefined) {
        busy.set(key, HELD)
        this.held++
      } else {
        this.lock.enqueue(key, state, this)
        return false
      }
    }
    return true
  }

  run() {
    if (this.timer !== null) {
      clearTimeout(this.timer)
      this.timer = null
    }
    const fn = this.fn
    if (fn.length === 1) {
      try {
        fn((err, ret) => {
          if (!this.called) {
            this.called = true
            this.finish(err, ret)
          }
        })
      } catch (err) {
        if (!this.called) {
          this.called = true
          this.finish(err, undefined)
        }
      }
      return
    }
    let value
    try {
      value = fn()
    } catch (err) {
      Promise.reject(err).then(undefined, (e) => this.finish(e, undefined))
      return
    }
    Promise.resolve(value).then(
      (ret) => this.finish(undefined, ret),
      (err) => this.finish(err, undefined),
    )
  }

  finish(err, ret) {
    const lock = this.lock
    if (this.keys === null) {
      const next = lock.release(this.key)
      this.notify(err, ret)
      if (next !== null) handOff(next)
      return
    }
    const nexts = []
    for (let i = 0; i < this.held; i++) {
      const next = lock.release(this.keys[i])
      if (next !== null) nexts.push(next)
    }
    this.held = 0
    this.notify(err, ret)
    for (let i = 0; i < nexts.length; i++) handOff(nexts[i])
  }

  notify(err, ret) {
    if (this.resolve === null) {
      if (this.cb !== null) this.cb(err, ret)
    } else if (err) this.reject(err)
    else this.resolve(ret)
  }
}

function onTimeout(task) {
  task.timer = null
  // Left in its queue as a dead entry that release() skips: O(1) here.
  task.dead = true
  const lock = task.lock
  const waitingOn = task.keys === null ? task.key : task.keys[task.held]
  if (task.keys !== null && task.held > 0) {
    const nexts = []
    for (let i = 0; i < task.held; i++) {
      const next = lock.release(task.keys[i])
      if (next !== null) nexts.push(next)
    }
    task.held = 0
    for (let i = 0; i < nexts.length; i++) handOff(nexts[i])
  }
  task.notify(new Error('async-lock timed out in queue ' + waitingOn), undefined)
}

class FloorLock {
  constructor(opts) {
    /** key -> HELD, or the Queue of its waiters while it is held */
    this.busy = new Map()
    this.maxPending = opts && opts.maxPending !== undefined ? opts.maxPending : 1000
  }

  acquire(key, fn, cb, opts) {
    if (typeof fn !== 'function') throw new Error('You must pass a function to execute')
    let keys = null
    if (Array.isArray(key)) {
      keys = [...new Set(key)].sort()
      key = keys[0]
    }
    let task
    let promise
    if (typeof cb === 'function') task = new Task(this, key, keys, fn, cb)
    else {
      opts = cb
      task = new Task(this, key, keys, fn, null)
      promise = new Promise(capture)
      task.resolve = capturedResolve
      task.reject = capturedReject
    }
    const timeout = opts ? opts.timeout : 0
    if (keys === null) {
      const state = this.busy.get(key)
      if (state === undefined) {
        this.busy.set(key, HELD)
        task.run()
        return promise
      }
      if (state !== HELD && state.items.length - state.head >= this.maxPending) {
        task.notify(new Error('Too many pending tasks in queue ' + key), undefined)
        return promise
      }
      this.enqueue(key, state, task)
    } else if (task.takeKeys()) {
      task.run()
      return promise
    }
    if (timeout) task.timer = setTimeout(onTimeout, timeout, task)
    return promise
  }

  enqueue(key, state, task) {
    if (state === HELD) this.busy.set(key, new Queue(task))
    else state.items.push(task)
  }

  /** Frees `key`; returns the waiter it now belongs to, or null. */
  release(key) {
    const busy = this.busy
    const state = busy.get(key)
    if (state !== HELD) {
      while (state.head < state.items.length) {
        const items = state.items
        const task = items[state.head]
        items[state.head++] = undefined
        if (state.head === items.length) {
          items.length = 0
          state.head = 0
        } else if (state.head > 4096 && state.head * 2 > items.length) {
          // Keeps a queue that never empties from growing without bound.
          state.items = items.slice(state.head)
          state.head = 0
        }
        if (!task.dead) return task
      }
    }
    busy.delete(key)
    return null
  }
}

// A lock created with `permits` (the S workloads) is the semaphore floor.
const { FloorSemaphore } = require('./floor-semaphore')
const create = (opts) => (opts && opts.permits > 1 ? new FloorSemaphore(opts.permits) : new FloorLock(opts))

module.exports = { name: 'floor', create }
