'use strict'
// The Space contract: what every reach does, written once. A face (index.js,
// alock.js) and the two waiter kinds (lib/task.js for acquire(), lib/lease.js
// for lock()) call only what is written here; each reach implements it in its
// own file of this folder:
//
//   isolate.js   one AsyncLock's own space (the default): a Rust table per lock,
//                uncontended acquire and release decided in JS on per-key words
//   process.js   `scope: 'process'`: one table per name shared by every worker
//                thread of the process, grants from other threads via a TSFN
//   redis.js     `redis: url`: queues and leases in Redis, shared by every
//                process; every decision is a round trip
//
// docs/architecture.md draws the layers; docs/compat.md lists every
// difference a user can observe between the reaches, with its test.
//
// ## Keys and ids
//
// `intern(key) -> id` gives the small integer id of a normalized key (a
// string or a symbol) in this space; `internAll(names) -> id | id[]` does it
// for a request (one id for one name, an array for several), and no key of
// the request is swept while the others are interned. A key the reach cannot
// represent is a TypeError naming it (a symbol on Redis), thrown by intern.
// An id is valid until the key is idle again; faces intern right before they
// acquire.
//
// ## Acquire
//
// `acquireOne(id, maxPending, skipQueue, waiter, timeout) -> outcome` and
// `acquireMany(ids, maxPending, skipQueue, waiter, timeout) -> outcome` (ids
// distinct: all or nothing). `maxPending` is -1 for no limit (see
// pendingForNative); `skipQueue` puts the waiter at the front (latest first);
// `timeout` is in ms, 0 or absent for none. The outcome is one of:
//
//   GRANTED   the waiter holds every key now (nothing was queued)
//   QUEUED    the waiter waits: `waiter.ticket` is its ticket until the wait ends.
//             The grant comes later through `waiter.granted()`, delivered by
//             deliver() (never recursively). A reach that decides every wait
//             where the queue lives (`timesWaits`) answers QUEUED to every
//             acquire, and its wait may also end with `waiter.denied()`.
//   REJECTED  a queue was full (maxPending); `space.rejectedIndex` is the
//             position, in the request, of the full key
//
// Try-acquire (take it or leave) is `maxPending` 0 on an in-process reach.
//
// ## The waiter (what a space calls back)
//
//   waiter.ticket              -1, or the space's ticket while the waiter is queued
//   waiter.granted()           it holds its keys now
//   waiter.denied(outcome, d)  (timesWaits reaches only) the wait ended
//                              without a grant: REJECTED (d = index of the full
//                              key), TIMED_OUT (d = index of the key still
//                              awaited) or FAILED (d = the Error, e.g. Redis
//                              unreachable, KEYED_LOCK_CLOSED)
//   waiter.released(result)    after releaseIdle() answered RELEASING: the
//                              release is done (true), the grant had been lost
//                              already (false), or it failed (an Error)
//
// A wait ends exactly once: granted() or denied(), never both.
//
// ## Release
//
// `releaseIdle(ids, waiter) -> RELEASED | HANDOFF | RELEASING` gives back the
// keys of a grant (`ids` as acquired) in async-lock's order: keys nobody
// waits for are free before the caller is told, keys with waiters are handed
// on after (so inside the caller's cb a waiter about to start still counts):
//
//   RELEASED   every key is free; tell the caller
//   HANDOFF    some keys have waiters: `space.contended` holds them (an id or
//              an array, still held); tell the caller, then handOff(space, them)
//   RELEASING  the release takes a round trip and hands the keys on where
//              the queue lives; `waiter.released(result)` comes when it is done
//
// `releaseOne(id) / releaseMany(ids) -> granted[]` release keys still held
// after a HANDOFF and return the waiters they go to (not started yet); a
// reach that never answers HANDOFF needs neither. handOff(space, ids) (below)
// calls them and starts whoever the keys go to; releaseKeys(space, ids,
// waiter) does releaseIdle and handOff at once.
//
// ## Cancel
//
// `cancel(waiter) -> granted[] | null` takes a queued waiter out. It returns
// the waiters its leaving unblocked (not started: the caller delivers them
// after settling its own waiter) and sets `space.blockingIndex` to the
// position of the first key it was still waiting for. `null`: the outcome of
// the wait is on its way (a grant from another thread; on a timesWaits reach,
// always) and will reach the waiter through granted() or denied().
//
// ## Questions and the rest
//
//   isBusy(key)         held or waited on (Redis: by any process, one round trip)
//   busy                any key of this space held or waited on (Redis: by this process)
//   snapshot()          async-lock's `queues` view: { key: Array(waiters) }
//   tokens(waiter, n)   the fencing tokens of waiter's grant, one per key, strictly
//                       increasing per key across every holder the reach can see
//   watch(waiter, lost) lost(cause) once if the grant is lost (only where leases can
//                       expire: Redis); a no-op elsewhere
//   close()             Promise<void>; lets go of what the space holds outside this
//                       thread. In-process: nothing, and the space stays usable.
//                       Redis: pending waits end with KEYED_LOCK_CLOSED, later calls
//                       refuse with it, and the last close of a shared connection
//                       releases its leases.
//   timesWaits          true where the reach ends waits itself (timeout and
//                       maxPending are decided where the queue lives, and a grant
//                       that races the timeout wins); the caller then arms no timer
//                       for `timeout`. false: `timeout` is ignored, the caller
//                       times the wait and calls cancel().
//   reentrant           whether domainReentrant can apply (false on Redis: a domain
//                       is a per-process thing and the holder is a lease in Redis)
//
// Errors: misuse is a TypeError naming the argument (lib/errors.js); a reach's
// own failures are Errors with a stable `err.code` (KEYED_LOCK_REDIS,
// KEYED_LOCK_CLOSED, ...). Expected outcomes (queued, full, timed out) are values,
// never errors.

