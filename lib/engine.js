'use strict'
// The JS half of the isolate reach: interns keys to ids, decides the
// uncontended acquire and release on the key words the Rust table owns
// (0 idle, 1 held, 2 contended: see src/core/mod.rs, "Key words"), and calls
// Rust through the io buffer for everything else. It owns the waiter
// records (ticket -> record) and delivers grants without recursion.

const native = require('./native')
const { useIo, reserveIo } = require('./io')

const IDLE = 0
const HELD = 1

const { GRANTED, QUEUED, REJECTED } = native.OUTCOME
/** A remote space's answer: nothing decided yet, the caller starts the round trip (index.js startRemote). */
const REMOTE = 3

let io
useIo((view) => {
  io = view
})

const EMPTY = Object.freeze([])

/** Interned keys kept before the first sweep of idle ones. */
const MIN_SWEEP = 1024

/**
 * Writes an acquire request for several keys in the io layout both reaches
 * share (src/binding/mod.rs): owner, max pending (-1 = none), skip queue,
 * key count, keys. `io` must hold 4 + ids.length slots.
 */
function writeRequest(io, owner, maxPending, skipQueue, ids) {
  io[0] = owner
  io[1] = maxPending
  io[2] = skipQueue ? 1 : 0
  io[3] = ids.length
  for (let i = 0; i < ids.length; i++) io[4 + i] = ids[i]
}

/** writeRequest for one key, without an array on the hot path. */
function writeRequestOne(io, owner, maxPending, skipQueue, id) {
  io[0] = owner
  io[1] = maxPending
  io[2] = skipQueue ? 1 : 0
  io[3] = 1
  io[4] = id
}

// ---------------------------------------------------------------------------
// Grant delivery. A release that grants a waiter starts it at once, in the
// releaser's call, unless a delivery is already running further up the
// stack: then the waiter is appended here and started by that outer loop
// when the current one returns. That keeps async-lock's "the next waiter
// starts inside done()" while a million waiters that release synchronously
// run in a loop instead of a million nested frames.
const pending = []
let pendingHead = 0
let delivering = false

function deliver(waiters) {
  if (delivering) {
    for (let i = 0; i < waiters.length; i++) pending.push(waiters[i])
    return
  }
  delivering = true
  let failure = null
  let failed = false
  try {
    for (let i = 0; i < waiters.length; i++) {
      try {
        waiters[i].granted()
      } catch (err) {
        // A face that lets user code throw from a grant (alock) still gets
        // every other waiter started; the first error goes to the releaser.
        if (!failed) {
          failed = true
          failure = err
        }
      }
      // Grants made while that waiter ran (it released synchronously) were
      // parked in `pending`; start them before the next of ours, in order.
      while (pendingHead < pending.length) {
        const w = pending[pendingHead]
        pending[pendingHead++] = undefined
        try {
          w.granted()
        } catch (err) {
          if (!failed) {
            failed = true
            failure = err
          }
        }
      }
      if (pendingHead !== 0) {
        pending.length = 0
        pendingHead = 0
      }
    }
  } finally {
    if (pendingHead !== 0 || pending.length !== 0) {
      pending.length = 0
      pendingHead = 0
    }
    delivering = false
  }
  if (failed) throw failure
}

// Tables are freed when the lock that owns them is collected. Nothing can
// be waiting then: a waiter keeps its lock reachable through its record.
const tables = new FinalizationRegistry((id) => native.dropTable(id))

/** One lock space of the isolate reach. */
class Space {
  constructor() {
    this.table = native.createTable()
    this.words = new Int32Array(native.tableWords(this.table, 0))
    /** normalized key -> id, only for keys that are held or waited on */
    this.ids = new Map()
    /** id -> normalized key */
    this.names = []
    this.freeIds = []
    this.nextId = 0
    /** ticket -> waiter record */
    this.waiters = []
    this.rejectedIndex = -1
    this.blockingIndex = -1
    this.sweepAt = MIN_SWEEP
    tables.register(this, this.table)
  }

  intern(key) {
    let id = this.ids.get(key)
    if (id === undefined) {
      if (this.ids.size >= this.sweepAt) this.sweep()
      id = this.freeIds.length > 0 ? this.freeIds.pop() : this.nextId++
      if (id >= this.words.length) this.words = new Int32Array(native.tableWords(this.table, id + 1))
      this.ids.set(key, id)
      this.names[id] = key
    }
    return id
  }

  /**
   * Idle keys keep their id (a busy key is usually taken again soon, and a
   * Map insert plus delete per acquisition would double the cost of the
   * uncontended path); they are dropped in bulk once the map has doubled,
   * so memory stays proportional to the keys in use.
   */
  sweep() {
    const words = this.words
    for (const [key, id] of this.ids) {
      if (words[id] === IDLE) {
        this.ids.delete(key)
        this.names[id] = undefined
        this.freeIds.push(id)
      }
    }
    this.sweepAt = Math.max(MIN_SWEEP, 2 * this.ids.size)
  }

  isBusy(key) {
    const id = this.ids.get(key)
    return id !== undefined && this.words[id] !== IDLE
  }

