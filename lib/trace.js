'use strict'
// What a lock lets you see: the diagnostics_channel channels every reach
// and face publish to (docs: README "Tracing and stats", index.d.ts), and
// the per-lock counters behind lock.stats(). lib/task.js and lib/lease.js
// call the hooks below; nothing here knows which reach it is on beyond the
// name it reports.
//
// Cost with nobody listening: the channels are looked up once, here; a call
// checks `hasSubscribers` once (traced()) and builds no context unless
// someone listens. Stats cost a few integer increments per call, and a
// grant that never waited records its wait without reading the clock.

const dc = require('node:diagnostics_channel')
const { performance } = require('node:perf_hooks')

// dc.tracingChannel arrived in Node 18.19 / 19.9: without it the two
// tracing channels are absent and only the plain ones publish.
const acquireChannel = typeof dc.tracingChannel === 'function' ? dc.tracingChannel('keyed-lock:acquire') : null
const lockChannel = typeof dc.tracingChannel === 'function' ? dc.tracingChannel('keyed-lock:lock') : null
const releaseChannel = dc.channel('keyed-lock:release')
const lostChannel = dc.channel('keyed-lock:lease:lost')

/** Whether a TracingChannel has any subscriber (Node 18 and 20 < 20.13 lack the combined getter). */
function tracingSubscribed(tc) {
  if (tc === null) return false
  const all = tc.hasSubscribers
  if (all !== undefined) return all
  return (
    tc.start.hasSubscribers ||
    tc.end.hasSubscribers ||
    tc.asyncStart.hasSubscribers ||
    tc.asyncEnd.hasSubscribers ||
    tc.error.hasSubscribers
  )
}

/** The once-per-call check: does anyone listen to what an acquire() (or lock(), `lease` true) would publish? */
function traced(lease) {
  return tracingSubscribed(lease ? lockChannel : acquireChannel) || releaseChannel.hasSubscribers || lostChannel.hasSubscribers
}

const now = () => performance.now()

/**
 * A waiter's queue time as a small integer: microseconds modulo 2^30
 * (about 17.9 minutes), never 0 (0 means "never queued"). A small integer
 * is stored in the waiter itself, where a float would cost a heap number
 * per queued waiter (W7 counts those bytes). Waits longer than 17.9
 * minutes are recorded modulo that.
 */
const MICROS_MASK = 0x3fffffff
function queuedAt() {
  return (clockMicros() & MICROS_MASK) || 1
}

// The wait clock: process.hrtime() in microseconds (exact below 2^53, and
// only ever used masked). performance.now() reads the same clock after a
// brand check of its receiver (a hasOwnProperty call), which cost about a
// tenth of a queued waiter's instructions in W3 (two readings per waiter).
const hrtime = process.hrtime
function clockMicros() {
  const t = hrtime()
  return t[0] * 1e6 + t[1] / 1000
}

/**
 * One traced operation: the context every event of it carries (the same
 * object, filled in as the operation goes) and the clock readings behind
 * waitMs / holdMs.
 */
class Trace {
  constructor(stats, keys, mode) {
    this.channel = mode === 'lease' ? lockChannel : acquireChannel
    this.ctx = {
      keys: Array.isArray(keys) ? keys.slice() : [keys],
      reach: stats.reach,
      mode,
      name: stats.name,
      waitMs: undefined,
      holdMs: undefined,
      outcome: undefined,
      token: undefined,
      error: undefined,
    }
    this.t0 = now()
    this.grantedAt = 0
    /** asyncEnd published: nothing more is said about this operation but a release */
    this.ended = false
  }

  publish(event) {
    const tc = this.channel
    if (tc !== null && tc[event].hasSubscribers) tc[event].publish(this.ctx)
  }

  start() {
    this.publish('start')
  }

  /** The call returned (its synchronous part is over). */
  end() {
    this.publish('end')
  }

  /** The keys were granted. */
  granted(token) {
    this.grantedAt = now()
    this.ctx.waitMs = this.grantedAt - this.t0
    this.ctx.token = token
    this.ctx.outcome = 'granted'
    this.publish('asyncStart')
  }

  /** The operation ended without a grant. */
  failed(outcome, error) {
    if (this.ended) return
    this.ended = true
    this.ctx.waitMs = now() - this.t0
    this.ctx.outcome = outcome
    this.ctx.error = error
    this.publish('error')
    this.publish('asyncEnd')
  }

  /**
   * fn settled / the lease was released: `error` is fn's failure, if any;
   * `gaveBack` false when nothing was held (a domainReentrant re-entry).
   */
  released(error, handedOff, gaveBack = true) {
    if (this.ended) return
    this.ended = true
    const ctx = this.ctx
    ctx.holdMs = now() - this.grantedAt
    if (error !== undefined && error !== null) {
      ctx.outcome = 'error'
      ctx.error = error
      this.publish('error')
    }
    if (gaveBack && releaseChannel.hasSubscribers) {
      releaseChannel.publish({
        keys: ctx.keys,
        reach: ctx.reach,
        mode: ctx.mode,
        name: ctx.name,
        token: ctx.token,
        holdMs: ctx.holdMs,
        handedOff,
      })
    }
    this.publish('asyncEnd')
  }

