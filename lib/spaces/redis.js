'use strict'
// The Redis reach (`AsyncLock({ redis })`): the keys of lock `name` under the
// client's prefix, shared with every process that uses them. Implements the
// Space contract (./index.js). Every decision takes a round trip, so:
// - acquire answers QUEUED every time, and the wait ends through the waiter,
//   as a contended grant does on the other reaches: granted() (through
//   deliver()) or denied(). Timeouts and maxPending are decided in Redis,
//   across processes (`timesWaits`), and a grant that races the timeout wins;
// - cancel() asks Redis to drop the wait and answers null: the wait's outcome
//   still comes (a grant that won the race is then passed on by the waiter);
// - releaseIdle answers RELEASING: the release script hands each key to its
//   next waiter in Redis, and waiter.released() follows its reply.
// Key ids are this process's own (names are what Redis sees); this process's
// holds and waits per id give `busy`, `queues` and the sweep of idle ids.
// With `permits` > 1 the keys are counted (docs/semaphores.md): the same
// protocol on a counted lock's own keys and scripts (src/redis/lua/sem_*.lua),
// each request with its weight per key (`waiter.weight`, as lib/spaces/counted.js
// reads it); the key's limit is kept in Redis, and a request naming another
// one is refused with a TypeError naming `permits`.

const { RedisClient, checkTtl, checkText } = require('../redis/client')
const redisOptions = require('../redis/options')
const { deliver, QUEUED, REJECTED, TIMED_OUT, FAILED, RELEASING, internEach } = require('./index')
const { MIN_SWEEP } = require('./io')
const { invalidArg, otherLimit, closedError } = require('../errors')

const noop = () => {}

/** A key as Redis names it: a symbol cannot be shared between processes; a lone surrogate has no UTF-8 form. */
function checkKey(key) {
  if (typeof key === 'symbol') {
    throw invalidArg('key', 'a string or a number on the Redis reach (a symbol cannot be shared between processes)', key)
  }
  return checkText(String(key), 'key')
}

/** Starts a waiter granted by a reply: an error its start throws is uncaught, as a throwing cb is in async-lock. */
function start(waiter) {
  try {
    deliver([waiter])
  } catch (err) {
    process.nextTick(() => {
      throw err
    })
  }
}

/** One weight per name of a request, from `waiter.weight` (unset: 1; a number: the same on every key). */
function weightsOf(waiter, n) {
  const w = waiter.weight
  if (w === undefined) return new Array(n).fill(1)
  return typeof w === 'number' ? new Array(n).fill(w) : w.slice()
}

class RedisSpace {
  constructor(url, { name, prefix, ttl, tls, waitReplicas, permits = 1 } = {}) {
    if (name !== undefined && typeof name !== 'string') throw invalidArg('option "name"', 'a string', name)
    /** the key's limit (docs/semaphores.md); 1: the mutex, on its own keys and scripts as before */
    this.permits = permits
    this.ttl = checkTtl(ttl, 'option "ttl"')
    this.waitReplicas = redisOptions.waitReplicasOption(waitReplicas)
    /** The lock space: a separate component of every key, never joined to it as text (docs/redis-keys.md). */
    this.space = name ? checkText(name, 'option "name"') : ''
    // Required here: lib/redis/quorum.js builds on RedisClient.
    const { QuorumClient, quorumUrls } = require('../redis/quorum')
    const quorum = quorumUrls(url)
    if (permits !== 1 && quorum !== undefined) {
      // Counts cannot be summed across independent masters the way a quorum
      // takes a majority of single holders.
      throw invalidArg('option "permits"', '1 or unset on a quorum of Redis masters (permits are counted in one Redis)', permits)
    }
    if (this.waitReplicas !== undefined && (Array.isArray(url) || quorum !== undefined)) {
      throw invalidArg('option "waitReplicas"', 'unset on a Redis Cluster or a quorum (WAIT is per node)', waitReplicas)
    }
    const connect = { prefix: prefix === undefined ? 'keyed-lock' : prefix, tls: redisOptions.tlsOptions(tls) }
    this.client =
      quorum !== undefined ? new QuorumClient(redisOptions.quorumOption(quorum), connect) : RedisClient.open(url, connect)
    /** normalized key -> id, while this process holds or waits for it (swept as in isolate.js) */
    this.ids = new Map()
    /** id -> normalized key */
    this.names = []
    this.freeIds = []
    this.nextId = 0
    /** id -> holds + waits of this lock in this process */
    this.local = []
    /** ids whose `local` is not 0 */
    this.active = 0
    this.sweepAt = MIN_SWEEP
    /** ticket -> the AbortController of that wait in Redis */
    this.waits = new Map()
    this.nextTicket = 0
    /** waiter -> its grant, { id: lease id, tokens } */
    this.grants = new Map()
    this.rejectedIndex = -1
    this.blockingIndex = -1
    this.contended = null
    this.closed = false
    this.closing = null
  }

  get timesWaits() {
    return true
  }

  get reentrant() {
    return false
  }

  intern(key) {
    let id = this.ids.get(key)
    if (id === undefined) {
      checkKey(key)
      if (this.ids.size >= this.sweepAt) this.sweep()
      id = this.freeIds.length > 0 ? this.freeIds.pop() : this.nextId++
      this.ids.set(key, id)
      this.names[id] = key
      this.local[id] = 0
    }
    return id
  }

  internAll(names) {
    return internEach(this, names)
  }

