'use strict'
// The Redis reach on a Redis Cluster of 3 masters (set up in about 3 s, so
// one file): hash tags keep a lock's keys in one slot, multi-key requests
// across slots are refused with a TypeError before any command is sent,
// and grants still travel by message (PUBLISH reaches every node).

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const AsyncLock = require('../index.js')
const { startRedis, freePort } = require('../support/redis-harness')
const { lockKeys } = require('./redis-keys')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

let nodes = []
let urls = []

before(async () => {
  for (let i = 0; i < 3; i++) {
    // The cluster bus defaults to port + 10000, past 65535 for high ports.
    const busPort = await freePort()
    const node = await startRedis({
      args: ['--cluster-enabled', 'yes', '--cluster-port', String(busPort), '--cluster-node-timeout', '5000'],
    })
    nodes.push(node)
  }
  urls = nodes.map((n) => n.url)
  execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
    stdio: 'ignore',
    timeout: 30000,
  })
  const deadline = Date.now() + 30000
  for (;;) {
    const states = await Promise.all(nodes.map((n) => n.command('CLUSTER', 'INFO')))
    if (states.every((s) => /cluster_state:ok/.test(s))) break
    if (Date.now() > deadline) throw new Error('the test cluster never reached cluster_state:ok')
    await sleep(100)
  }
})

after(async () => {
  await Promise.all(nodes.map((n) => n.stop()))
})

async function evalCalls() {
  let total = 0
  for (const n of nodes) {
    const info = await n.command('INFO', 'commandstats')
    for (const m of info.matchAll(/cmdstat_(eval|evalsha):calls=(\d+)/g)) total += Number(m[2])
  }
  return total
}

test('keys of one request on different slots: a TypeError naming the key, and no command sent', async (t) => {
  const lock = new AsyncLock({ redis: urls, name: 'c' })
  t.after(() => lock.close())
  // Warm up the connection so the count below sees only this request.
  await lock.acquire('{warm}', () => {})
  const before = await evalCalls()
  await assert.rejects(lock.lock(['a', 'b']), (err) => {
    assert.ok(err instanceof TypeError)
    assert.match(err.message, /keys\[1\].*hash tag/)
    return true
  })
  await assert.rejects(lock.acquire(['x', 'y'], () => {}), TypeError)
  assert.equal(await evalCalls(), before, 'nothing reached the cluster')
})

test('keys sharing a hash tag lock together, FIFO, with messages for grants and increasing tokens', async (t) => {
  const a = new AsyncLock({ redis: urls, name: 'c', ttl: 3000 })
  const b = new AsyncLock({ redis: urls, name: 'c', ttl: 3000 })
  t.after(() => Promise.all([a.close(), b.close()]))
  const first = await a.lock(['{order:1}:items', '{order:1}:total'])
  assert.equal(first.tokens.length, 2)
  const order = []
  const second = b.lock('{order:1}:items').then((l) => {
    order.push('b')
    return l
  })
  const third = a.lock('{order:1}:total').then((l) => {
    order.push('a')
    return l
  })
  await sleep(300)
  assert.deepEqual(order, [])
  const released = performance.now()
  await first.release()
  const l2 = await second
  const l3 = await third
  // Far below the 1 s re-check: the grant came as a message.
  assert.ok(performance.now() - released < 800, `granted ${Math.round(performance.now() - released)} ms after the release`)
  assert.ok(l2.token > first.tokens[0])
  assert.ok(l3.token > first.tokens[1])
  assert.deepEqual(order.sort(), ['a', 'b'])
  await Promise.all([l2.release(), l3.release()])
})

test('async-lock API on a cluster: isBusy answers for every client, callback mode, timeouts', async (t) => {
  const a = new AsyncLock({ redis: urls, name: 'c' })
  const b = new AsyncLock({ redis: urls, name: 'c' })
  t.after(() => Promise.all([a.close(), b.close()]))
  let release
  const held = a.acquire('job', () => new Promise((r) => (release = r)))
  await sleep(100)
  assert.equal(b.isBusy('job'), true)
  await assert.rejects(b.acquire('job', () => {}, { timeout: 200 }), { message: 'async-lock timed out in queue job' })
  release()
  await held
  const value = await new Promise((resolve, reject) =>
    b.acquire(
      'job',
      (done) => done(null, 42),
      (err, v) => (err ? reject(err) : resolve(v)),
    ),
  )
  assert.equal(value, 42)
  assert.equal(b.isBusy('job'), false)
})

test('counted keys on a cluster: permits per key in its slot, multi-key by hash tag, isBusy, another limit refused', async (t) => {
  const a = new AsyncLock({ redis: urls, name: 'sem', permits: 2, ttl: 3000 })
  const b = new AsyncLock({ redis: urls, name: 'sem', permits: 2, ttl: 3000 })
  const other = new AsyncLock({ redis: urls, name: 'sem', permits: 3 })
  t.after(() => Promise.all([a.close(), b.close(), other.close()]))
  const r1 = await a.lock('{o:1}:x', { mode: 'shared' })
  const r2 = await b.lock(['{o:1}:x', '{o:1}:y'], { mode: 'shared' })
  assert.equal(b.isBusy('{o:1}:y'), true)
  let granted = false
  const writer = a.lock('{o:1}:x', { mode: 'exclusive' }).then((l) => ((granted = true), l))
  await sleep(100)
  assert.equal(granted, false, 'two shared holders: the writer waits')
  await assert.rejects(other.acquire('{o:1}:x', () => {}), /option "permits" must be 2/)
  await r1.release()
  await r2.release()
  await (await writer).release()
  assert.equal(b.isBusy('{o:1}:y'), false)
})

