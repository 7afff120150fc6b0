'use strict'
// The process reach (`scope: 'process'`): a lock space shared by every thread
// of the process that opens the same name (src/process.rs has the guarantees).
// Implements the Space contract (./index.js). Differences from isolate.js
// inside:
// - key ids come from Rust (they must agree across threads); this thread
//   pins the ids it has interned and unpins idle ones in a sweep;
// - every decision goes through the space's mutex (there is no word a
//   thread may flip on its own), so there is no uncontended JS-only path;
// - grants made by other threads arrive through a ThreadsafeFunction that
//   calls `wake()`, which starts the waiters with deliver().
//   Grants this thread's own releases make come back synchronously, as in
//   the isolate reach.
// A space opened with `permits > 1` is a CountedProcessSpace (below): the
// same membership, key ids and wakes over the core's counted table
// (src/process/counted.rs).

const native = require('../native')
const { invalidArg } = require('../errors')
const { MAX_PERMITS } = require('../validate')
const { deliver, GRANTED, QUEUED, REJECTED, RELEASED, HANDOFF, EMPTY, internEach } = require('./index')
const { useIo, reserveIo, writeRequest, writeRequestOne, MIN_SWEEP, micros } = require('./io')

let io
useIo((view) => {
  io = view
})

/** name -> ProcessSpace of this thread: one member (and one TSFN) per name. */
const opened = new Map()

/**
 * A `permits` that is not the one the space named `name` was opened with
 * (`have`), on this thread or another: `given` is the option as passed.
 */
function permitsMismatch(name, have, given) {
  const limit = have === MAX_PERMITS ? 'Infinity' : have === 1 ? '1 or unset' : String(have)
  return invalidArg(
    'option "permits"',
    `${limit}, the permits the process space ${JSON.stringify(name)} was opened with (a space keeps its first limit for the life of the process)`,
    given,
  )
}

/** One process-wide lock space, as seen from this thread. */
class ProcessSpace {
  /**
   * The space named `name` for this thread (created on first use), with
   * `permits` per key (1: the mutex). A space opened with another limit, on
   * any thread, is a TypeError naming `permits` (`given`: the option as
   * passed, for the message), and nothing is joined.
   */
  static open(name, permits = 1, given = permits) {
    let space = opened.get(name)
    if (space === undefined) {
      try {
        space = permits === 1 ? new ProcessSpace(name, 1) : new CountedProcessSpace(name, permits)
      } catch (err) {
        if (err && err.code === 'KEYED_LOCK_PERMITS') throw permitsMismatch(name, native.processPermits(name), given)
        throw err
      }
      opened.set(name, space)
    } else if ((space.permits || 1) !== permits) {
      throw permitsMismatch(name, space.permits || 1, given)
    }
    return space
  }

