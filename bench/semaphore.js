'use strict'
// Semaphore workloads (issue 13), keyed-lock's counted keys against
// async-mutex's Semaphore and a plain-JS floor (impls/floor-semaphore.js):
//
//   S1  10k requests of weight 1 on one key, N = 8
//   S2  10k requests on one key, N = 8: 90% shared (weight 1), 10% exclusive (all 8)
//
// All queued at once, each fn async (one awaited microtask); the time is
// from the first request to the last settlement. Every implementation must
// give the same signature (ran, most holders at once, no exclusive holder
// beside another) before its time counts.
//
//   node bench/semaphore.js [--rounds 7] [--n 10000]

const { Semaphore } = require('async-mutex')
const AsyncLock = require('..')
const { FloorSemaphore } = require('./impls/floor-semaphore')

const N = 8

const impls = {
  'keyed-lock': () => {
    const lock = new AsyncLock({ permits: N, maxPending: Infinity })
    return (fn, exclusive) => lock.acquire('k', fn, exclusive ? { mode: 'exclusive' } : undefined)
  },
  'async-mutex': () => {
    const sem = new Semaphore(N)
    return (fn, exclusive) => sem.runExclusive(fn, exclusive ? N : 1)
  },
  floor: () => {
    const sem = new FloorSemaphore(N)
    return (fn, exclusive) => sem.acquire('k', fn, exclusive ? { weight: N } : undefined)
  },
}

function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

async function workload(take, n, exclusiveShare) {
  const random = prng(13)
  let inside = 0
  let most = 0
  let ran = 0
  let violations = 0
  let writer = false
  const all = new Array(n)
  for (let i = 0; i < n; i++) {
    const exclusive = random() < exclusiveShare
    all[i] = take(async () => {
      if (writer || (exclusive && inside > 0)) violations++
      inside++
      if (exclusive) writer = true
      if (inside > most) most = inside
      await null
      ran++
      inside--
      if (exclusive) writer = false
    }, exclusive)
  }
  await Promise.all(all)
  return { ran, most, violations }
}

const W = [
  { name: 'S1', share: 0, what: `${N} permits, weight 1` },
  { name: 'S2', share: 0.1, what: `${N} permits, 90% shared / 10% exclusive` },
]

async function main() {
  const argv = process.argv.slice(2)
  const arg = (name, d) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : d)
  const rounds = arg('--rounds', 7)
  const n = arg('--n', 10000)
  const names = Object.keys(impls)
  console.log(`| workload | n | ${names.join(' | ')} | keyed-lock ÷ async-mutex | keyed-lock ÷ floor |`)
  console.log(`|---|---:|${names.map(() => '---:').join('|')}|---:|---:|`)
  for (const w of W) {
    const times = Object.fromEntries(names.map((k) => [k, []]))
    let signature = null
    for (let r = 0; r < rounds + 1; r++) {
      for (const name of names) {
        const take = impls[name]()
        const t0 = process.hrtime.bigint()
        const sig = await workload(take, n, w.share)
        const ms = Number(process.hrtime.bigint() - t0) / 1e6
        if (sig.ran !== n || sig.violations !== 0 || sig.most > N) throw new Error(`${name} ${w.name}: ${JSON.stringify(sig)}`)
        const key = JSON.stringify(sig)
        if (signature === null) signature = key
        else if (key !== signature) throw new Error(`${name} ${w.name}: ${key} differs from ${signature}`)
        if (r > 0) times[name].push(ms) // round 0 warms up
      }
    }
    const median = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1]
    const m = Object.fromEntries(names.map((k) => [k, median(times[k])]))
    console.log(
      `| ${w.name} (${w.what}) | ${n} | ${names.map((k) => m[k].toFixed(2) + ' ms').join(' | ')} | ` +
        `${(m['keyed-lock'] / m['async-mutex']).toFixed(2)} | ${(m['keyed-lock'] / m.floor).toFixed(2)} |`,
    )
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
