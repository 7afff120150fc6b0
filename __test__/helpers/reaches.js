'use strict'
// The three reaches, each as the same small object, so that one scenario
// suite runs once per reach (__test__/reach/*.test.js):
//
//   forEachReach((reach) => {
//     test('…', async (t) => {
//       const lock = reach.make({ maxPending: 1 })   // a fresh lock space
//       const twin = reach.twin(lock)                // another AsyncLock on the same space, or null
//       if (reach.name === 'redis') { /* docs/compat.md#…: the documented difference, asserted */ }
//     })
//   })
//
// Only the public API (`require('..')`) is used: the suites must hold
// whatever the reaches look like inside. Where a reach behaves differently
// on purpose, the test names the difference (docs/compat.md, README) and
// asserts it; nothing is skipped.

const { describe, before, after } = require('node:test')
const AsyncLock = require('../..')
const { startRedis } = require('../../support/redis-harness')
const { mockTimers } = require('../helpers')
const { lockKey } = require('../redis-keys')

// Taken before any test mocks the globals: a real wait stays real.
const realSetTimeout = globalThis.setTimeout
const realSetImmediate = globalThis.setImmediate
const realClearTimeout = globalThis.clearTimeout
const immediate = () => new Promise((resolve) => realSetImmediate(resolve))
const realSleep = (ms) => new Promise((resolve) => realSetTimeout(resolve, ms))

/** Lets every immediate/microtask chain run out (in-process grants need nothing more). */
async function drain(rounds = 20) {
  for (let i = 0; i < rounds; i++) await immediate()
}

let spaces = 0
const spaceName = (reach) => `reach-${reach}-${process.pid}-${++spaces}`

/**
 * A reach: `make(opts)` gives a lock on a space no other test uses;
 * `twin(lock)` another AsyncLock on that lock's space (null on the isolate
 * reach, where a space is one instance); `close()` closes what was made.
 */
class Reach {
  constructor(name) {
    this.name = name
    this.made = []
    /** lock -> the factory that made it, for twin() */
    this.factories = new WeakMap()
  }

  /**
   * Whether `timeout` is a JS timer here, so node:test's mock timers drive
   * it. On the Redis reach it runs in the native client (docs/compat.md,
   * Redis reach, "timeout").
   */
  get jsTimeout() {
    return this.name !== 'redis'
  }

  /**
   * Whether a free key runs `fn` inside `acquire()` and a refusal calls
   * `cb` before `acquire()` returns. Not on the Redis reach
   * (docs/compat.md, Redis reach, "when fn runs").
   */
  get synchronous() {
    return this.name !== 'redis'
  }

  make(opts = {}) {
    const make = this.factory(opts)
    const lock = make()
    this.factories.set(lock, make)
    this.made.push(lock)
    return lock
  }

  /** `extra` options override the lock's (e.g. another `redis` URL spelling: a connection of its own). */
  twin(lock, extra) {
    const make = this.factories.get(lock)
    if (this.name === 'isolate' || !make) return null
    const other = make(extra)
    this.made.push(other)
    return other
  }

  /**
   * Waits long enough for work in flight to happen, for a check that
   * something did NOT happen (a waiter still waiting). In process that is
   * the immediates running out; on Redis a few round trips, with room for
   * a loaded machine (a slow machine can only make such a check pass, never
   * fail wrongly).
   */
  async quiet() {
    if (this.name === 'redis') await realSleep(150)
    else await drain()
  }

  /**
   * Resolves once `n` requests wait on `key` in `lock`'s space, for as long
   * as that takes (no fixed sleep): a step that depends on the order of the
   * queue (a release, a skipQueue) waits for the queue, not for the clock.
   * In process a request is queued when its call returns; `queues` shows it.
   */
  queued(lock, key, n) {
    const wait = async () => {
      while ((lock.queues[key] || []).length < n) await drain()
    }
    return eventually(wait(), `${n} waiter(s) on ${key}`)
  }

  async close() {
    await Promise.all(this.made.splice(0).map((lock) => lock.close()))
  }
}

class IsolateReach extends Reach {
  constructor() {
    super('isolate')
  }
  factory(opts) {
    return () => new AsyncLock(opts)
  }
}