  constructor(name, permits) {
    this.name = name
    this.member = native.processOpen(name, () => this.wake(), permits)
    /** normalized key -> shared id, for ids this thread has pinned */
    this.ids = new Map()
    /** id -> normalized key */
    this.names = []
    /** id -> holds + waits of this thread on it */
    this.local = []
    /** ticket -> waiter record */
    this.waiters = []
    /** ticket -> its key id or ids (to undo `local` on cancel) */
    this.ticketIds = []
    /** waiters of this thread; the TSFN is ref'd while it is non-zero */
    this.waiting = 0
    this.rejectedIndex = -1
    this.blockingIndex = -1
    /** releaseIdle's keys still to hand on, when it answers HANDOFF */
    this.contended = null
    this.sweepAt = MIN_SWEEP
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
      id = typeof key === 'symbol' ? native.processInternPrivate(this.member) : native.processIntern(this.member, key)
      this.ids.set(key, id)
      this.names[id] = key
      this.local[id] = 0
    }
    return id
  }

  internAll(names) {
    return internEach(this, names)
  }

  /** Unpins every key this thread neither holds nor waits on. */
  sweep() {
    for (const id of this.ids.values()) this.forget(id)
    this.sweepAt = Math.max(MIN_SWEEP, 2 * this.ids.size)
  }

  /** Unpins key `id` if this thread neither holds nor waits on it. */
  forget(id) {
    const key = this.names[id]
    if (key === undefined || this.local[id] !== 0) return
    this.ids.delete(key)
    this.names[id] = undefined
    native.processUnpin(this.member, id)
  }

  isBusy(key) {
    if (typeof key !== 'symbol') return native.processIsBusy(this.member, key)
    // A symbol is a key of this thread only.
    const id = this.ids.get(key)
    return id !== undefined && native.processIsBusyId(this.member, id)
  }

  get busy() {
    return native.processBusy(this.member)
  }

  acquireOne(id, maxPending, skipQueue, waiter) {
    writeRequestOne(io, this.member, maxPending, skipQueue, id)
    return this._acquire(waiter, id)
  }

  acquireMany(ids, maxPending, skipQueue, waiter) {
    reserveIo(4 + ids.length)
    writeRequest(io, this.member, maxPending, skipQueue, ids)
    return this._acquire(waiter, ids)
  }

  /** Sends the request written in io; `ids` is the request's id or array of ids. */
  _acquire(waiter, ids) {
    native.processAcquire()
    const outcome = io[0]
    if (outcome === REJECTED) {
      this.rejectedIndex = io[1]
      return outcome
    }
    if (typeof ids === 'number') this.local[ids]++
    else for (let i = 0; i < ids.length; i++) this.local[ids[i]]++
    if (outcome === QUEUED) this._queued(waiter, io[1], typeof ids === 'number' ? ids : ids.slice())
    return outcome
  }

  _queued(waiter, ticket, ids) {
    waiter.ticket = ticket
    this.waiters[ticket] = waiter
    this.ticketIds[ticket] = ids
    // Keep this thread alive while a grant may come from another thread.
    if (this.waiting++ === 0) native.processRef(this.member, true)
  }

  /**
   * Releases the keys of `ids` (an id or an array) that nobody waits for:
   * RELEASED, or HANDOFF with the others (an id or an array, still held) in
   * `contended`. Judged and done in one step under the space's mutex (see
   * IsolateSpace.releaseIdle).
   */
  releaseIdle(ids) {
    const many = typeof ids !== 'number'
    const n = many ? ids.length : 1
    reserveIo(4 + n)
    io[0] = this.member
    io[1] = n
    if (many) for (let i = 0; i < n; i++) io[2 + i] = ids[i]
    else io[2] = ids
    native.processReleaseIdle()
    const c = io[0]
    if (!many) {
      if (c !== 0) {
        this.contended = ids
        return HANDOFF
      }
      this.local[ids]--
      return RELEASED
    }
    if (c === 0) {
      for (let i = 0; i < n; i++) this.local[ids[i]]--
      return RELEASED
    }
    const contended = []
    for (let i = 0; i < c; i++) contended.push(io[1 + i])
    for (let i = 0; i < n; i++) if (!contended.includes(ids[i])) this.local[ids[i]]--
    this.contended = contended
    return HANDOFF
  }

  /** Releases key `id`; returns this thread's waiters it was handed to (not started yet). */
  releaseOne(id) {
    io[0] = this.member
    io[1] = 1
    io[2] = id
    native.processRelease()
    this.local[id]--
    return this._grants(0)
  }

  releaseMany(ids) {
    reserveIo(4 + ids.length)
    io[0] = this.member
    io[1] = ids.length
    for (let i = 0; i < ids.length; i++) io[2 + i] = ids[i]
    native.processRelease()
    for (let i = 0; i < ids.length; i++) this.local[ids[i]]--
    return this._grants(0)
  }

  /**
   * Takes a queued waiter out. Returns the waiters its leaving unblocked
   * (not started yet), or null if it was not waiting: then a grant made by
   * another thread is on its way and will start it.
   */
  cancel(waiter) {
    const ticket = waiter.ticket
    io[0] = this.member
    io[1] = ticket
    native.processCancel()
    if (io[0] === 0) return null
    this.blockingIndex = io[1]
    this.waiters[ticket] = undefined
    const ids = this.ticketIds[ticket]
    this.ticketIds[ticket] = undefined
    waiter.ticket = -1
    if (typeof ids === 'number') this.local[ids]--
    else for (let i = 0; i < ids.length; i++) this.local[ids[i]]--
    const granted = this._grants(2)
    this._settled(1)
    return granted
  }

  _grants(at) {
    const n = io[at]
    if (n === 0) return EMPTY
    const out = new Array(n)
    for (let i = 0; i < n; i++) out[i] = this._take(io[at + 1 + i])
    this._settled(n)
    return out
  }

  _take(ticket) {
    const w = this.waiters[ticket]
    this.waiters[ticket] = undefined
    this.ticketIds[ticket] = undefined
    w.ticket = -1
    return w
  }

  /** `n` waiters of this thread stopped waiting. */
  _settled(n) {
    this.waiting -= n
    if (this.waiting === 0) native.processRef(this.member, false)
  }

  /** Called through the TSFN: other threads granted some of our waiters. */
  wake() {
    const tickets = native.processTakeGrants(this.member)
    if (tickets.length === 0) return
    const granted = new Array(tickets.length)
    for (let i = 0; i < tickets.length; i++) granted[i] = this._take(tickets[i])
    this._settled(tickets.length)
    deliver(granted)
  }

  /** Live waiters per busy key (all threads), for async-lock's `queues` view. */
  snapshot() {
    const out = Object.create(null)
    for (const { id, name, waiting } of native.processSnapshot(this.member)) {
      // A symbol key is only visible on its own thread.
      const key = name !== undefined && name !== null ? name : this.names[id]
      if (key !== undefined) out[key] = new Array(waiting)
    }
    return out
  }

  /**
   * Fencing tokens: a key's next grant may be on another thread, which
   * cannot see this thread's last token. So the token is the clock's
   * microsecond and the grant is handed out only once the clock has moved
   * past it. Any release of this grant (by its holder or by the thread
   * ending) comes after that, and the key's next grant, on whatever thread,
   * reads the clock after the release (the space's mutex orders them): its
   * token is larger. Costs a spin of under a microsecond per grant; assumes
   * the OS's monotonic clock agrees across CPUs, as CLOCK_MONOTONIC,
   * mach_absolute_time and QPC do.
   */
  tokens(waiter, n) {
    const token = micros()
    while (micros() <= token) {
      // spin: see above
    }
    return new Array(n).fill(token)
  }

  /** A grant here is never lost: only its release (or its thread ending) gives the keys up. */
  watch() {}

  /** Holds nothing this thread could let go of early: the space stays usable. */
  close() {
    return Promise.resolve()
  }
}

