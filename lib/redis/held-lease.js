'use strict'
// The lease lifecycle both Redis facades share (keyed-lock/locky and
// keyed-lock/exclusive-lock): one try-lock in Redis taken with a ttl, renewed by
// the facade's own extend calls (or by keyed-lock's watchdog), and given up by
// release or found lost, with one clock-drift rule for when it is surely
// still ours. A facade keeps its own bookkeeping (which instance holds what,
// its events); everything that talks to Redis about a lease is here.

const { performance } = require('perf_hooks')

/**
 * Every keyed-lock Redis lock lives under one prefix, so a lock taken through
 * one face and one taken through another under the same name are the same
 * lock.
 */
const REDIS_PREFIX = 'keyed-lock'

/**
 * The client of this thread for `url` (shared and reference-counted: every
 * call needs its close()). Read at call time, not captured at load:
 * lib/redis/client.js loads the native Redis client, which a process that
 * only builds instances (or fails validation) never needs, and tests swap
 * the class to break the connection on purpose.
 */
const openClient = (url, opts = {}) => require('./client').RedisClient.open(url, { ...opts, prefix: REDIS_PREFIX })

/**
 * How long a lease set (or extended) by a request sent at `sent` is surely
 * still ours: its ttl less redlock's clock-drift allowance (1% + 2 ms), so
 * the holder gives up before Redis's own expiry, never after.
 */
const validUntil = (sent, ttl) => sent + ttl - Math.floor(ttl * 0.01) - 2

class HeldLease {
  /**
   * Takes `key` if it is free (or, with `force`, whoever holds it), without
   * waiting. Resolves the HeldLease, or null when somebody else holds it.
   * `watchdog`: let keyed-lock renew it every ttl/3 (otherwise it lives `ttl`
   * unless extended).
   */
  static async take(client, key, { ttl, owner, force = false, watchdog }) {
    const sent = performance.now()
    const result = await client.acquire([key], { ttl, wait: false, owner, force, watchdog })
    if (result.status !== 'granted') return null
    return new HeldLease(client, key, result.lease, ttl, sent)
  }

  constructor(client, key, grant, ttl, sent) {
    this.client = client
    /** the Redis lock name */
    this.key = key
    this.id = grant.id
    /** the fencing token Redis issued */
    this.token = grant.tokens[0]
    /** until when (performance.now()) the lease is surely still ours */
    this.validUntil = validUntil(sent, ttl)
    this.timer = null
    this.onDeadline = null
  }

  /** No renewal was confirmed in time: the lease may have ended in Redis. */
  get expired() {
    return performance.now() > this.validUntil
  }

  /**
   * Pushes the expiry to `ttl` ms from now. Resolves true (renewed: the
   * deadline moves, counted from when the request was sent), false (the
   * lease was lost: never revived); rejects when Redis did not answer (the
   * deadline stays where it was).
   */
  async extend(ttl) {
    const sent = performance.now()
    const extended = await this.client.extend(this.id, ttl)
    if (extended) {
      this.validUntil = validUntil(sent, ttl)
      if (this.timer !== null) this.#schedule()
    }
    return extended
  }

  /** Gives the lease up. Resolves true, or false when it had been lost already (nothing was touched). */
  release() {
    this.stop()
    return this.client.release(this.id)
  }

  /** `handler(cause)` runs once if keyed-lock's watchdog finds the lease gone or cannot confirm it. */
  onLost(handler) {
    this.client.onLost(this.id, handler)
  }

  /**
   * Calls `handler()` when the deadline passes unrenewed; a confirmed
   * extend() moves it. An extend still unanswered then (a stalled server)
   * does not hold it off. Unref'd: the lease ends in Redis whether or not
   * this process is still there.
   */
  watchDeadline(handler) {
    this.onDeadline = handler
    this.#schedule()
  }

  /** Stops watching the deadline. */
  stop() {
    clearTimeout(this.timer)
    this.timer = null
  }

  #schedule() {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.timer = null
      this.onDeadline()
    }, Math.max(0, this.validUntil - performance.now()))
    this.timer.unref()
  }
}

module.exports = { HeldLease, openClient, validUntil, REDIS_PREFIX }