  /** A lease's lock was lost (Redis): `key` is the key found lost. */
  lost(key, token, cause) {
    this.ctx.outcome = 'lost'
    if (lostChannel.hasSubscribers) {
      const ctx = this.ctx
      lostChannel.publish({ keys: ctx.keys, key, token, reach: ctx.reach, name: ctx.name, cause })
    }
  }
}

// ---------------------------------------------------------------------------
// lock.stats(): counters and a wait-time histogram per AsyncLock.

/**
 * Wait-time histogram: log-linear over microseconds, two buckets per power
 * of two, 64 buckets in all (bucket 0: under 1 µs, counted apart as `free`: every grant
 * that never queued; the last: 2^31 µs, about 36 minutes, and beyond).
 * Fixed size whatever the traffic.
 */
const BUCKETS = 64

function bucketOf(micros) {
  if (!(micros >= 1)) return 0
  if (micros >= 2 ** 31) return BUCKETS - 1
  const e = 31 - Math.clz32(micros)
  // micros >= 1.5 * 2^e: from e = 1 on, the bit below the top one,
  // without the pow() call `2 ** e` costs (300 instructions a grant).
  const half = e === 0 ? (micros >= 1.5 ? 1 : 0) : (micros >>> (e - 1)) & 1
  const i = 1 + 2 * e + half
  return i < BUCKETS ? i : BUCKETS - 1
}

/** The upper bound of bucket `i` (exclusive), in milliseconds (0 for bucket 0). */
function bucketLimitMs(i) {
  if (i === 0) return 0
  const e = (i - 1) >> 1
  const upper = (i - 1) & 1 ? 2 ** (e + 1) : 1.5 * 2 ** e
  return upper / 1000
}

const DEFAULT_TOP = 10

class Stats {
  constructor(reach, name) {
    this.reach = reach
    this.name = name
    /** grants that never queued (their wait is 0, recorded without a clock) */
    this.free = 0
    /** releases of grants; holding = free + waited grants - released */
    this.released = 0
    this.timeouts = 0
    this.refusals = 0
    this.aborts = 0
    this.lost = 0
    this.errors = 0
    this.histogram = new Uint32Array(BUCKETS)
    this.maxWaitMs = 0
  }

  /** A grant; `since` is when the wait began (0: it never queued, and no clock is read). */
  grant(since) {
    if (since === 0) this.free++
    else this.waited(since)
  }

  /** A grant after a wait that began at `since` (queuedAt()). */
  waited(since) {
    const waited = (((clockMicros() & MICROS_MASK) - since) & MICROS_MASK) / 1000
    if (waited > this.maxWaitMs) this.maxWaitMs = waited
    // Never 0 (bucket 0 is `free`'s): a wait that read the clock waited.
    this.histogram[Math.max(1, bucketOf(Math.floor(waited * 1000)))]++
  }

  /** An operation that ended without a grant: 'timeout' | 'refused' | 'aborted' | 'error'. */
  failed(outcome) {
    if (outcome === 'timeout') this.timeouts++
    else if (outcome === 'refused') this.refusals++
    else if (outcome === 'aborted') this.aborts++
    else this.errors++
  }

  percentile(q, total) {
    const target = Math.ceil(total * q)
    let seen = this.free
    if (seen >= target) return 0
    const h = this.histogram
    for (let i = 1; i < BUCKETS; i++) {
      seen += h[i]
      if (seen >= target) return Math.min(bucketLimitMs(i), this.maxWaitMs)
    }
    return this.maxWaitMs
  }

  /** lock.stats(): `snapshot` is the space's `queues` view (this process's, on Redis). */
  read(snapshot, top) {
    let total = this.free
    for (let i = 1; i < BUCKETS; i++) total += this.histogram[i]
    const wait =
      total === 0
        ? { count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 }
        : {
            count: total,
            p50: this.percentile(0.5, total),
            p90: this.percentile(0.9, total),
            p99: this.percentile(0.99, total),
            p999: this.percentile(0.999, total),
            max: this.maxWaitMs,
          }
    const keys = []
    let waiting = 0
    for (const key of Reflect.ownKeys(snapshot)) {
      const waiters = snapshot[key].length
      waiting += waiters
      keys.push({ key, holders: 1, waiters })
    }
    const busyKeys = keys.length
    keys.sort((a, b) => b.waiters - a.waiters)
    if (keys.length > top) keys.length = top
    return {
      reach: this.reach,
      name: this.name,
      view: this.reach === 'redis' ? 'process' : this.reach,
      acquisitions: total,
      timeouts: this.timeouts,
      refusals: this.refusals,
      aborts: this.aborts,
      lost: this.lost,
      errors: this.errors,
      holding: total - this.released,
      busyKeys,
      waiting,
      wait,
      keys,
    }
  }
}

/** The reach a lock's options pick, as the channels and stats() name it (see openSpace). */
function reachOf(opts) {
  if (opts.redis !== undefined && opts.redis !== null) return 'redis'
  return opts.scope === 'process' ? 'process' : 'isolate'
}

module.exports = { traced, Trace, Stats, reachOf, queuedAt, DEFAULT_TOP, bucketOf, bucketLimitMs }
