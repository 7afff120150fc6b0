'use strict'
// async-mutex has no keyed lock, so this is the keyed wrapper a user would
// write: a Map of Mutex, a key's Mutex deleted once nobody holds or awaits
// it, async-lock's acquire(key | keys, fn, cb?, opts?) on top. Multi-key
// requests take their keys one by one in sorted order (the usual way to
// avoid deadlock without an all-or-nothing queue). `timeout` uses the
// library's own withTimeout, which releases a lock that arrives too late.
//
// A lock created with `permits` (the S workloads) is the same kind of
// wrapper over async-mutex's Semaphore: a Map of Semaphore(permits), one
// deleted once all its permits are back, acquire(key, fn, opts) is
// runExclusive(fn, weight) with `{ mode: 'exclusive' }` as every permit.
const { Mutex, Semaphore, withTimeout } = require('async-mutex')

class KeyedSemaphore {
  constructor(permits) {
    this.permits = permits
    this.semaphores = new Map()
  }

  acquire(key, fn, opts) {
    const weight = opts === undefined ? 1 : opts.mode === 'exclusive' ? this.permits : opts.weight || 1
    let semaphore = this.semaphores.get(key)
    if (semaphore === undefined) {
      semaphore = new Semaphore(this.permits)
      this.semaphores.set(key, semaphore)
    }
    return semaphore.runExclusive(fn, weight).finally(() => {
      // A waiter is dispatched inside release(), so every permit back means
      // nobody holds or awaits this key.
      if (semaphore.getValue() === this.permits && this.semaphores.get(key) === semaphore) this.semaphores.delete(key)
    })
  }
}

class KeyedMutex {
  constructor(opts) {
    this.mutexes = new Map()
    /** key -> how many calls await its mutex (async-mutex keeps no such count) */
    this.pending = new Map()
    this.maxPending = opts && opts.maxPending !== undefined ? opts.maxPending : Infinity
  }

  acquire(key, fn, cb, opts) {
    if (typeof cb !== 'function') {
      opts = cb
      cb = null
    }
    const run = Array.isArray(key) ? this.runMany(key, fn, opts) : this.runOne(key, fn, opts)
    if (cb === null) return run
    run.then((ret) => cb(undefined, ret), (err) => cb(err))
    return undefined
  }

  mutex(key) {
    let mutex = this.mutexes.get(key)
    if (mutex === undefined) {
      mutex = new Mutex()
      this.mutexes.set(key, mutex)
    }
    return mutex
  }

  /** Resolves to a function that releases `key` and forgets an idle mutex. */
  async lock(key, opts) {
    const mutex = this.mutex(key)
    const timeout = opts && opts.timeout
    let release
    if (this.maxPending === Infinity || !mutex.isLocked()) {
      release = await (timeout ? withTimeout(mutex, timeout) : mutex).acquire()
    } else {
      const pending = this.pending.get(key) || 0
      if (pending >= this.maxPending) throw new Error('Too many pending tasks in queue ' + key)
      this.pending.set(key, pending + 1)
      try {
        release = await (timeout ? withTimeout(mutex, timeout) : mutex).acquire()
      } finally {
        const left = this.pending.get(key) - 1
        if (left === 0) this.pending.delete(key)
        else this.pending.set(key, left)
      }
    }
    return () => {
      release()
      // A waiter is handed the mutex inside release(), so "unlocked" here
      // means nobody holds or awaits it.
      if (!mutex.isLocked() && this.mutexes.get(key) === mutex) this.mutexes.delete(key)
    }
  }

  async runOne(key, fn, opts) {
    const release = await this.lock(key, opts)
    try {
      return await call(fn)
    } finally {
      release()
    }
  }

  async runMany(keys, fn, opts) {
    const sorted = [...new Set(keys)].sort()
    const releases = []
    try {
      for (const key of sorted) releases.push(await this.lock(key, opts))
      return await call(fn)
    } finally {
      for (let i = releases.length - 1; i >= 0; i--) releases[i]()
    }
  }
}

/** Runs fn the async-lock way: callback style when it declares one argument. */
function call(fn) {
  if (fn.length !== 1) return fn()
  return new Promise((resolve, reject) => fn((err, ret) => (err ? reject(err) : resolve(ret))))
}

const create = (opts) => (opts && opts.permits > 1 ? new KeyedSemaphore(opts.permits) : new KeyedMutex(opts))

module.exports = { name: 'async-mutex', create }