class ProcessReach extends Reach {
  constructor() {
    super('process')
  }
  factory(opts) {
    const name = spaceName('process')
    return (extra) => new AsyncLock({ ...opts, ...extra, scope: 'process', name })
  }
}

class RedisReach extends Reach {
  constructor() {
    super('redis')
    this.server = null
  }
  async start() {
    this.server = await startRedis()
  }
  factory(opts) {
    const name = spaceName('redis')
    const make = (extra) => new AsyncLock({ redis: this.server.url, ...opts, ...extra, name })
    make.spaceName = name
    return make
  }
  /** The Redis key of a lock's lease on `key` (docs/redis-keys.md). */
  leaseKey(lock, key) {
    return lockKey('keyed-lock', this.factories.get(lock).spaceName, key, 'l')
  }

  /** The Redis key of a lock's queue on `key` (docs/redis-keys.md). */
  queueKey(lock, key) {
    return lockKey('keyed-lock', this.factories.get(lock).spaceName, key, 'q')
  }

  /**
   * On Redis `queues` counts this process's calls from the moment they are
   * made, and a call reaches Redis later (a release can overtake an
   * acquisition in flight): wait for the queue in Redis itself.
   */
  queued(lock, key, n) {
    const wait = async () => {
      while ((await this.server.command('ZCARD', this.queueKey(lock, key))) < n) await realSleep(5)
    }
    return eventually(wait(), `${n} waiter(s) on ${key} in Redis`)
  }
  async stop() {
    await this.close()
    if (this.server) await this.server.stop()
  }
}

const REACHES = ['isolate', 'process', 'redis']

/**
 * Declares `body(reach)`'s tests once per reach, each reach in a describe
 * block named after it. The Redis reach starts its own throwaway
 * redis-server for the file and stops it at the end. `reaches` narrows the
 * list, for a feature that some reaches do not have yet (a suite that
 * passes it says which, and where the others refuse it).
 */
function forEachReach(body, reaches = REACHES) {
  for (const name of reaches) {
    // A lost grant would leave a test waiting forever: the block fails instead.
    describe(`[${name}]`, { timeout: 120_000 }, () => {
      const reach = name === 'isolate' ? new IsolateReach() : name === 'process' ? new ProcessReach() : new RedisReach()
      if (reach instanceof RedisReach) {
        before(() => reach.start())
        after(() => reach.stop())
      } else {
        after(() => reach.close())
      }
      body(reach)
    })
  }
}

/**
 * Whether `promise` has settled by the time the reach is quiet. Used for
 * "still waiting" checks only.
 */
async function settled(reach, promise) {
  let done = false
  promise.then(
    () => (done = true),
    () => (done = true),
  )
  await reach.quiet()
  return done
}

/**
 * Mocks setTimeout/clearTimeout for test `t` (restored when it ends):
 * `timeout`, `maxOccupationTime` and `maxExecutionTime` are JS timers on
 * the in-process reaches (and the last two on the Redis reach), so a test
 * moves the clock instead of sleeping and asserts the exact deadline.
 */
function mockClock(t) {
  mockTimers(t)
  return {
    /** Moves the mocked clock `ms` forward, then lets what that started run out. */
    async tick(ms) {
      t.mock.timers.tick(ms)
      await drain()
    },
  }
}

/**
 * Waits for `promise` with a ref'd timer running: a wait for something
 * native (a lost-lease report from the Redis watchdog) does not keep the
 * event loop alive by itself. `what` names it if it never comes (the
 * limit only catches a hang; it is far beyond any expected delay).
 */
function eventually(promise, what, ms = 20000) {
  let timer
  const giveUp = new Promise((resolve, reject) => {
    timer = realSetTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)
  })
  return Promise.race([promise, giveUp]).finally(() => realClearTimeout(timer))
}

/** The value or the error a promise settles with. */
const outcome = (promise) => promise.then(
  (value) => ({ value }),
  (error) => ({ error }),
)

module.exports = { forEachReach, settled, outcome, eventually, drain, realSleep, mockClock, AsyncLock, REACHES }
