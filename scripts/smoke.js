'use strict'
// The release workflow's load + smoke test, run on every Node version of its
// matrix before the full suite: each entry point loads the binary under test
// and takes a lock. Needs no Redis (the Redis faces are only constructed).
const assert = require('node:assert/strict')
const path = require('node:path')

const root = path.join(__dirname, '..')
const { name } = require(path.join(root, 'package.json'))
const AsyncLock = require(root)
const lock = require(path.join(root, 'alock'))
const Locky = require(path.join(root, 'locky'))
const ExclusiveLock = require(path.join(root, 'exclusive-lock'))

async function main() {
  const order = []
  const asyncLock = new AsyncLock()
  await Promise.all([
    asyncLock.acquire('k', async () => order.push('isolate 1')),
    asyncLock.acquire('k', async () => order.push('isolate 2')),
  ])
  const shared = new AsyncLock({ scope: 'process', name: 'smoke' })
  await shared.acquire(['a', 'b'], async () => order.push('process'))
  const lease = await asyncLock.lock('k')
  order.push(`lease ${lease.keys.join(',')}`)
  await lease.release()
  await new Promise((resolve) => lock('k', (done) => (order.push('alock'), done(), resolve())))
  assert.deepEqual(order, ['isolate 1', 'isolate 2', 'process', 'lease k', 'alock'])
  assert.equal(typeof Locky, 'function')
  assert.equal(new ExclusiveLock({ name: 'smoke', cache_connection: 'redis://127.0.0.1:6379' }).name, 'smoke')
  console.log(`${name} smoke test ok on Node ${process.version} (${process.platform}-${process.arch})`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