  /** Drops the ids of keys this process neither holds nor waits for. */
  sweep() {
    for (const [key, id] of this.ids) {
      if (this.local[id] === 0) {
        this.ids.delete(key)
        this.names[id] = undefined
        this.freeIds.push(id)
      }
    }
    this.sweepAt = Math.max(MIN_SWEEP, 2 * this.ids.size)
  }

  _track(ids, delta) {
    if (typeof ids === 'number') this._count(ids, delta)
    else for (let i = 0; i < ids.length; i++) this._count(ids[i], delta)
  }

  _count(id, delta) {
    const before = this.local[id]
    const after = before + delta
    this.local[id] = after
    if (before === 0) this.active++
    else if (after === 0) this.active--
  }

  acquireOne(id, maxPending, skipQueue, waiter, timeout) {
    return this._request(id, [this.names[id]], maxPending, skipQueue, waiter, timeout)
  }

  acquireMany(ids, maxPending, skipQueue, waiter, timeout) {
    const names = ids.map((id) => this.names[id])
    return this._request(ids.slice(), names, maxPending, skipQueue, waiter, timeout)
  }

  /** Starts the wait in Redis (synchronously, so calls reach Redis in call order); always QUEUED. */
  _request(ids, names, maxPending, skipQueue, waiter, timeout) {
    const ticket = ++this.nextTicket
    waiter.ticket = ticket
    this._track(ids, 1)
    if (this.closed) {
      Promise.resolve().then(() => this._ended(waiter, ticket, ids, closedError()))
      return QUEUED
    }
    const controller = new AbortController()
    this.waits.set(ticket, controller)
    const opts = { ttl: this.ttl, timeout: timeout || 0, maxPending, skipQueue, signal: controller.signal, space: this.space, waitReplicas: this.waitReplicas }
    if (this.permits !== 1) {
      opts.permits = this.permits
      opts.weights = weightsOf(waiter, names.length)
    }
    this.client
      .acquire(names, opts)
      .then(
        (r) => this._ended(waiter, ticket, ids, r),
        (err) => this._ended(waiter, ticket, ids, err),
      )
    return QUEUED
  }

  /** The wait of `waiter` (ticket `ticket`) ended with `r`, a reply or an Error. */
  _ended(waiter, ticket, ids, r) {
    this.waits.delete(ticket)
    if (waiter.ticket === ticket) waiter.ticket = -1
    if (!(r instanceof Error) && r.status === 'granted') {
      if (!this.closed) {
        this.grants.set(waiter, r.lease)
        start(waiter)
        return
      }
      // Granted to a lock closed meanwhile: nobody will use it, pass it on.
      this.client.release(r.lease.id).catch(noop)
    }
    this._track(ids, -1)
    if (this.closed) waiter.denied(FAILED, closedError())
    else if (r instanceof Error) waiter.denied(FAILED, r)
    else if (r.status === 'rejected' && r.permits !== undefined) {
      const index = Math.max(0, r.index)
      waiter.denied(FAILED, otherLimit(this._nameAt(ids, index), r.permits, this.permits))
    } else if (r.status === 'rejected') waiter.denied(REJECTED, Math.max(0, r.index))
    else waiter.denied(TIMED_OUT, 0)
  }

  /** The key at position `index` of a request's ids. */
  _nameAt(ids, index) {
    return this.names[typeof ids === 'number' ? ids : ids[index]]
  }

  /** Asks Redis to drop the wait; its outcome still comes (see the file comment). */
  cancel(waiter) {
    const controller = this.waits.get(waiter.ticket)
    if (controller !== undefined) controller.abort()
    return null
  }

  /**
   * Releases a grant's lease: RELEASING, then `waiter.released()` with true
   * once Redis has it, false if the lease had been lost already (the keys
   * went on without it), or the Error (the watchdog has stopped, so the
   * lease runs out within its ttl and passes on then).
   */
  releaseIdle(ids, waiter) {
    this._track(ids, -1)
    const grant = this.grants.get(waiter)
    if (grant === undefined) {
      Promise.resolve(false).then((r) => waiter.released(r))
      return RELEASING
    }
    this.grants.delete(waiter)
    this.client.release(grant.id).then(
      (r) => waiter.released(r),
      (err) => waiter.released(err),
    )
    return RELEASING
  }

  isBusy(key) {
    if (this.closed) throw closedError()
    return this.client.isBusy(checkKey(key), this.space, this.permits !== 1)
  }

  /** Whether this process holds or waits for any key of this lock. */
  get busy() {
    return this.active !== 0
  }

  /** async-lock's `queues`, for this process's holds and waits. */
  snapshot() {
    const out = Object.create(null)
    for (const [key, id] of this.ids) {
      const n = this.local[id]
      if (n > 0) out[key] = new Array(n - 1)
    }
    return out
  }

  /** The tokens Redis issued with the grant, one per key. */
  tokens(waiter) {
    return this.grants.get(waiter).tokens
  }

  /** A lease in Redis can be lost (expired, deleted): `lost(cause)` once if the watchdog finds it so. */
  watch(waiter, lost) {
    const grant = this.grants.get(waiter)
    if (grant !== undefined) this.client.onLost(grant.id, lost)
  }

  /**
   * Ends this lock's pending waits with KEYED_LOCK_CLOSED and refuses every
   * later call; gives up its share of the connection (the last share
   * releases the leases still held and closes it).
   */
  close() {
    if (this.closing !== null) return this.closing
    this.closed = true
    for (const controller of this.waits.values()) controller.abort()
    this.closing = this.client.close().then(noop)
    return this.closing
  }
}

module.exports = { RedisSpace }