/**
 * A counted request for the native calls: `n` keys, then their `n` weights
 * (src/binding/process_counted.rs). One per thread, grown as needed: a
 * typed array crosses in one step where a JS array crosses element by element.
 */
let request = new Uint32Array(64)

/** Outcome codes fit below this in processCountedAcquire's answer (value * 4 + outcome). */
const OUTCOME_SPAN = 4

/** Writes `waiter`'s request for `ids` (an id or an array) into `request`; returns its key count. */
function writeCounted(ids, waiter) {
  const n = typeof ids === 'number' ? 1 : ids.length
  if (2 * n > request.length) request = new Uint32Array(2 * 2 * n)
  if (n === 1) {
    request[0] = typeof ids === 'number' ? ids : ids[0]
    request[1] = weightAt(waiter, 0)
    return 1
  }
  for (let i = 0; i < n; i++) {
    request[i] = ids[i]
    request[n + i] = weightAt(waiter, i)
  }
  return n
}

/** The `waiter.weight` of a request's key `i` (see lib/spaces/counted.js). */
function weightAt(waiter, i) {
  const w = waiter.weight
  if (w === undefined) return 1
  return typeof w === 'number' ? w : w[i]
}

/**
 * A process-wide space of counted keys (`permits > 1`, docs/semaphores.md).
 * Rust decides every grant under the space's mutex, as for the mutex space;
 * what changes:
 * - requests and releases carry a weight per key (`waiter.weight`, as on
 *   the isolate reach), and releaseIdle's keys with waiters travel as
 *   [id, weight, ...] pairs so the hand-off after the caller's cb needs no
 *   waiter;
 * - calls take a Uint32Array request instead of the io buffer (one release
 *   may grant more waiters than the buffer's layouts hold);
 * - every grant comes with its fencing token, made in Rust under the mutex,
 *   because two shared holders granted at once on two threads could read
 *   the same microsecond: the token is kept on the waiter (`grantToken`)
 *   until tokens() reads it.
 */
class CountedProcessSpace extends ProcessSpace {
  constructor(name, permits) {
    super(name, permits)
    this.permits = permits
  }

