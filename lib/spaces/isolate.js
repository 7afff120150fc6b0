'use strict'
// The isolate reach (the default): one AsyncLock's own lock space. Implements
// the Space contract (./index.js). It interns keys to ids, decides the
// uncontended acquire and release on the key words the Rust table owns
// (0 idle, 1 held, 2 contended: see src/core/mod.rs, "Key words"), refuses
// a request over maxPending from the live-waiter counts Rust keeps beside
// the words (core::Words), and calls Rust through the io buffer for
// everything else. It owns the waiter
// records (ticket -> record); grants go out through deliver().

const native = require('../native')
const { GRANTED, QUEUED, REJECTED, RELEASED, HANDOFF, EMPTY, internEach } = require('./index')
const { useIo, reserveIo, writeRequest, writeRequestOne, MIN_SWEEP, micros } = require('./io')

const IDLE = 0
const HELD = 1

let io
useIo((view) => {
  io = view
})

// Tables are freed when the lock that owns them is collected. Nothing can
// be waiting then: a waiter keeps its lock reachable through its record.
const tables = new FinalizationRegistry((id) => native.dropTable(id))

let lastToken = 0

/** One lock space of the isolate reach. */
class IsolateSpace {
  constructor() {
    this.table = native.createTable()
    this.words = null
    /** live waiters per key id, kept by Rust; 0 unless the word is CONTENDED */
    this.pending = null
    this._view(0)
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
    /** releaseIdle's keys still to hand on, when it answers HANDOFF */
    this.contended = null
    this.sweepAt = MIN_SWEEP
    tables.register(this, this.table)
  }

  get timesWaits() {
    return false
  }

  get reentrant() {
    return true
  }

  intern(key) {
    let id = this.ids.get(key)
    if (id === undefined) {
      if (this.ids.size >= this.sweepAt) this.sweep()
      id = this.freeIds.length > 0 ? this.freeIds.pop() : this.nextId++
      if (id >= this.words.length) this._view(id + 1)
      this.ids.set(key, id)
      this.names[id] = key
    }
    return id
  }

  /** Fresh views of the table's words and counts, valid for ids below `min`. */
  _view(min) {
    const buffer = native.tableWords(this.table, min)
    const len = buffer.byteLength >> 3
    this.words = new Int32Array(buffer, 0, len)
    this.pending = new Int32Array(buffer, len << 2, len)
  }

  internAll(names) {
    return internEach(this, names)
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
   * No timeout here: the caller times the wait (timesWaits is false).
   */
  acquireOne(id, maxPending, skipQueue, waiter) {
    const words = this.words
    if (words[id] === IDLE) {
      words[id] = HELD
      return GRANTED
    }
    // The table's own rule (Table::acquire), without a crossing.
    if (maxPending !== -1 && this.pending[id] >= maxPending) {
      this.rejectedIndex = 0
      return REJECTED
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
    if (maxPending !== -1) {
      const pending = this.pending
      for (let i = 0; i < ids.length; i++) {
        if (words[ids[i]] !== IDLE && pending[ids[i]] >= maxPending) {
          this.rejectedIndex = i
          return REJECTED
        }
      }
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
   * for: RELEASED, or HANDOFF with the others (an id or an array) in
   * `contended`. async-lock frees an idle key before it calls the caller's
   * cb but hands a key with waiters on only after, so inside cb a waiter
   * about to start still counts (maxPending, `queues[key].length`, a
   * skipQueue acquire goes in front of it): the face releases in these two
   * steps around cb.
   */
  releaseIdle(ids) {
    const words = this.words
    if (typeof ids === 'number') {
      if (words[ids] === HELD) {
        words[ids] = IDLE
        return RELEASED
      }
      this.contended = ids
      return HANDOFF
    }
    let contended = null
    for (let i = 0; i < ids.length; i++) {
      if (words[ids[i]] === HELD) words[ids[i]] = IDLE
      else (contended || (contended = [])).push(ids[i])
    }
    if (contended === null) return RELEASED
    this.contended = contended
    return HANDOFF
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
      out[key] = new Array(this.pending[id])
    }
    return out
  }

  /**
   * Fencing tokens: a space is used by this thread alone, so a clock token
   * that strictly increases on this thread strictly increases per key.
   */
  tokens(waiter, n) {
    const now = micros()
    lastToken = now > lastToken ? now : lastToken + 1
    return new Array(n).fill(lastToken)
  }

  /** A grant here is never lost: only its release gives the keys up. */
  watch() {}

  /** Holds nothing outside this thread: the space stays usable. */
  close() {
    return Promise.resolve()
  }
}

module.exports = { IsolateSpace }
