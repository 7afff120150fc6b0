'use strict'
// At most 3 concurrent exports per tenant, and a read/write lock on each
// tenant's settings. 4 tenants × 10 exports start at once; the export of a
// tenant whose settings are being rewritten waits for the writer, and the
// writer waits for the exports that read the settings before it.
// Prints, per tenant, the most exports that ran at once (never above 3).
//
// In one thread for now: counted keys are on the isolate reach only
// (docs/semaphores.md says what is left for `scope: 'process'` and Redis).
//
//   node examples/semaphore.js

const AsyncLock = require('..')

const exportsPerTenant = new AsyncLock({ permits: 3 })
const settings = new AsyncLock({ permits: Infinity })
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const running = new Map()
const most = new Map()

async function exportOne(tenant, i) {
  // Reading the settings: shared with every other export of the tenant.
  await settings.acquire(tenant, () => sleep(1), { mode: 'shared' })
  // A big export (every 5th) takes 2 of the tenant's 3 slots.
  const weight = i % 5 === 0 ? 2 : 1
  await exportsPerTenant.acquire(
    tenant,
    async () => {
      running.set(tenant, (running.get(tenant) || 0) + weight)
      most.set(tenant, Math.max(most.get(tenant) || 0, running.get(tenant)))
      await sleep(5 + Math.random() * 10)
      running.set(tenant, running.get(tenant) - weight)
    },
    { weight },
  )
}

async function rewriteSettings(tenant) {
  // Exclusive: waits for the readers ahead of it; later readers wait for it.
  await settings.acquire(tenant, () => sleep(5), { mode: 'exclusive' })
}

async function main() {
  const tenants = ['acme', 'globex', 'initech', 'umbrella']
  const jobs = []
  for (const tenant of tenants) {
    for (let i = 0; i < 10; i++) {
      jobs.push(exportOne(tenant, i))
      if (i === 4) jobs.push(rewriteSettings(tenant))
    }
  }
  await Promise.all(jobs)
  for (const tenant of tenants) console.log(`${tenant}: at most ${most.get(tenant)} of 3 export slots in use at once`)
}

main()
