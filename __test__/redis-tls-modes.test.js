'use strict'
// Issue 14: TLS in the two modes that open more connections than one: a
// Sentinel-managed master (sentinels, master and replica all on TLS ports;
// keyed-lock follows a failover over TLS) and a Redis Cluster whose nodes
// take clients and talk to each other over TLS (keyed-lock reaches every
// node it discovers over TLS). The CA and certificates are made with the
// openssl CLI (./helpers/tls.js); each server also has a plain port, which
// only the harness uses.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const AsyncLock = require('../index.js')
const { startRedis, freePort } = require('../support/redis-harness')
const { makeCertificates, tlsArgs } = require('./helpers/tls')
const { startSentinel, until, untilSentinelsReady, sleep } = require('./helpers/sentinel')

let certs
let tmp
const stops = []
// Servers are unref'd children: a wait on one alone would not keep the test alive.
let alive

before(() => {
  alive = setInterval(() => {}, 1000)
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keyed-lock-tls-modes-'))
  certs = makeCertificates(tmp)
})

after(async () => {
  clearInterval(alive)
  await Promise.all(stops.map((stop) => stop()))
  fs.rmSync(tmp, { recursive: true, force: true })
})

/** A redis-server with a TLS port (`server.tlsPort`) beside the harness's plain one. */
async function startTls(args = []) {
  const tlsPort = await freePort()
  const server = await startRedis({ args: [...tlsArgs(certs, tlsPort), ...args] })
  server.tlsPort = tlsPort
  stops.push(() => server.stop())
  return server
}

const evalCalls = async (server) => {
  const info = await server.command('INFO', 'commandstats')
  let total = 0
  for (const m of info.matchAll(/cmdstat_(eval|evalsha):calls=(\d+)/g)) total += Number(m[2])
  return total
}

test('Sentinel over TLS: the master is found through rediss:// sentinels, and followed across a failover', { timeout: 60000 }, async (t) => {
  const master = await startTls(['--tls-replication', 'yes'])
  const replica = await startTls(['--tls-replication', 'yes'])
  // The replica tells the master (and so the sentinels) its TLS port.
  await replica.command('CONFIG', 'SET', 'replica-announce-port', String(replica.tlsPort))
  await replica.command('REPLICAOF', '127.0.0.1', String(master.tlsPort))
  await until('the replica to sync over TLS', async () => /master_link_status:up/.test(await replica.command('INFO', 'replication')))
  const trio = []
  for (let i = 0; i < 3; i++) {
    const tlsPort = await freePort()
    const conf = [
      `tls-port ${tlsPort}`,
      `tls-cert-file ${path.join(certs.dir, 'server.crt')}`,
      `tls-key-file ${path.join(certs.dir, 'server.key')}`,
      `tls-ca-cert-file ${path.join(certs.dir, 'ca.crt')}`,
      'tls-auth-clients no',
      'tls-replication yes',
      `sentinel announce-port ${tlsPort}`,
    ]
    const sentinel = await startSentinel(master.tlsPort, { conf })
    sentinel.tlsPort = tlsPort
    stops.push(() => sentinel.stop())
    trio.push(sentinel)
  }
  await untilSentinelsReady(trio)

  const lock = new AsyncLock({
    redis: { sentinels: trio.map((s) => `rediss://127.0.0.1:${s.tlsPort}`), name: 'mymaster' },
    tls: { ca: certs.ca },
    name: 'tls-sentinel',
  })
  t.after(() => lock.close())
  const before = await evalCalls(master)
  const lease = await lock.lock('k', { timeout: 5000 })
  await lease.release()
  assert.ok((await evalCalls(master)) > before, 'locked on the master, over TLS')
  // The facades read the same from an ioredis Sentinel client with TLS to
  // the sentinels (enableTLSForSentinelMode) and to the master (tls).
  const Locky = require('../locky.js')
  const ioredisLike = {
    set() {},
    options: { sentinels: trio.map((s) => ({ host: '127.0.0.1', port: s.tlsPort })), name: 'mymaster', enableTLSForSentinelMode: true, tls: { ca: certs.ca } },
  }
  const locky = new Locky({ redis: ioredisLike })
  const viaFacade = await evalCalls(master)
  assert.equal(await locky.lock([{ resource: 'r', locker: 'me' }]), true)
  await locky.close()
  assert.ok((await evalCalls(master)) > viaFacade, 'Locky locked on the master, over TLS')

  await master.kill9()
  // Started with no master: waits for the new one (announced over TLS).
  const started = performance.now()
  const next = await lock.lock('k', { timeout: 20000 })
  const waited = performance.now() - started
  assert.ok(next.token > lease.token, `${next.token} > ${lease.token}`)
  assert.ok((await evalCalls(replica)) > 0, 'locked on the promoted replica, over TLS')
  await next.release()
  t.diagnostic(`kill to grant on the new master, over TLS: ${Math.round(waited)} ms`)
})

