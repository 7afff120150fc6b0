'use strict'
// One measurement in a fresh process: node --expose-gc bench/worker.js
// <impl> <workload> <quick 0|1>. Prints one JSON line: the signature check,
// the per-rep times (ns per op) or, for W7, the memory figures; or the
// failure (mismatch, stall = lost task or deadlock, crash). The parent
// enforces the time limit.

const { workloads } = require('./workloads')

const [implName, workloadName, quickArg] = process.argv.slice(2)
const quick = quickArg === '1'
const impl = require('./impls/' + implName)
const w = workloads.find((x) => x.name === workloadName)
const n = quick ? w.quick : w.n
const lockOpts = w.lockOpts || { maxPending: Infinity }
// A row that names its implementations (the S rows: async-lock has no
// semaphore, and would run them as a mutex) runs on no other.
if (w.impls && !w.impls.includes(implName)) {
  process.stdout.write(JSON.stringify({ ok: false, failure: 'n/a', detail: `${workloadName} does not run on ${implName}` }) + '\n')
  process.exit(0)
}

let reported = false
function report(result) {
  if (reported) return
  reported = true
  process.stdout.write(JSON.stringify(result) + '\n')
}
function fail(kind, detail) {
  report({ ok: false, failure: kind, detail: String(detail).slice(0, 300) })
  process.exit(0)
}
process.on('uncaughtException', (err) => fail('crash', (err && err.stack) || err))
process.on('unhandledRejection', (err) => fail('crash', (err && err.stack) || err))
// The event loop ran dry with the workload unfinished: some task was lost,
// or the lock deadlocked (nothing is left to wake anyone).
process.on('beforeExit', () => {
  if (!reported) fail('stalled', 'event loop empty before the workload finished (lost task or deadlock)')
})

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)

async function timed(size, data) {
  const lock = impl.create(lockOpts)
  // A scavenge, not a full GC: a full GC frees the maps of the last rep's
  // dead objects, V8 then drops every optimized function that embedded them
  // ("weak objects"), and each rep would time its implementation's warm-up
  // again rather than its steady state (bench/README.md, "Why W3 read
  // 53,000 instructions").
  global.gc({ type: 'minor' })
  const t0 = process.hrtime.bigint()
  const signature = await w.run(lock, size, data)
  const ns = Number(process.hrtime.bigint() - t0)
  if (!same(signature, w.expect(size))) {
    fail('mismatch', `got ${JSON.stringify(signature)}, want ${JSON.stringify(w.expect(size))}`)
  }
  return { ns, signature }
}

async function memory() {
  // Warm the code paths first so their compiled code is not counted.
  await waitersOnOneKey(Math.min(n, 10000), false)
  return waitersOnOneKey(n, true)
}

async function waitersOnOneKey(size, measure) {
  const lock = impl.create(lockOpts)
  let ran = 0
  const fn = () => {
    ran++
  }
  let open
  const gate = new Promise((r) => (open = r))
  lock.acquire('k', () => gate)
  global.gc()
  const before = process.memoryUsage()
  let last
  for (let i = 0; i < size; i++) last = lock.acquire('k', fn)
  global.gc()
  const after = process.memoryUsage()
  const heapPerWaiter = (after.heapUsed - before.heapUsed) / size
  const rssPerWaiter = (after.rss - before.rss) / size
  // The memory figures are known now: print them, so a drain that runs
  // past the time limit (async-lock's shift() is O(n) per waiter) still
  // reports them, with the drain as the failure.
  if (measure) process.stdout.write(JSON.stringify({ ok: false, failure: 'drain', partial: true, n: size, heapPerWaiter, rssPerWaiter }) + '\n')
  const t0 = process.hrtime.bigint()
  open()
  await last
  const drainNs = Number(process.hrtime.bigint() - t0)
  if (!same({ ran }, w.expect(size))) fail('mismatch', `got ran=${ran}, want ${size}`)
  if (!measure) return null
  return {
    heapPerWaiter,
    // Native memory (keyed-lock's Rust queue) is invisible to the heap figure;
    // RSS growth catches it, with more noise.
    rssPerWaiter,
    peakRss: process.resourceUsage().maxRSS * 1024,
    drainNsPerOp: drainNs / size,
  }
}

async function main() {
  if (w.memory) {
    const m = await memory()
    report({ ok: true, n, ...m })
    return
  }
  const data = w.prepare ? w.prepare(n) : undefined
  // Warm-up: the same workload at a size that is cheap for every
  // implementation, so the timed reps run optimized code.
  const warmSize = Math.min(n, w.name.startsWith('W5') ? n : 10000)
  const warmData = w.prepare && warmSize !== n ? w.prepare(warmSize) : data
  for (let i = 0; i < 2; i++) await timed(warmSize, warmData)
  const samples = []
  for (let i = 0; i < w.reps; i++) samples.push((await timed(n, data)).ns / n)
  report({ ok: true, n, samples })
}

main().catch((err) => fail('crash', (err && err.stack) || err))
