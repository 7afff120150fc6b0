'use strict'
// ns per call of each binding entry point, next to JS references, so a
// regression in the binding shows by itself (the workloads mix it with
// everything else). Prints one JSON line: { ok, ns: { name: median } }.
//   node --expose-gc bench/crossings.js [--quick]

const binding = require('../binding.js')

const quick = process.argv.includes('--quick')
const CALLS = quick ? 300000 : 5000000
const RUNS = quick ? 3 : 7

// The io-buffer protocol of src/binding/mod.rs, driven directly: a key held
// through its word, then acquire() queues a waiter (word -> contended) and
// release() hands the key to it, which leaves the key held with an empty
// queue, ready for the next pair. Two crossings per pair.
const io = new Int32Array(binding.ioBuffer(0))
const table = binding.createTable()
const words = new Int32Array(binding.tableWords(table, 1))
words[0] = 1
function contendedPair(calls) {
  for (let i = 0; i < calls; i++) {
    io[0] = table
    io[1] = -1
    io[2] = 0
    io[3] = 1
    io[4] = 0
    binding.acquire()
    if (io[0] !== 1) throw new Error('acquire() did not queue: outcome ' + io[0])
    io[0] = table
    io[1] = 1
    io[2] = 0
    binding.release()
    if (io[0] !== 1) throw new Error('release() granted ' + io[0] + ' waiters, want 1')
  }
}

const map = new Map([
  ['k', 1],
  ['other', 2],
])
let sink = 0
// [name, calls per run as a fraction of CALLS, body]; tableWords allocates
// an ArrayBuffer per call, so it gets fewer calls.
const cases = [
  // The same empty call two ways: through #[napi] (argument and result
  // conversion) and as a raw N-API callback, which is how acquire, release
  // and cancel are registered (src/binding/hot.rs).
  ['noop() via #[napi]', 1, (calls) => {
    for (let i = 0; i < calls; i++) binding.noop()
  }],
  ['noopRaw() raw callback', 1, (calls) => {
    for (let i = 0; i < calls; i++) binding.noopRaw()
  }],
  ['acquire()+release() contended pair', 1, contendedPair],
  ['tableWords(table, 1)', 0.05, (calls) => {
    for (let i = 0; i < calls; i++) sink += binding.tableWords(table, 1).byteLength
  }],
  ['JS Map.get(string)', 1, (calls) => {
    const keys = ['k', 'other']
    for (let i = 0; i < calls; i++) sink += map.get(keys[i & 1])
  }],
  ['JS await Promise.resolve()', 0.2, async (calls) => {
    for (let i = 0; i < calls; i++) await Promise.resolve()
  }],
]

async function main() {
  const results = {}
  for (const [name, share, body] of cases) {
    const calls = Math.round(CALLS * share)
    await body(Math.min(calls, 100000)) // warm-up
    const runs = []
    for (let r = 0; r < RUNS; r++) {
      global.gc && global.gc()
      const t0 = process.hrtime.bigint()
      await body(calls)
      runs.push(Number(process.hrtime.bigint() - t0) / calls)
    }
    results[name] = median(runs)
  }
  process.stdout.write(JSON.stringify({ ok: true, calls: CALLS, runs: RUNS, ns: results, sink: sink > 0 }) + '\n')
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[s.length >> 1]
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ ok: false, failure: 'crash', detail: String(err && err.stack) }) + '\n')
})
