'use strict'
// The fast-locky 1.0.0 face (lemonde/locky's batch fork) over keyed-lock's
// Redis client: the same constructor options, batch methods, return values,
// events and error flow, and the same lock names. What changed is what it
// does to Redis. Every lock is a lease with a TTL (fast-locky set none);
// unlock and extend act only on leases this instance holds (fast-locky
// deleted or extended whoever held the key); extend's TTL is milliseconds
// (fast-locky sent it as seconds); and a lease this instance held and lost
// is reported once, as 'expire', by this instance — there is no poller.
// docs/compat.md lists every kept and fixed behaviour with its test.

const { EventEmitter } = require('events')
const { lockyConnection } = require('./lib/redis/url')
const { HeldLease, openClient } = require('./lib/redis/held-lease')
const { invalidArg, closedError, messages } = require('./lib/errors')
const { ttlOption: leaseTtl, oneHolderOnly } = require('./lib/validate')

// With `ttl: null` fast-locky's locks never expired. Here they are leases of
// this length that keyed-lock's watchdog renews (every third of it) while the
// process runs, so a crashed holder frees its locks within this time.
const DEFAULT_LEASE_TTL_MS = 30000

const noop = () => {}

// lodash's `_.get(options, key, fallback)`: the fallback only for undefined.
const option = (options, key, fallback) =>
  options === null || options === undefined || options[key] === undefined ? fallback : options[key]

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** fast-locky's key names: `_.compact([name, 'lock', 'resource', resource]).join(':')`. */
class Formatter {
  constructor(name) {
    this.name = name
  }

  resourceToLock(resource) {
    return [this.name, 'lock', 'resource', resource].filter(Boolean).join(':')
  }

  // fast-locky built this regex from `name` unescaped; escaped here so a
  // name like 'a.b' matches only itself.
  lockToResource(lock) {
    const prefix = [this.name, 'lock', 'resource'].filter(Boolean).join(':')
    return lock.replace(new RegExp(`${escapeRegExp(prefix)}:`, 'mg'), '')
  }

  formatSetName() {
    return [this.name, 'lock', 'currents'].filter(Boolean).join(':')
  }
}

/**
 * null, undefined and 0 mean "no ttl" (fast-locky's `!this.ttl`); else
 * milliseconds, within keyed-lock's lease bounds (lib/errors.js TTL_MIN_MS..TTL_MAX_MS).
 */
function ttlOption(ttl) {
  if (!ttl) return 0
  const expected = 'a number of milliseconds (null or 0: locks without an expiry)'
  if (typeof ttl === 'string' && ttl.trim() !== '') {
    const n = Number(ttl)
    if (!(n > 0) || !Number.isFinite(n)) throw invalidArg('option "ttl"', expected, ttl)
    return leaseTtl('option "ttl"', n, expected)
  }
  return leaseTtl('option "ttl"', ttl, expected)
}

function leaseTtlOption(value) {
  if (value === undefined) return DEFAULT_LEASE_TTL_MS
  return leaseTtl('option "leaseTtl"', value, 'a positive number of milliseconds')
}

function arrayArg(value, name) {
  if (Array.isArray(value)) return value
  throw invalidArg(`argument "${name}"`, 'an array', value)
}

class Locky extends EventEmitter {
  #client
  #userClient
  #ttl
  #leaseTtl
  #leases = new Map() // lock name → the lease this instance holds on it
  #inflight = new Set()
  #closing = null

