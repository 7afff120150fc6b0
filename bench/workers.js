'use strict'
// Cross-thread hand-offs on one key of a scope 'process' lock, against the
// same loop on one thread with the default (isolate) lock.
//
// Each contender (a worker thread, or an async loop on the main thread for
// the isolate row) takes the key, stamps the time and its id, and releases
// at once. The next holder reads the stamp: if another contender released,
// that is one hand-off and its release->grant latency.
//
//   node bench/workers.js [seconds per row=1]

const { Worker, isMainThread, workerData, parentPort } = require('node:worker_threads')
const { performance } = require('node:perf_hooks')
const AsyncLock = require('..')

const now = () => performance.timeOrigin + performance.now() // comparable across threads

/** One contender: loops until `until`, returns hand-off latencies (ms) it saw. */
async function contend(lock, id, stamp, until) {
  const latencies = []
  let ops = 0
  while (now() < until) {
    await lock.acquire('k', (done) => {
      const t = now()
      // stamp[1] holds the id of the last releaser + 1 (0: none yet).
      if (stamp[1] !== 0 && stamp[1] !== id + 1) latencies.push(t - stamp[0])
      ops++
      stamp[0] = now()
      stamp[1] = id + 1
      done()
    })
  }
  return { latencies, ops }
}

if (!isMainThread) {
  const { id, sab, until } = workerData
  const lock = new AsyncLock({ scope: 'process', name: 'bench/workers' })
  contend(lock, id, new Float64Array(sab), until).then((r) => parentPort.postMessage(r))
} else {
  const seconds = Number(process.argv[2]) || 1

  const summarize = (name, results, ms) => {
    const lat = results.flatMap((r) => r.latencies).sort((a, b) => a - b)
    const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] * 1000 : NaN)
    return { name, handoffs: Math.round(lat.length / (ms / 1000)), ops: results.reduce((n, r) => n + r.ops, 0), p50: q(0.5), p99: q(0.99) }
  }

  const threads = async (n) => {
    const sab = new SharedArrayBuffer(16)
    // Workers start at different times: all run to one common deadline.
    const start = now() + 300
    const until = start + seconds * 1000
    const results = await Promise.all(
      Array.from({ length: n }, (_, id) => {
        const w = new Worker(__filename, { workerData: { id, sab, until } })
        return new Promise((resolve, reject) => w.once('message', resolve).once('error', reject))
      }),
    )
    return summarize(`process, ${n} workers`, results, seconds * 1000)
  }

  const isolate = async (n) => {
    const lock = new AsyncLock()
    const stamp = new Float64Array(2)
    const until = now() + seconds * 1000
    const results = await Promise.all(Array.from({ length: n }, (_, id) => contend(lock, id, stamp, until)))
    return summarize(`isolate, ${n} async loops, 1 thread`, results, seconds * 1000)
  }

  ;(async () => {
    // Warm-up, not reported.
    await isolate(2)
    const rows = []
    for (const n of [2, 4]) {
      rows.push(await threads(n))
      rows.push(await isolate(n))
    }
    const fmt = (x) => (Number.isNaN(x) ? '-' : x.toFixed(1))
    console.log(`one key, ${seconds}s per row, ${require('node:os').cpus().length} cores, Node ${process.version}`)
    console.log('| contenders | hand-offs/s | acquisitions/s | release->grant p50 (us) | p99 (us) |')
    console.log('| --- | --- | --- | --- | --- |')
    for (const r of rows) {
      console.log(`| ${r.name} | ${r.handoffs} | ${Math.round(r.ops / seconds)} | ${fmt(r.p50)} | ${fmt(r.p99)} |`)
    }
  })()
}