  get busy() {
    const words = this.words
    for (const id of this.ids.values()) if (words[id] !== IDLE) return true
    return false
  }

  /**
   * Takes key `id` or queues `waiter` for it. Returns GRANTED, QUEUED
   * (waiter.ticket is set) or REJECTED. `maxPending` -1 means no limit.
   */
  acquireOne(id, maxPending, skipQueue, waiter) {
    const words = this.words
    if (words[id] === IDLE) {
      words[id] = HELD
      return GRANTED
    }
    writeRequestOne(io, this.table, maxPending, skipQueue, id)
    native.acquire()
    return this._acquired(waiter)
  }

  /** As acquireOne, for several distinct ids: all or nothing. */
  acquireMany(ids, maxPending, skipQueue, waiter) {
    const words = this.words
    let free = true
    for (let i = 0; i < ids.length; i++) {
      if (words[ids[i]] !== IDLE) {
        free = false
        break
      }
    }
    if (free) {
      for (let i = 0; i < ids.length; i++) words[ids[i]] = HELD
      return GRANTED
    }
    reserveIo(4 + ids.length)
    writeRequest(io, this.table, maxPending, skipQueue, ids)
    native.acquire()
    return this._acquired(waiter)
  }

  _acquired(waiter) {
    const outcome = io[0]
    if (outcome === QUEUED) {
      waiter.ticket = io[1]
      this.waiters[io[1]] = waiter
    } else if (outcome === REJECTED) {
      this.rejectedIndex = io[1]
    }
    return outcome
  }

  /**
   * Releases the keys of `ids` (an id or an array of them) that nobody waits
   * for, and returns the others (an id or an array) or null. async-lock
   * frees an idle key before it calls the caller's cb but hands a key with
   * waiters on only after, so inside cb a waiter about to start still
   * counts (maxPending, `queues[key].length`, a skipQueue acquire goes in
   * front of it): the face releases in these two steps around cb.
   */
  releaseIdle(ids) {
    const words = this.words
    if (typeof ids === 'number') {
      if (words[ids] === HELD) {
        words[ids] = IDLE
        return null
      }
      return ids
    }
    let contended = null
    for (let i = 0; i < ids.length; i++) {
      if (words[ids[i]] === HELD) words[ids[i]] = IDLE
      else (contended || (contended = [])).push(ids[i])
    }
    return contended
  }

  /** Releases key `id`; returns the waiters it was handed to (not started yet). */
  releaseOne(id) {
    if (this.words[id] === HELD) {
      this.words[id] = IDLE
      return EMPTY
    }
    io[0] = this.table
    io[1] = 1
    io[2] = id
    native.release()
    return this._grants(0)
  }

  releaseMany(ids) {
    const words = this.words
    reserveIo(4 + ids.length)
    let n = 2
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]
      if (words[id] === HELD) {
        words[id] = IDLE
      } else {
        io[n++] = id
      }
    }
    if (n === 2) return EMPTY
    io[0] = this.table
    io[1] = n - 2
    native.release()
    return this._grants(0)
  }

  /**
   * Takes a queued waiter out. Returns the waiters its leaving unblocked
   * (not started yet), or null if it was not waiting. Sets blockingIndex to
   * the position, in its keys, of the first key it was still waiting for.
   */
  cancel(waiter) {
    io[0] = this.table
    io[1] = waiter.ticket
    native.cancel()
    if (io[0] === 0) return null
    this.blockingIndex = io[1]
    this.waiters[waiter.ticket] = undefined
    waiter.ticket = -1
    return this._grants(2)
  }

  _grants(at) {
    const n = io[at]
    if (n === 0) return EMPTY
    const waiters = this.waiters
    const out = new Array(n)
    for (let i = 0; i < n; i++) {
      const ticket = io[at + 1 + i]
      out[i] = waiters[ticket]
      waiters[ticket] = undefined
      out[i].ticket = -1
    }
    return out
  }

  /** Live waiters per busy key, for async-lock's `queues` view. */
  snapshot() {
    const out = Object.create(null)
    for (const [key, id] of this.ids) {
      if (this.words[id] === IDLE) continue
      out[key] = new Array(this.words[id] === HELD ? 0 : native.waitingOn(this.table, id))
    }
    return out
  }
}

/**
 * The key id, or array of ids, of `names`. Both in-process spaces sweep idle
 * keys from inside intern(), and a key interned a moment ago for this same
 * request is idle until it is acquired: a sweep between two of its keys
 * would free the first one and hand its id to the second (two holders of
 * one key). So the sweep waits until the request's keys are all interned;
 * the next intern() catches up with it.
 */
function internAll(space, names) {
  if (names.length === 1) return space.intern(names[0])
  const sweepAt = space.sweepAt
  space.sweepAt = Infinity
  try {
    return names.map((name) => space.intern(name))
  } finally {
    space.sweepAt = sweepAt
  }
}

module.exports = { Space, deliver, writeRequest, writeRequestOne, GRANTED, QUEUED, REJECTED, REMOTE, EMPTY, internAll }