  /**
   * @param {object} [options]
   * @param {Function|string|object} [options.redis] where Redis is (see docs)
   * @param {number|null} [options.ttl] lock TTL in milliseconds; null: renewed while the process runs
   * @param {string} [options.name] key namespace
   * @param {string} [options.set] name of the set that tracks current locks
   * @param {number} [options.leaseTtl] keyed-lock: the lease length when ttl is null (30 s)
   */
  constructor(options) {
    super()
    // One locker per resource: a Locky is no semaphore (docs/compat.md).
    oneHolderOnly('Locky', options)
    const { url, client, tls } = lockyConnection(option(options, 'redis'))
    this.formatter = new Formatter(option(options, 'name'))
    this.ttl = option(options, 'ttl', null)
    this.#ttl = ttlOption(this.ttl)
    this.#leaseTtl = leaseTtlOption(option(options, 'leaseTtl'))
    this.set = option(options, 'set', this.formatter.formatSetName())
    this.locks = {}
    this.#userClient = client
    this.#client = openClient(url, { tls })
    this.redis = { url, client: this.#client }
    // fast-locky's poller handle; no poller runs (see the class comment).
    this.expirelocksInterval = null
  }

  /**
   * Locks each `{resource, locker}` not already locked (with `force`, even
   * if it is). Resolves `true`; emits 'lock'(resource, locker) per lock
   * taken, in input order, before resolving.
   */
  lock(collection, force) {
    const items = arrayArg(collection, 'collection')
    for (const item of items) {
      if (item === null || typeof item !== 'object') throw invalidArg('argument "collection"', 'an array of {resource, locker}', item)
      oneHolderOnly('Locky', item)
    }
    return this.#run(async () => {
      // Items naming one lock go one after another, in input order, as
      // fast-locky's SETNXs did inside its MULTI: the first one wins.
      const chains = new Map()
      const attempts = items.map(({ resource, locker }) => {
        const key = this.formatter.resourceToLock(resource)
        const previous = chains.get(key) ?? Promise.resolve()
        const attempt = previous.then(() => this.#acquireOne(key, resource, locker, Boolean(force)))
        chains.set(key, attempt.catch(noop))
        return attempt
      })
      const settled = await Promise.allSettled(attempts)
      const failure = settled.find((s) => s.status === 'rejected')
      if (failure) {
        // fast-locky's EXEC applied all or nothing: give back what this call took.
        const taken = settled.filter((s) => s.status === 'fulfilled' && s.value !== null).map((s) => s.value)
        await Promise.allSettled(taken.map((entry) => this.#giveBack(entry)))
        throw failure.reason
      }
      const taken = []
      settled.forEach((s, i) => {
        if (s.value !== null) taken.push([items[i], s.value])
      })
      if (taken.length !== 0) {
        try {
          await this.#client.command(['SADD', this.set, ...new Set(taken.map(([, e]) => e.key))])
        } catch (err) {
          await Promise.allSettled(taken.map(([, entry]) => this.#giveBack(entry)))
          throw err
        }
      }
      for (const [{ resource, locker }] of taken) this.emit('lock', resource, locker)
      return true
    })
  }

  /**
   * Releases the locks among `resources` that this instance holds (another
   * holder's lock is never touched). Resolves `true`; emits
   * 'unlock'(resource) per lock released, 'expire'(resource) per lock that
   * turns out to have been lost meanwhile.
   */
  unlock(resources) {
    const list = arrayArg(resources, 'resources')
    return this.#run(async () => {
      const jobs = this.#held(list).map(async ({ resource, entry }) => {
        this.#forget(entry)
        try {
          return { resource, entry, released: await entry.release() }
        } catch (err) {
          // Unknown outcome: keep the lease, so a later unlock can retry and
          // its loss is still reported.
          this.#adopt(entry)
          throw err
        }
      })
      const settled = await Promise.allSettled(jobs)
      const done = settled.filter((s) => s.status === 'fulfilled').map((s) => s.value)
      if (done.length !== 0) await this.#untrack(done.map(({ entry }) => entry.key))
      for (const { resource, entry, released } of done) {
        if (released) this.emit('unlock', resource)
        else this.#emitExpire(entry)
      }
      const failure = settled.find((s) => s.status === 'rejected')
      if (failure) throw failure.reason
      return true
    })
  }

  /**
   * Pushes the expiry of the locks among `resources` that this instance
   * holds to `ttl` milliseconds from now. Without a ttl it does nothing and
   * returns undefined (synchronously), as fast-locky did. Resolves `true`;
   * emits 'extend'(resource) per lock extended, 'expire'(resource) per lock
   * found lost.
   */
  extend(resources) {
    if (!this.#ttl) return undefined
    const list = arrayArg(resources, 'resources')
    return this.#run(async () => {
      const outcomes = await Promise.all(
        this.#held(list).map(async ({ resource, entry }) => {
          try {
            // A confirmed extend moves the lease's deadline (held-lease.js).
            return { resource, entry, extended: await entry.extend(this.#ttl) }
          } catch (error) {
            return { resource, entry, error }
          }
        }),
      )
      for (const { resource, entry, extended, error } of outcomes) {
        if (this.#leases.get(entry.key) !== entry) continue
        if (error) {
          // Unanswered: the lease keeps its old deadline.
        } else if (extended) {
          this.emit('extend', resource)
        } else {
          this.#lost(entry)
        }
      }
      const failed = outcomes.find((o) => o.error)
      if (failed) throw failed.error
      return true
    })
  }

  /** upstream locky's name for extend; also takes a single resource. */
  refresh(resources) {
    return this.extend(Array.isArray(resources) ? resources : [resources])
  }

  /** Resolves the locker (a string) of each resource, or null, in input order. */
  getLockers(resources) {
    const list = arrayArg(resources, 'resources')
    return this.#run(() =>
      Promise.all(
        list.map((resource) => this.#client.inspect(this.formatter.resourceToLock(resource)).then((found) => (found ? found.owner : null))),
      ),
    )
  }

  /** upstream locky's name: a single resource gives a single locker, an array an array. */
  getLocker(resources) {
    if (Array.isArray(resources)) return this.getLockers(resources)
    return this.getLockers([resources]).then((lockers) => (Array.isArray(lockers) ? lockers[0] : lockers))
  }