test("a name such as '{billing}' tags every key: any keys lock together, each its own lock, on the slot of the user's {billing} keys", async (t) => {
  const a = new AsyncLock({ redis: urls, name: '{billing}', ttl: 3000 })
  const b = new AsyncLock({ redis: urls, name: '{billing}', ttl: 3000 })
  t.after(() => Promise.all([a.close(), b.close()]))
  // 'acct:q' used to be the name of acct's queue.
  const both = await a.lock(['acct', 'acct:q', 'other'])
  assert.equal(both.tokens.length, 3)
  const waiting = b.lock('acct:q', { timeout: 5000 })
  await sleep(100)
  await both.release()
  const next = await waiting
  const alone = await a.lock('acct', { timeout: 1000 })
  await Promise.all([next.release(), alone.release()])
  // Redis itself puts the lock's keys on the slot of the user's own
  // {billing} / {order:1} keys, and every structure of a lock on one slot.
  const keyslot = (k) => nodes[0].command('CLUSTER', 'KEYSLOT', k)
  for (const [space, key, tag] of [['{billing}', 'acct', '{billing}'], ['c', '{order:1}:items', '{order:1}'], ['', 'plain', null]]) {
    const slots = await Promise.all(lockKeys('keyed-lock', space, key).map(keyslot))
    assert.equal(new Set(slots).size, 1, `${space}/${key}: one slot for lease, meta, queue and waiters`)
    if (tag !== null) assert.equal(slots[0], await keyslot(tag))
  }
})

test('an ACL user on every node: each node connection authenticates; a wrong password is an authentication failure', async (t) => {
  for (const n of nodes) await n.command('ACL', 'SETUSER', 'clocker', 'on', '>clockerSECRET', '~*', '&*', '+@all')
  t.after(() => Promise.all(nodes.map((n) => n.command('ACL', 'DELUSER', 'clocker'))))
  const authed = nodes.map((n) => `redis://clocker:clockerSECRET@127.0.0.1:${n.port}`)
  const a = new AsyncLock({ redis: authed, name: 'acl' })
  const b = new AsyncLock({ redis: authed, name: 'acl', prefix: 'keyed-lock' })
  t.after(() => Promise.all([a.close(), b.close()]))
  // Names spread over the slots, so every master is written to, and a
  // contended hand-off on each (grants travel by PUBLISH on the nodes).
  const names = Array.from({ length: 12 }, (_, i) => `acl-${i}`)
  for (const name of names) {
    const held = await a.lock(name, { timeout: 3000 })
    const next = b.lock(name, { timeout: 3000 })
    await held.release()
    const lease = await next
    assert.ok(lease.token > held.token)
    await lease.release()
  }
  // Every master has a connection of keyed-lock's, logged in as the ACL user.
  for (const n of nodes) assert.match(await n.command('CLIENT', 'LIST'), /user=clocker/, `node ${n.port}`)
  const wrong = new AsyncLock({ redis: nodes.map((n) => `redis://clocker:wrongSECRET@127.0.0.1:${n.port}`), name: 'acl' })
  await assert.rejects(wrong.lock('x', { timeout: 3000 }), (err) => {
    assert.equal(err.code, 'KEYED_LOCK_REDIS')
    assert.match(err.message, /authentication failed/)
    assert.ok(!err.message.includes('SECRET'))
    return true
  })
  await wrong.close()
})

test('a node down and back: an acquisition started meanwhile waits for it within its timeout, as on one Redis; past it, the usual timeout', { timeout: 60000 }, async (t) => {
  // The harness's kill9() awaits an unref'd child's exit: keep the loop alive.
  const keep = setInterval(() => {}, 1000)
  t.after(() => clearInterval(keep))
  const lock = new AsyncLock({ redis: urls, name: 'node-down' })
  t.after(() => lock.close())
  await (await lock.lock('k', { timeout: 5000 })).release() // connected, slots known
  // The node that serves the lock's keys.
  const slot = await nodes[0].command('CLUSTER', 'KEYSLOT', lockKeys('keyed-lock', 'node-down', 'k')[0])
  const ranges = await nodes[0].command('CLUSTER', 'SLOTS')
  const owner = ranges.find(([from, to]) => slot >= from && slot <= to)[2][1]
  const node = nodes.find((n) => n.port === Number(owner))
  await node.kill9()
  const waiting = lock.lock('k', { timeout: 15000 })
  await sleep(1000)
  await node.restart() // the same nodes.conf: it comes back with its slots
  const lease = await waiting
  assert.ok(lease.token > 0)
  await lease.release()
  await node.kill9()
  const started = Date.now()
  await assert.rejects(lock.lock('k', { timeout: 800 }), { message: 'async-lock timed out in queue k' })
  assert.ok(Date.now() - started < 800 + 1500, `rejected after ${Date.now() - started} ms`)
  await node.restart()
  const deadline = Date.now() + 20000
  while (!/cluster_state:ok/.test(await node.command('CLUSTER', 'INFO'))) {
    assert.ok(Date.now() < deadline, 'the cluster came back')
    await sleep(100)
  }
})
