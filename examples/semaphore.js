'use strict'
// At most 3 concurrent exports per tenant, across worker threads, and a
// read/write lock on each tenant's settings. 4 worker threads each start 10
// exports for each of 4 tenants at once; every thread opens the same
// `scope: 'process'` spaces, so the limit holds for the whole process, not
// per thread. An export reads the tenant's settings (shared); one rewrite
// per tenant and thread takes them exclusively: it waits for the readers
// ahead of it, and later readers wait for it. A SharedArrayBuffer counts
// the exports running per tenant; the main thread prints, per tenant, the
// most that ever ran at once (never above 3).
//
//   node examples/semaphore.js

const { Worker, isMainThread, workerData } = require('node:worker_threads')
const AsyncLock = require('..')

const TENANTS = ['acme', 'globex', 'initech', 'umbrella']
const SLOTS = 3
const THREADS = 4

if (!isMainThread) {
  const exportsPerTenant = new AsyncLock({ scope: 'process', name: 'examples/exports', permits: SLOTS })
  const settings = new AsyncLock({ scope: 'process', name: 'examples/settings', permits: Infinity })
  // Per tenant: [export slots in use, the most ever in use].
  const cells = new Int32Array(workerData.counters)
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

  const exportOne = async (t, i) => {
    // Reading the settings: shared with every other export of the tenant.
    await settings.acquire(TENANTS[t], () => sleep(1), { mode: 'shared' })
    // A big export (every 5th) takes 2 of the tenant's 3 slots.
    const weight = i % 5 === 0 ? 2 : 1
    await exportsPerTenant.acquire(
      TENANTS[t],
      async () => {
        const inUse = Atomics.add(cells, 2 * t, weight) + weight
        // Atomics has no max: retry until the recorded most is at least inUse.
        for (let most = Atomics.load(cells, 2 * t + 1); most < inUse; most = Atomics.load(cells, 2 * t + 1)) {
          Atomics.compareExchange(cells, 2 * t + 1, most, inUse)
        }
        await sleep(2 + Math.random() * 5)
        Atomics.sub(cells, 2 * t, weight)
      },
      { weight },
    )
  }
  // Exclusive: waits for the readers ahead of it; later readers wait for it.
  const rewriteSettings = (t) => settings.acquire(TENANTS[t], () => sleep(3), { mode: 'exclusive' })

  const jobs = []
  for (let t = 0; t < TENANTS.length; t++) {
    for (let i = 0; i < 10; i++) {
      jobs.push(exportOne(t, i))
      if (i === 4) jobs.push(rewriteSettings(t))
    }
  }
  Promise.all(jobs)
} else {
  const counters = new SharedArrayBuffer(4 * 2 * TENANTS.length)
  const threads = Array.from({ length: THREADS }, () => new Worker(__filename, { workerData: { counters } }))
  Promise.all(threads.map((w) => new Promise((resolve, reject) => w.once('exit', resolve).once('error', reject)))).then(() => {
    const cells = new Int32Array(counters)
    console.log(`${THREADS} worker threads × 10 exports per tenant, at most ${SLOTS} export slots per tenant across the process`)
    TENANTS.forEach((tenant, t) => {
      const most = cells[2 * t + 1]
      console.log(`${tenant}: at most ${most} of ${SLOTS} export slots in use at once`)
      if (most > SLOTS || cells[2 * t] !== 0) process.exitCode = 1
    })
  })
}
