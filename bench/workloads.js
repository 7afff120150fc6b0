'use strict'
// The workloads. Each `run(lock, n)` drives one lock through async-lock's
// API and resolves to a signature: the observable result (counts, FIFO,
// exclusion) that every implementation must reproduce exactly before its
// time counts. `expect(n)` is the signature a correct lock gives. Sizes are
// the issue's; `quick` sizes are for the smoke test.

const noop = () => {}

/** Deterministic PRNG (mulberry32), so every implementation gets the same key sets. */
function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = seed
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** W1 / W6u: sequential uncontended acquisitions, promise mode. */
function sequential(withOpts) {
  return async (lock, n) => {
    const opts = withOpts ? { timeout: 1000 } : undefined
    let ran = 0
    const fn = () => {
      ran++
    }
    for (let i = 0; i < n; i++) await lock.acquire('k', fn, opts)
    return { ran }
  }
}

/**
 * W2: callback mode, each acquisition started from the previous one's
 * completion callback. A purely synchronous chain of 200k would overflow the
 * stack for every implementation (acquire -> fn -> done -> cb -> acquire ...
 * nests), so every CHAIN_BREAK steps the next one starts from a microtask.
 */
const CHAIN_BREAK = 100
function callbackChain(lock, n) {
  return new Promise((resolve, reject) => {
    let ran = 0
    const fn = (done) => {
      ran++
      done()
    }
    const step = (i) => lock.acquire('k', fn, cb(i))
    const cb = (i) => (err) => {
      if (err) return reject(err)
      if (i + 1 === n) resolve({ ran })
      else if ((i + 1) % CHAIN_BREAK === 0) queueMicrotask(() => step(i + 1))
      else step(i + 1)
    }
    step(0)
  })
}

/**
 * W3 family: n acquisitions queued on one key behind a holder, then drained.
 * The signature says how many ran and whether they ran in FIFO order.
 */
function queued({ callback = false, awaitInside = false, withOpts = false } = {}) {
  return (lock, n) =>
    new Promise((resolve, reject) => {
      const opts = withOpts ? { timeout: 1000 } : undefined
      let next = 0
      let fifo = true
      let settled = 0
      const finish = () => resolve({ ran: next, fifo, settled })
      let releaseHolder = null
      let queuedAll = false
      if (callback) {
        // The holder releases once every waiter is queued; async-mutex runs
        // even a free key's fn asynchronously, hence the two ways in.
        lock.acquire(
          'k',
          (done) => {
            if (queuedAll) done()
            else releaseHolder = done
          },
          (err) => err && reject(err),
          opts,
        )
        const cb = (err) => {
          if (err) return reject(err)
          if (++settled === n) finish()
        }
        for (let i = 0; i < n; i++) {
          const fn = (done) => {
            if (next++ !== i) fifo = false
            done()
          }
          lock.acquire('k', fn, cb, opts)
        }
        if (releaseHolder !== null) releaseHolder()
        else queuedAll = true
        return
      }
      let open
      const gate = new Promise((r) => (open = r))
      lock.acquire('k', () => gate, opts).catch(reject)
      // One closure per waiter for the FIFO check, the same for every
      // implementation; only the last promise is awaited (a lost waiter
      // shows as a stall, a rejection as a crash).
      let last
      for (let i = 0; i < n; i++) {
        const fn = awaitInside
          ? async () => {
              await null
              if (next++ !== i) fifo = false
            }
          : () => {
              if (next++ !== i) fifo = false
            }
        last = lock.acquire('k', fn, opts)
      }
      open()
      last.then(() => resolve({ ran: next, fifo, settled: n }), reject)
    })
}

/**
 * W6p: n requests at once on one key held by another call, with the lock's
 * `maxPending: MAX_PENDING`: the first MAX_PENDING queue and run in FIFO
 * order, every later one is refused at once (a rejected promise).
 */
const MAX_PENDING = 100
function refused(lock, n) {
  return new Promise((resolve, reject) => {
    let next = 0
    let fifo = true
    let refusals = 0
    const refuse = () => {
      refusals++
    }
    let open
    const gate = new Promise((r) => (open = r))
    lock.acquire('k', () => gate).catch(reject)
    const queued = []
    for (let i = 0; i < n; i++) {
      const fn = () => {
        if (next++ !== i) fifo = false
      }
      const p = lock.acquire('k', fn)
      if (i < MAX_PENDING) queued.push(p)
      else p.catch(refuse)
    }
    open()
    Promise.all(queued).then(() => resolve({ ran: next, fifo, refused: refusals }), reject)
  })
}

/** W4: n acquisitions on n distinct keys, all started at once. */
async function distinctKeys(lock, n, keys) {
  let ran = 0
  const fn = () => {
    ran++
  }
  const all = new Array(n)
  for (let i = 0; i < n; i++) all[i] = lock.acquire(keys[i], fn)
  await Promise.all(all)
  return { ran }
}

/**
 * W5 / W5x: `callers` concurrent callers, each doing `perCaller`
 * acquisitions of 5 of 16 keys; fn holds its keys across one microtask and
 * checks nobody else holds them. Sorted key lists, or shuffled ones (which
 * deadlock a lock that takes keys one by one in the caller's order).
 */
function multiKeySets(callers, perCaller, shuffled) {
  const rand = prng(shuffled ? 2 : 1)
  const sets = []
  for (let i = 0; i < callers * perCaller; i++) {
    const pool = Array.from({ length: 16 }, (_, k) => k)
    for (let k = 15; k > 0; k--) {
      const j = Math.floor(rand() * (k + 1))
      ;[pool[k], pool[j]] = [pool[j], pool[k]]
    }
    const set = pool.slice(0, 5).map((k) => 'key' + k)
    if (!shuffled) set.sort()
    sets.push(set)
  }
  return sets
}

