'use strict'
// The isolate reach for a lock made with `permits: N > 1` (keyed weighted
// semaphores and read/write locks, docs/semaphores.md). Implements the Space
// contract (./index.js) over a counted Rust table (src/core/semaphore.rs).
// A lock with the default `permits: 1` never comes here: it stays on
// IsolateSpace and its words, unchanged.
//
// Key words: the number of permits out while nobody waits (0 idle), -1
// while waiters are queued (then only the table changes it). The uncontended
// acquire and release are decided here on the words, without crossing. A
// waiter's weight is `waiter.weight`: undefined (1 on every key), a number
// (the same on every key) or an array (one per key, in request order).
//
// The contended calls go through this thread's counted io buffer (layouts
// in src/binding/semaphore.rs), not the mutex's (./io.js): requests carry
// (key, weight) pairs, and one release may grant more waiters than it names
// keys.

const native = require('../native')
const { GRANTED, QUEUED, REJECTED, RELEASED, HANDOFF, EMPTY } = require('./index')
const { IsolateSpace } = require('./isolate')
const { MIN_SWEEP } = require('./io')

const CONTENDED = -1

const { semAcquireIo, semReleaseIo, semCancelIo, semTakeGrants } = native
let io = new Int32Array(native.semIoBuffer(0))

/** Makes the counted io buffer hold at least `slots` values (growing replaces it). */
function reserveIo(slots) {
  if (slots > io.length) io = new Int32Array(native.semIoBuffer(slots))
}

const tables = new FinalizationRegistry((id) => native.dropSemTable(id))

function weightAt(waiter, i) {
  const w = waiter === undefined || waiter === null ? undefined : waiter.weight
  if (w === undefined) return 1
  return typeof w === 'number' ? w : w[i]
}

/** One counted lock space of the isolate reach. */
class CountedSpace {
  constructor(permits) {
    this.permits = permits
    this.table = native.createSemTable(permits)
    this.words = new Int32Array(native.semWords(this.table, 0))
    this.ids = new Map()
    this.names = []
    this.freeIds = []
    this.nextId = 0
    this.waiters = []
    this.rejectedIndex = -1
    this.blockingIndex = -1
    /** releaseIdle's [id, weight, ...] still to hand on, when it answers HANDOFF */
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
      if (id >= this.words.length) this.words = new Int32Array(native.semWords(this.table, id + 1))
      this.ids.set(key, id)
      this.names[id] = key
    }
    return id
  }

  acquireOne(id, maxPending, skipQueue, waiter) {
    const k = weightAt(waiter, 0)
    const word = this.words[id]
    if (word >= 0 && word + k <= this.permits) {
      this.words[id] = word + k
      return GRANTED
    }
    io[0] = this.table
    io[1] = maxPending
    io[2] = skipQueue ? 1 : 0
    io[3] = 1
    io[4] = id
    io[5] = k
    semAcquireIo()
    return this._acquired(waiter)
  }

  acquireMany(ids, maxPending, skipQueue, waiter) {
    const words = this.words
    let free = true
    for (let i = 0; i < ids.length; i++) {
      const word = words[ids[i]]
      if (!(word >= 0 && word + weightAt(waiter, i) <= this.permits)) {
        free = false
        break
      }
    }
    if (free) {
      for (let i = 0; i < ids.length; i++) words[ids[i]] += weightAt(waiter, i)
      return GRANTED
    }
    reserveIo(4 + 2 * ids.length)
    io[0] = this.table
    io[1] = maxPending
    io[2] = skipQueue ? 1 : 0
    io[3] = ids.length
    for (let i = 0; i < ids.length; i++) {
      io[4 + 2 * i] = ids[i]
      io[5 + 2 * i] = weightAt(waiter, i)
    }
    semAcquireIo()
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
   * Gives back the permits of keys nobody waits for; the others go to
   * `contended` as [id, weight, ...] pairs (with their weights, since the
   * hand-off comes after the caller's cb, when `waiter` may be reused), or
   * as a bare id for one key of weight 1 (releaseOne: no array).
   */
  releaseIdle(ids, waiter) {
    const words = this.words
    if (typeof ids === 'number') {
      const k = weightAt(waiter, 0)
      if (words[ids] >= 0) {
        words[ids] -= k
        return RELEASED
      }
      this.contended = k === 1 ? ids : [ids, k]
      return HANDOFF
    }
    let contended = null
    const n = typeof ids === 'number' ? 1 : ids.length
    for (let i = 0; i < n; i++) {
      const id = typeof ids === 'number' ? ids : ids[i]
      const k = weightAt(waiter, i)
      if (words[id] >= 0) words[id] -= k
      else (contended || (contended = [])).push(id, k)
    }
    if (contended === null) return RELEASED
    this.contended = contended
    return HANDOFF
  }

  /** A weight-1 release of one key (the contract's releaseOne). */
  releaseOne(id) {
    if (this.words[id] >= 0) {
      this.words[id] -= 1
      return EMPTY
    }
    io[0] = this.table
    io[1] = 1
    io[2] = id
    io[3] = 1
    semReleaseIo()
    return this._grants(0)
  }

  /** Releases [id, weight, ...] pairs; returns the waiters they go to (not started yet). */
  releaseMany(pairs) {
    const words = this.words
    reserveIo(2 + pairs.length)
    let n = 0
    for (let i = 0; i < pairs.length; i += 2) {
      const id = pairs[i]
      const k = pairs[i + 1]
      if (words[id] >= 0) {
        words[id] -= k
      } else {
        io[2 + 2 * n] = id
        io[3 + 2 * n] = k
        n++
      }
    }
    if (n === 0) return EMPTY
    io[0] = this.table
    io[1] = n
    semReleaseIo()
    return this._grants(0)
  }

  cancel(waiter) {
    io[0] = this.table
    io[1] = waiter.ticket
    semCancelIo()
    if (io[0] === 0) return null
    this.blockingIndex = io[1]
    this.waiters[waiter.ticket] = undefined
    waiter.ticket = -1
    return this._grants(2)
  }

  /** The waiters of the grants the last call wrote at `at` (`g, ticket × g`). */
  _grants(at) {
    const n = io[at]
    if (n === 0) return EMPTY
    if (at + 1 + n > io.length) {
      // More grants than the buffer holds: Rust kept them until it grows.
      reserveIo(1 + n)
      semTakeGrants()
      at = 0
    }
    const waiters = this.waiters
    const out = new Array(n)
    for (let i = 0; i < n; i++) {
      const ticket = io[at + 1 + i]
      const w = waiters[ticket]
      waiters[ticket] = undefined
      w.ticket = -1
      out[i] = w
    }
    return out
  }

  snapshot() {
    const out = Object.create(null)
    for (const [key, id] of this.ids) {
      const word = this.words[id]
      if (word === 0) continue
      out[key] = new Array(word === CONTENDED ? native.semWaitingOn(this.table, id) : 0)
    }
    return out
  }
}

// Idle is word 0 on both kinds of table, so the bookkeeping that only asks
// "idle or not" is shared with the mutex space, as are tokens (one clock
// per thread: every grant, shared holders included, gets its own token).
for (const name of ['internAll', 'sweep', 'isBusy', 'tokens', 'watch', 'close']) {
  CountedSpace.prototype[name] = IsolateSpace.prototype[name]
}
Object.defineProperty(CountedSpace.prototype, 'busy', Object.getOwnPropertyDescriptor(IsolateSpace.prototype, 'busy'))

module.exports = { CountedSpace }
