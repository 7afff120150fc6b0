'use strict'
// Quorum mode of the Redis reach: `redis: { quorum: [url, url, url] }`, the
// Redlock algorithm over independent masters, each reached through keyed-lock's
// own per-master client (lib/redis/client.js RedisClient: its scripts, watchdog and
// cleanup of given-up requests).
//
// An attempt asks every master at once, in try mode (no queue: a queue per
// master could order two requests differently on different masters). The
// lock is granted when a majority granted it and the time left,
// `ttl - elapsed - drift` (drift: 1% of ttl + 2 ms, redlock's rule), is
// positive; otherwise every grant of the attempt is released and, until the
// acquisition's timeout, a new attempt follows after a random 50-150 ms.
// Each master's lease has its own watchdog; the lock is reported lost once
// fewer than a majority of them are still held. Release releases them all.
//
// What cannot hold across masters (docs: README "What exclusion each mode
// gives"): FIFO (attempts race, as redlock's do), the hand-off in the
// release (a waiter retries instead), and strictly increasing fencing
// tokens: a lease's token per name is the largest of its granting masters'
// tokens, which are server times in µs and increase across masters only as
// far as their clocks agree.

const { RedisClient } = require('./client')
const { quorumUnreachable } = require('../errors')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const RETRY_MIN_MS = 50
const RETRY_JITTER_MS = 100

/** `{ quorum: [...] }` of the `redis` option: the masters' URLs, or undefined. */
function quorumUrls(redis) {
  if (redis === null || typeof redis !== 'object' || Array.isArray(redis) || !('quorum' in redis)) return undefined
  return redis.quorum
}

class QuorumClient {
  /** One per-master client each (RedisClient.open: shared per thread, url and prefix). */
  constructor(urls, { prefix, tls } = {}) {
    this.members = []
    try {
      for (const url of urls) this.members.push(RedisClient.open(url, { prefix, tls }))
    } catch (err) {
      // A later URL refused: the clients already opened give their share back.
      for (const member of this.members) member.close().catch(() => {})
      throw err
    }
    this.majority = Math.floor(urls.length / 2) + 1
    this.prefix = prefix
    this.cluster = false
    this.leases = new Map()
    this.nextId = 0
    this.closed = false
  }

  /** Resolves like RedisClient.acquire: { status, lease: { id, owner, tokens } }. */
  async acquire(names, opts = {}) {
    const ttl = opts.ttl
    const owner = opts.owner === undefined ? '' : String(opts.owner)
    const deadline = opts.timeout > 0 ? Date.now() + opts.timeout : Infinity
    // A master that does not answer within this is counted as refusing.
    const attemptMs = Math.max(50, Math.min(1000, Math.floor(ttl / 10)))
    const signal = opts.signal
    let lastErrors = []
    for (;;) {
      if (signal !== undefined && signal.aborted) return { status: 'timeout', lease: null, index: 0, holder: null, pttl: -2 }
      const started = Date.now()
      const attempt = { granted: [], errors: [], lease: null, closed: false }
      await this._attempt(attempt, names, { ttl, timeout: attemptMs, wait: false, owner, watchdog: true, space: opts.space })
      const { granted, errors } = attempt
      const elapsed = Date.now() - started
      const validity = ttl - elapsed - (ttl / 100 + 2)
      if (granted.length >= this.majority && validity > 0) return this._granted(attempt, names, owner)
      attempt.closed = true
      // A minority (or a majority too late): give back what this attempt got.
      await Promise.allSettled(granted.map((g) => g.member.release(g.lease.id)))
      lastErrors = errors
      const pause = RETRY_MIN_MS + Math.random() * RETRY_JITTER_MS
      if (opts.wait === false || Date.now() + pause >= deadline) break
      await sleep(pause)
    }
    // Fewer than a majority could answer at all: that is not contention.
    if (this.members.length - lastErrors.length < this.majority) {
      throw quorumUnreachable(this.members.length - lastErrors.length, this.members.length, this.majority, lastErrors[0])
    }
    return { status: 'timeout', lease: null, index: 0, holder: null, pttl: -2 }
  }

  /**
   * Asks every master; settles as soon as a majority granted, or once
   * every master answered. A master answering after that: its grant joins
   * the lease if the lock was granted and is still held, else is released.
   */
  _attempt(attempt, names, opts) {
    return new Promise((resolve) => {
      let answered = 0
      const settle = () => {
        if (attempt.granted.length >= this.majority || answered === this.members.length) resolve()
      }
      this.members.forEach((member) => {
        member.acquire(names, opts).then(
          (r) => {
            answered++
            if (r.status === 'granted') this._late(attempt, { member, lease: r.lease })
            settle()
          },
          (err) => {
            answered++
            attempt.errors.push(err)
            settle()
          },
        )
      })
    })
  }

  /** A grant of `attempt`: counted while it runs, joined to its lease after, else released. */
  _late(attempt, part) {
    const entry = attempt.lease
    if (!attempt.closed && entry === null) {
      attempt.granted.push(part)
    } else if (entry !== null && this.leases.has(entry.id) && !entry.reported) {
      this._watch(entry, part)
    } else {
      part.member.release(part.lease.id).catch(() => {})
    }
  }

  _watch(entry, part) {
    entry.parts.push(part)
    entry.held++
    part.member.onLost(part.lease.id, (cause) => {
      entry.held--
      if (entry.held < this.majority && !entry.reported) {
        entry.reported = true
        if (entry.handler) entry.handler(cause)
      }
    })
  }

  _granted(attempt, names, owner) {
    const id = ++this.nextId
    const granted = attempt.granted
    const tokens = names.map((_, i) => Math.max(...granted.map((g) => g.lease.tokens[i])))
    const entry = { id, parts: [], held: 0, handler: null, reported: false }
    attempt.lease = entry
    this.leases.set(id, entry)
    for (const g of granted) this._watch(entry, g)
    return { status: 'granted', lease: { id, owner, tokens }, index: 0, holder: null, pttl: -2 }
  }

  onLost(id, handler) {
    const entry = this.leases.get(id)
    if (entry) entry.handler = handler
  }

  /** true when a majority of the masters released their part. */
  async release(id) {
    const entry = this.leases.get(id)
    if (entry === undefined) return false
    this.leases.delete(id)
    const settled = await Promise.allSettled(entry.parts.map((g) => g.member.release(g.lease.id)))
    return settled.filter((s) => s.status === 'fulfilled' && s.value === true).length >= this.majority
  }

  /** Held on a majority of the masters that answer (each answer is a synchronous round trip). */
  isBusy(name, space) {
    let busy = 0
    let answered = 0
    let error
    for (const m of this.members) {
      try {
        if (m.isBusy(name, space)) busy++
        answered++
      } catch (err) {
        error = err
      }
    }
    if (answered < this.majority) throw quorumUnreachable(answered, this.members.length, this.majority, error)
    return busy >= this.majority
  }

  async close() {
    if (this.closed) return
    this.closed = true
    await Promise.all(this.members.map((m) => m.close()))
  }
}

module.exports = { QuorumClient, quorumUrls }