async function multiKey(lock, n, sets) {
  const callers = 100
  const perCaller = n / callers
  const inUse = new Map()
  let violations = 0
  let ran = 0
  const caller = async (c) => {
    for (let j = 0; j < perCaller; j++) {
      const keys = sets[c * perCaller + j]
      await lock.acquire(keys, async () => {
        for (const k of keys) {
          const u = inUse.get(k) || 0
          if (u !== 0) violations++
          inUse.set(k, u + 1)
        }
        await null
        for (const k of keys) inUse.set(k, inUse.get(k) - 1)
        ran++
      })
    }
  }
  const all = []
  for (let c = 0; c < callers; c++) all.push(caller(c))
  await Promise.all(all)
  return { ran, violations }
}

/**
 * S1 / S2 (issue 13): n requests queued at once on one key of a semaphore
 * with SEM_PERMITS permits, each fn async (one awaited microtask); a share
 * of them exclusive (all the permits: `{ mode: 'exclusive' }`, which the
 * async-mutex and floor adaptors read as a weight of SEM_PERMITS), the rest
 * weight 1 (no options). The signature counts runs, the most holders seen
 * at once and any exclusive holder beside another, from inside fn.
 */
const SEM_PERMITS = 8
const EXCLUSIVE = { mode: 'exclusive' }
function semaphoreMix(exclusiveShare) {
  return async (lock, n) => {
    const random = prng(13)
    let inside = 0
    let most = 0
    let ran = 0
    let violations = 0
    let writer = false
    const all = new Array(n)
    for (let i = 0; i < n; i++) {
      const exclusive = random() < exclusiveShare
      const fn = async () => {
        if (writer || (exclusive && inside > 0)) violations++
        inside++
        if (exclusive) writer = true
        if (inside > most) most = inside
        await null
        ran++
        inside--
        if (exclusive) writer = false
      }
      all[i] = lock.acquire('k', fn, exclusive ? EXCLUSIVE : undefined)
    }
    await Promise.all(all)
    return { ran, most, violations }
  }
}
/** async-lock has no semaphore: the S rows compare with async-mutex's Semaphore. */
const SEMAPHORE_IMPLS = ['keyed-lock', 'async-mutex', 'floor']
const semaphoreRow = (name, exclusiveShare) => ({
  name, n: 10000, quick: 2000, reps: 5,
  lockOpts: { permits: SEM_PERMITS, maxPending: Infinity },
  impls: SEMAPHORE_IMPLS, baseline: 'async-mutex',
  run: semaphoreMix(exclusiveShare),
  expect: (n) => ({ ran: n, most: SEM_PERMITS, violations: 0 }),
})

const W = [
  { name: 'W1', n: 200000, quick: 20000, reps: 5, run: sequential(false), expect: (n) => ({ ran: n }) },
  { name: 'W2', n: 200000, quick: 20000, reps: 5, run: callbackChain, expect: (n) => ({ ran: n }) },
  { name: 'W3', n: 10000, quick: 2000, reps: 5, run: queued(), expect: (n) => ({ ran: n, fifo: true, settled: n }) },
  { name: 'W3L', n: 100000, quick: 10000, reps: 1, run: queued(), expect: (n) => ({ ran: n, fifo: true, settled: n }) },
  { name: 'W3a', n: 10000, quick: 2000, reps: 5, run: queued({ awaitInside: true }), expect: (n) => ({ ran: n, fifo: true, settled: n }) },
  { name: 'W3cb', n: 10000, quick: 2000, reps: 5, run: queued({ callback: true }), expect: (n) => ({ ran: n, fifo: true, settled: n }) },
  { name: 'W3cbL', n: 1000000, quick: 20000, reps: 1, run: queued({ callback: true }), expect: (n) => ({ ran: n, fifo: true, settled: n }) },
  {
    name: 'W4', n: 50000, quick: 5000, reps: 5,
    prepare: (n) => Array.from({ length: n }, (_, i) => 'key:' + i),
    run: distinctKeys, expect: (n) => ({ ran: n }),
  },
  {
    name: 'W5', n: 10000, quick: 1000, reps: 5,
    prepare: (n) => multiKeySets(100, n / 100, false),
    run: multiKey, expect: (n) => ({ ran: n, violations: 0 }),
  },
  {
    name: 'W5x', n: 10000, quick: 1000, reps: 5,
    prepare: (n) => multiKeySets(100, n / 100, true),
    run: multiKey, expect: (n) => ({ ran: n, violations: 0 }),
  },
  { name: 'W6t', n: 10000, quick: 2000, reps: 5, run: queued({ withOpts: true }), expect: (n) => ({ ran: n, fifo: true, settled: n }) },
  {
    name: 'W6p', n: 10000, quick: 2000, reps: 5, lockOpts: { maxPending: MAX_PENDING },
    run: refused, expect: (n) => ({ ran: MAX_PENDING, fifo: true, refused: n - MAX_PENDING }),
  },
  { name: 'W6u', n: 200000, quick: 20000, reps: 5, run: sequential(true), expect: (n) => ({ ran: n }) },
  // S1: 10k weight-1 requests on one key, 8 permits. S2: the same, 90% shared / 10% exclusive.
  semaphoreRow('S1', 0),
  semaphoreRow('S2', 0.1),
  // W7 is measured differently (memory), see worker.js.
  { name: 'W7', n: 1000000, quick: 20000, reps: 1, memory: true, expect: (n) => ({ ran: n }) },
]

module.exports = { workloads: W, noop, SEM_PERMITS }