const native = require('../native')
const { invalidArg } = require('../errors')
const { permitsOption } = require('../validate')

// The outcome codes are the core's one table (src/core/outcome.rs), read
// once by lib/native.js: acquire answers GRANTED, QUEUED or REJECTED, and
// denied() is told REJECTED or TIMED_OUT (the wait's timeout passed).
const { GRANTED, QUEUED, REJECTED, TIMED_OUT } = native.OUTCOME
/** denied(): the reach failed (the detail is the Error). JS only: no wire code. */
const FAILED = -1

// releaseIdle's answers: JS only (the in-process release calls answer in
// the io buffer, Redis through a promise), so no wire codes either.
const RELEASED = 0
const HANDOFF = 1
const RELEASING = 2

/** The native side's maxPending: -1 for no limit, at most i32::MAX. */
const pendingForNative = (n) => (n === Infinity ? -1 : Math.min(n, 0x7fffffff))

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

/** Starts granted waiters (calls `granted()` on each), without recursion. */
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

/** Releases keys that have waiters (releaseIdle's `contended`) and starts the waiters they go to. */
function handOff(space, ids) {
  const granted = typeof ids === 'number' ? space.releaseOne(ids) : space.releaseMany(ids)
  if (granted.length !== 0) deliver(granted)
}

/**
 * Gives a grant's keys back in one step (no caller to tell in between) and
 * starts whoever they go to. Returns true when that is done, false when it
 * takes a round trip: then `waiter.released(result)` tells when it is.
 */
function releaseKeys(space, ids, waiter) {
  const outcome = space.releaseIdle(ids, waiter)
  if (outcome === RELEASED) return true
  if (outcome === HANDOFF) {
    const contended = space.contended
    space.contended = null
    handOff(space, contended)
    return true
  }
  return false
}

/**
 * internAll() for the spaces that sweep idle keys from inside intern(): a
 * key interned a moment ago for this same request is idle until it is
 * acquired, so a sweep between two of its keys would free the first one
 * and hand its id to the second (two holders of one key). The sweep waits
 * until the request's keys are all interned; the next intern() catches up.
 */
function internEach(space, names) {
  if (names.length === 1) return space.intern(names[0])
  const sweepAt = space.sweepAt
  space.sweepAt = Infinity
  try {
    return names.map((name) => space.intern(name))
  } finally {
    space.sweepAt = sweepAt
  }
}

/**
 * The space an AsyncLock's options name: its own (scope 'isolate', the
 * default), the process-wide one named `name`, or the Redis one.
 */
function openSpace(opts) {
  const { scope, name } = opts
  // Counted keys (docs/semaphores.md): a reach without them refuses a limit
  // above 1, never silently a mutex.
  const permits = permitsOption(opts.permits)
  if (opts.redis !== undefined && opts.redis !== null) {
    if (scope !== undefined && scope !== 'redis') {
      throw invalidArg('option "scope"', "'redis' or unset when the redis option is given", scope)
    }
    const { RedisSpace } = require('./redis')
    return new RedisSpace(opts.redis, { name, prefix: opts.prefix, ttl: opts.ttl, tls: opts.tls, waitReplicas: opts.waitReplicas, permits })
  }
  if (scope === 'redis') throw invalidArg('option "redis"', "a Redis URL when scope is 'redis'", opts.redis)
  if (scope === undefined || scope === 'isolate') {
    if (permits === 1) return new IsolateSpace()
    const { CountedSpace } = require('./counted')
    return new CountedSpace(permits)
  }
  if (scope !== 'process') throw invalidArg('option "scope"', "'isolate', 'process' or 'redis'", scope)
  if (typeof name !== 'string' || name === '') {
    throw invalidArg('option "name"', "a non-empty string when scope is 'process'", name)
  }
  return require('./process').ProcessSpace.open(name, permits, opts.permits)
}

module.exports = {
  GRANTED,
  QUEUED,
  REJECTED,
  TIMED_OUT,
  FAILED,
  RELEASED,
  HANDOFF,
  RELEASING,
  EMPTY: Object.freeze([]),
  pendingForNative,
  deliver,
  handOff,
  releaseKeys,
  internEach,
  openSpace,
}

// Loaded with the contract (after its exports, which isolate.js uses): the
// isolate reach is every lock's default, and loading it loads the addon, so
// a missing binary fails at require('keyed-lock') with the loader's message.
const { IsolateSpace } = require('./isolate')
