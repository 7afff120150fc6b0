'use strict'
// Issue 14 point 4: `waitReplicas` makes a grant count only once WAIT sees
// it on that many replicas. With a real replica up, grants (direct and
// handed off) succeed and the extra latency is reported; with the replica
// paused (SIGSTOP), the acquisition fails with KEYED_LOCK_REPLICAS after the
// WAIT timeout and the lock is left free.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const AsyncLock = require('../index.js')
const { startRedis } = require('../support/redis-harness')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
let master
let replica

before(async () => {
  master = await startRedis()
  replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] })
  const deadline = Date.now() + 10000
  while (!/master_link_status:up/.test(await replica.command('INFO', 'replication'))) {
    if (Date.now() > deadline) throw new Error('the replica never synced')
    await sleep(50)
  }
})

after(async () => {
  if (replica && replica.paused) replica.resume()
  await Promise.all([master && master.stop(), replica && replica.stop()])
})

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function lockTimes(lock, n) {
  const ms = []
  for (let i = 0; i < n; i++) {
    const started = performance.now()
    const lease = await lock.lock(`t${i % 4}`, { timeout: 3000 })
    ms.push(performance.now() - started)
    await lease.release()
  }
  return ms
}

test('waitReplicas with the replica up: grants succeed, the replica has them; the extra latency is reported', async (t) => {
  const plain = new AsyncLock({ redis: master.url, name: 'plain' })
  const waited = new AsyncLock({ redis: master.url, name: 'waited', waitReplicas: { replicas: 1, timeout: 2000 } })
  t.after(() => Promise.all([plain.close(), waited.close()]))
  await lockTimes(plain, 5)
  await lockTimes(waited, 5)
  const plainMs = await lockTimes(plain, 40)
  const waitedMs = await lockTimes(waited, 40)
  t.diagnostic(`lock+release, median of 40: plain ${median(plainMs).toFixed(3)} ms, waitReplicas: 1 ${median(waitedMs).toFixed(3)} ms`)
  // The replica has the lease the moment the grant resolves.
  const lease = await waited.lock('seen', { timeout: 3000 })
  const onReplica = await replica.command('KEYS', '*seen*')
  assert.ok(onReplica.length > 0, 'the replica has the lease')
  // A waiter served by hand-off (the grant written by the releaser's script) is confirmed too.
  const other = new AsyncLock({ redis: master.url, name: 'waited', waitReplicas: 1 })
  t.after(() => other.close())
  const next = other.lock('seen', { timeout: 3000 })
  await sleep(50)
  await lease.release()
  const handed = await next
  assert.ok(handed.token > lease.token)
  await handed.release()
  // async-lock's callback form as well.
  assert.equal(await waited.acquire('cb', () => 'ran'), 'ran')
})

test('waitReplicas with the replica paused: KEYED_LOCK_REPLICAS after the timeout, and the lock left free', async (t) => {
  const waited = new AsyncLock({ redis: master.url, name: 'paused', waitReplicas: { replicas: 1, timeout: 300 } })
  const plain = new AsyncLock({ redis: master.url, name: 'paused' })
  t.after(() => Promise.all([waited.close(), plain.close()]))
  replica.pause()
  try {
    const started = performance.now()
    await assert.rejects(waited.lock('k', { timeout: 3000 }), (err) => {
      assert.equal(err.code, 'KEYED_LOCK_REPLICAS')
      assert.match(err.message, /reached 0 of the 1 replica/)
      assert.match(err.message, /released/)
      return true
    })
    const ms = performance.now() - started
    assert.ok(ms >= 290, `waited ${ms} ms for WAIT`)
    t.diagnostic(`refused after ${ms.toFixed(0)} ms (WAIT timeout 300 ms)`)
    await assert.rejects(waited.acquire('cb', () => 'never'), (err) => err.code === 'KEYED_LOCK_REPLICAS')
    // Nobody holds it: a lock without waitReplicas gets it at once.
    const lease = await plain.lock('k', { timeout: 200 })
    await lease.release()
  } finally {
    replica.resume()
  }
})

test('waitReplicas is validated', () => {
  for (const bad of [-1, 1.5, 'one', { replicas: 0 }, { replicas: 1, timeout: 0 }]) {
    assert.throws(() => new AsyncLock({ redis: master.url, waitReplicas: bad }), (err) => err instanceof TypeError && /waitReplicas/.test(err.message))
  }
  assert.throws(() => new AsyncLock({ redis: [master.url], waitReplicas: 1 }), /Cluster/)
})