  acquireOne(id, maxPending, skipQueue, waiter) {
    // One key, the common request: scalars cross cheaper than a typed array.
    return this._acquired(waiter, id, native.processCountedAcquireOne(this.member, maxPending, !!skipQueue, id, weightAt(waiter, 0)))
  }

  acquireMany(ids, maxPending, skipQueue, waiter) {
    const n = writeCounted(ids, waiter)
    return this._acquired(waiter, ids.slice(), native.processCountedAcquire(this.member, maxPending, !!skipQueue, n, request))
  }

  /**
   * Reads processCountedAcquire's answer (value * 4 + outcome); `ids` is
   * the request's id or its own array of ids (kept for cancel).
   */
  _acquired(waiter, ids, answer) {
    const outcome = answer % OUTCOME_SPAN
    const value = (answer - outcome) / OUTCOME_SPAN
    if (outcome === REJECTED) {
      this.rejectedIndex = value
      return outcome
    }
    if (typeof ids === 'number') this.local[ids]++
    else for (let i = 0; i < ids.length; i++) this.local[ids[i]]++
    if (outcome === GRANTED) waiter.grantToken = value
    else this._queued(waiter, value, ids)
    return outcome
  }

  /**
   * Gives back the weights of keys nobody waits for: RELEASED, or HANDOFF
   * with the others as [id, weight, ...] in `contended` (still held).
   */
  releaseIdle(ids, waiter) {
    if (typeof ids === 'number') {
      const weight = weightAt(waiter, 0)
      if (!native.processCountedReleaseIdleOne(this.member, ids, weight)) {
        this.local[ids]--
        return RELEASED
      }
      this.contended = [ids, weight]
      return HANDOFF
    }
    const contended = native.processCountedReleaseIdle(this.member, writeCounted(ids, waiter), request)
    for (let i = 0; i < ids.length; i++) this.local[ids[i]]--
    if (contended === null) return RELEASED
    // Still held: counted again until releaseMany gives them back.
    for (let i = 0; i < contended.length; i += 2) this.local[contended[i]]++
    this.contended = contended
    return HANDOFF
  }

  /** A weight-1 release of one key (the contract's releaseOne). */
  releaseOne(id) {
    return this.releaseMany([id, 1])
  }

  /** Releases [id, weight, ...] pairs; returns this thread's waiters they go to (not started yet). */
  releaseMany(pairs) {
    const n = pairs.length >> 1
    if (2 * n > request.length) request = new Uint32Array(2 * 2 * n)
    for (let i = 0; i < n; i++) {
      request[i] = pairs[2 * i]
      request[n + i] = pairs[2 * i + 1]
    }
    const grants = native.processCountedRelease(this.member, n, request)
    for (let i = 0; i < n; i++) this.local[pairs[2 * i]]--
    return grants === null ? EMPTY : this._countedGrants(grants, 0)
  }

  cancel(waiter) {
    const ticket = waiter.ticket
    const out = native.processCountedCancel(this.member, ticket)
    if (out[0] === 0) return null
    this.blockingIndex = out[1]
    this.waiters[ticket] = undefined
    const ids = this.ticketIds[ticket]
    this.ticketIds[ticket] = undefined
    waiter.ticket = -1
    if (typeof ids === 'number') this.local[ids]--
    else for (let i = 0; i < ids.length; i++) this.local[ids[i]]--
    const granted = this._countedGrants(out, 2)
    this._settled(1)
    return granted
  }

  /** [ticket, token, ...] from `at` → this thread's waiters, each with its token. */
  _countedGrants(pairs, at) {
    const n = (pairs.length - at) >> 1
    if (n === 0) return EMPTY
    const out = new Array(n)
    for (let i = 0; i < n; i++) {
      const w = (out[i] = this._take(pairs[at + 2 * i]))
      w.grantToken = pairs[at + 2 * i + 1]
    }
    this._settled(n)
    return out
  }

  /** Called through the process reach's wake path: other threads granted some of our waiters. */
  wake() {
    const granted = this._countedGrants(native.processCountedTakeGrants(this.member), 0)
    if (granted.length !== 0) deliver(granted)
  }

  /** Every grant's own token, made in Rust: strictly increasing per key across every thread's grants. */
  tokens(waiter, n) {
    return new Array(n).fill(waiter.grantToken)
  }
}

module.exports = { ProcessSpace, CountedProcessSpace }