  /**
   * The names (`[name:]lock:resource:<id>`) of the locks currently held, by
   * any instance sharing the tracking set. Members whose lease is gone (a
   * crashed holder's) are pruned from the set on the way.
   */
  getLocks() {
    return this.#run(async () => {
      const members = (await this.#client.command(['SMEMBERS', this.set])) ?? []
      const found = await Promise.all(members.map((name) => this.#client.inspect(name)))
      const gone = members.filter((_, i) => !found[i])
      if (gone.length !== 0) await this.#client.command(['SREM', this.set, ...gone])
      return members.filter((_, i) => found[i])
    })
  }

  /**
   * Waits for calls in flight, gives back the locks this instance still
   * holds (no events), closes the connection, and quits the client a
   * `redis` function returned, as fast-locky did. Resolves quit's result,
   * else 'OK'.
   */
  close() {
    if (this.#closing !== null) return this.#closing
    this.#closing = (async () => {
      await Promise.allSettled([...this.#inflight])
      const entries = [...this.#leases.values()]
      for (const entry of entries) this.#forget(entry)
      await Promise.allSettled(entries.map((entry) => entry.release()))
      if (entries.length !== 0) await this.#untrack(entries.map((entry) => entry.key)).catch(noop)
      await this.#client.close()
      const user = this.#userClient
      if (user !== null && typeof user.quit === 'function') return user.quit()
      return 'OK'
    })()
    return this.#closing
  }

  /** fast-locky's error funnel: every failed call ends here. */
  error(err) {
    this.emit('error', err)
  }

  // fast-locky's error flow, kept: with an 'error' listener a failed call
  // resolves undefined; without one, emit throws and the call rejects with
  // the original error. Nothing else is left to reject unobserved.
  #run(fn) {
    let work
    try {
      work = this.#closing !== null ? Promise.reject(closedError(messages.lockyClosed)) : Promise.resolve(fn())
    } catch (err) {
      work = Promise.reject(err)
    }
    this.#inflight.add(work)
    work.then(
      () => this.#inflight.delete(work),
      () => this.#inflight.delete(work),
    )
    return work.catch((err) => this.error(err))
  }

  async #acquireOne(key, resource, locker, force) {
    const entry = await HeldLease.take(this.#client, key, {
      ttl: this.#ttl || this.#leaseTtl,
      owner: String(locker),
      force,
      // With a ttl the lock lives that long unless extend() is called (the
      // API's contract); without one, keyed-lock renews it.
      watchdog: !this.#ttl,
    })
    if (entry === null) return null
    this.#adopt(entry)
    entry.onLost(() => this.#lost(entry))
    return entry
  }

  /** Resources → the distinct leases this instance holds on them, in input order. */
  #held(resources) {
    const seen = new Set()
    const held = []
    for (const resource of resources) {
      const key = this.formatter.resourceToLock(resource)
      if (seen.has(key)) continue
      seen.add(key)
      const entry = this.#leases.get(key)
      if (entry) held.push({ resource, entry })
    }
    return held
  }

  #adopt(entry) {
    const previous = this.#leases.get(entry.key)
    if (previous === entry) return
    if (previous) {
      // Our own lock, taken over by our own forced lock: not a loss to report.
      this.#forget(previous)
      previous.release().catch(noop)
    }
    this.#leases.set(entry.key, entry)
    // A ttl lease that runs out unextended is lost; the deadline is counted
    // from when the request that set it was sent, so never later than
    // Redis's own expiry (held-lease.js).
    if (this.#ttl) entry.watchDeadline(() => this.#lost(entry))
  }

  #forget(entry) {
    if (this.#leases.get(entry.key) === entry) this.#leases.delete(entry.key)
    entry.stop()
  }

  async #giveBack(entry) {
    this.#forget(entry)
    await entry.release()
  }

  /**
   * A ttl lease ran out unextended, or keyed-lock found the lease gone
   * (deleted, expired, forced away) or could not confirm it.
   */
  #lost(entry) {
    if (this.#leases.get(entry.key) !== entry) return
    this.#forget(entry)
    // Deletes it if Redis's clock is a little behind ours, or an extend we
    // stopped waiting for did land; a no-op otherwise.
    entry.release().catch(noop)
    this.#untrack([entry.key]).catch(noop)
    this.#emitExpire(entry)
  }

  #emitExpire(entry) {
    // fast-locky emitted the resource parsed back from the key name.
    const resource = this.formatter.lockToResource(entry.key)
    try {
      this.emit('expire', resource)
    } catch (err) {
      // fast-locky's poller funnelled a throwing listener into 'error'.
      if (this.listenerCount('error') !== 0) this.emit('error', err)
      else
        process.nextTick(() => {
          throw err
        })
    }
  }

  #untrack(keys) {
    return this.#client.command(['SREM', this.set, ...keys])
  }
}

Locky.Locky = Locky
Locky.Formatter = Formatter
// keyed-lock's error for a lost lease (the AsyncLock face's, for instanceof);
// Locky reports losses as 'expire', but users mixing faces share one class.
Locky.LockLostError = require('./lib/lease').LockLostError

module.exports = Locky