test('a Redis Cluster over TLS: every node is reached over TLS, grants and hand-offs work', { timeout: 60000 }, async (t) => {
  const nodes = []
  for (let i = 0; i < 3; i++) {
    // The cluster bus defaults to port + 10000, past 65535 for high ports.
    const busPort = await freePort()
    const node = await startTls(['--tls-cluster', 'yes', '--tls-replication', 'yes', '--cluster-enabled', 'yes',
      '--cluster-port', String(busPort), '--cluster-node-timeout', '5000'])
    node.busPort = busPort
    nodes.push(node)
  }
  const ranges = [[0, 5460], [5461, 10922], [10923, 16383]]
  for (let i = 0; i < 3; i++) await nodes[i].command('CLUSTER', 'ADDSLOTSRANGE', ranges[i][0], ranges[i][1])
  for (const other of nodes.slice(1)) await nodes[0].command('CLUSTER', 'MEET', '127.0.0.1', other.tlsPort, other.busPort)
  await until('cluster_state:ok on every node', async () => {
    const states = await Promise.all(nodes.map((n) => n.command('CLUSTER', 'INFO')))
    return states.every((s) => /cluster_state:ok/.test(s))
  }, 30000)

  // One seed node: the others are discovered (their TLS ports) and reached over TLS.
  const a = new AsyncLock({ redis: [`rediss://127.0.0.1:${nodes[0].tlsPort}`], tls: { ca: certs.ca }, name: 'tls-cluster', ttl: 3000 })
  const b = new AsyncLock({ redis: [`rediss://127.0.0.1:${nodes[1].tlsPort}`], tls: { ca: certs.ca }, name: 'tls-cluster', ttl: 3000 })
  t.after(() => Promise.all([a.close(), b.close()]))
  for (let i = 0; i < 12; i++) await (await a.lock(`{tag${i}}:k`, { timeout: 5000 })).release()
  const calls = await Promise.all(nodes.map(evalCalls))
  assert.ok(calls.every((n) => n > 0), `every node ran a lock script: ${calls}`)
  // A contended hand-off: the grant travels by PUBLISH over the TLS connections.
  const held = await a.lock('{order}:x', { timeout: 5000 })
  const waiting = b.lock('{order}:x', { timeout: 5000 })
  await sleep(100)
  await held.release()
  const next = await waiting
  assert.ok(next.token > held.token)
  await next.release()
  // A wrong CA is refused on a cluster too, naming the certificate failure.
  const wrong = new AsyncLock({ redis: [`rediss://127.0.0.1:${nodes[2].tlsPort}`], tls: { ca: certs.other }, name: 'tls-cluster' })
  await assert.rejects(wrong.lock('{x}', { timeout: 3000 }), (err) => err.code === 'KEYED_LOCK_REDIS' && /certificate/i.test(err.message))
  await wrong.close()
})
