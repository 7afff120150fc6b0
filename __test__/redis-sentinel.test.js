'use strict'
// Issue 14 point 3: a Sentinel-managed master (`redis: { sentinels, name }`)
// with a real master, one replica and three sentinels started here
// (shortened down-after-milliseconds / failover-timeout). Four processes
// hold and hand off one lock; the master is SIGKILLed; the sentinels promote
// the replica and keyed-lock follows: waiters are served on the new master,
// holders whose lease did not survive get LockLostError, and fencing tokens
// keep increasing across the failover. The kill-to-first-grant time is
// reported.

const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { fork } = require('node:child_process')
const AsyncLock = require('../index.js')
const Locky = require('../locky.js')
const ExclusiveLock = require('../exclusive-lock.js')
const { startRedis } = require('../support/redis-harness')
const { startSentinel: startOne, until, untilSentinelsReady, sleep } = require('./helpers/sentinel')

const WORKER = path.join(__dirname, 'fixtures', 'sentinel-worker.js')
const sentinels = []
after(async () => {
  await Promise.all(sentinels.map((s) => s.stop()))
})
async function startSentinel(masterPort) {
  const s = await startOne(masterPort)
  sentinels.push(s)
  return s
}

test('Sentinel: 4 processes hand a lock off while the master is SIGKILLed; keyed-lock follows the promotion', { timeout: 120000 }, async (t) => {
  const master = await startRedis()
  const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] })
  t.after(() => Promise.all([master.stop(), replica.stop()]))
  await until('the replica to sync', async () => /master_link_status:up/.test(await replica.command('INFO', 'replication')))
  const trio = [await startSentinel(master.port), await startSentinel(master.port), await startSentinel(master.port)]
  await untilSentinelsReady(trio)
  const sentinelUrls = trio.map((s) => s.url)

  // The address comes from the sentinels: a lock works before any failover.
  const probe = new AsyncLock({ redis: { sentinels: sentinelUrls, name: 'mymaster' }, name: 'probe' })
  const first = await probe.lock('p', { timeout: 5000 })
  await first.release()
  // keyed-lock listens to every sentinel's +switch-master (a failover is
  // followed when it is announced, not at the next failed command) ...
  const subscribed = async () => {
    const counts = []
    for (const s of trio) counts.push((await s.command('CLIENT', 'LIST')).split('\n').filter((l) => / sub=1 /.test(l)).length)
    return counts
  }
  await until('a +switch-master subscription on every sentinel', async () => (await subscribed()).every((n) => n === 1))
  await probe.close()
  // ... and close() closes those connections too.
  await until('the subscriptions closed with the lock', async () => (await subscribed()).every((n) => n === 0), 5000)
  // The same master by URL: redis+sentinel://host:port,host:port/name, on
  // AsyncLock and on a facade.
  const sentinelUrl = `redis+sentinel://${trio.map((s) => `127.0.0.1:${s.port}`).join(',')}/mymaster`
  const byUrl = new AsyncLock({ redis: sentinelUrl, name: 'probe' })
  await (await byUrl.lock('p', { timeout: 5000 })).release()
  await byUrl.close()
  const lockyByUrl = new Locky({ redis: sentinelUrl })
  assert.equal(await lockyByUrl.lock([{ resource: 'u', locker: 'me' }]), true)
  await lockyByUrl.close()
  const evalsOnMaster = async () => Number((/cmdstat_evalsha:calls=(\d+)/.exec(await master.command('INFO', 'commandstats')) || [0, 0])[1])
  let evals = await evalsOnMaster()
  assert.ok(evals > 0, 'the lock ran on the master')
  // The facades follow the Sentinel settings of an ioredis or node-redis client.
  // A real ioredis Sentinel client (never connected: keyed-lock only reads its options).
  const IORedis = require('ioredis')
  const ioredisSentinel = new IORedis({ sentinels: trio.map((s) => ({ host: '127.0.0.1', port: s.port })), name: 'mymaster', lazyConnect: true })
  t.after(() => ioredisSentinel.disconnect())
  const locky = new Locky({ redis: ioredisSentinel })
  assert.equal(await locky.lock([{ resource: 'r', locker: 'me' }]), true)
  await locky.close()
  assert.ok((await evalsOnMaster()) > evals, 'Locky locked on the master')
  evals = await evalsOnMaster()
  const nodeRedisSentinel = { set() {}, options: { name: 'mymaster', sentinelRootNodes: trio.map((s) => ({ host: '127.0.0.1', port: s.port })) } }
  const exclusive = new ExclusiveLock({ name: 'r', cache_connection: nodeRedisSentinel })
  await exclusive.acquire()
  await exclusive.release()
  assert.ok((await evalsOnMaster()) > evals, 'ExclusiveLock locked on the master')

  const events = []
  const workers = []
  for (let i = 0; i < 4; i++) {
    const child = fork(WORKER, [JSON.stringify({ sentinels: sentinelUrls, name: 'mymaster', hold: 400, ttl: 200 })], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    const done = new Promise((resolve) => child.on('exit', resolve))
    child.on('message', (m) => events.push({ ...m, worker: i }))
    workers.push({ child, done })
  }
  t.after(() => workers.forEach((w) => w.child.exitCode === null && w.child.kill('SIGKILL')))
  const grants = () => events.filter((e) => e.kind === 'grant')
  await until('hand-offs before the kill', () => grants().length >= 12)

  const killAt = Date.now()
  await master.kill9()
  // When the sentinels name the new master: the floor for the first grant.
  let switchedAt = null
  ;(async () => {
    while (switchedAt === null && Date.now() - killAt < 60000) {
      const addr = await trio[0].command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster').catch(() => null)
      if (addr && addr[1] === String(replica.port)) switchedAt = Date.now()
      else await sleep(20)
    }
  })()
  await until('a grant after the kill', () => grants().some((g) => g.at > killAt), 60000)
  const firstAfter = grants().find((g) => g.at > killAt)
  const promoted = await trio[0].command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster')
  assert.deepEqual(promoted, ['127.0.0.1', String(replica.port)], 'the sentinels promoted the replica')
  // Every worker is served on the new master.
  const failed = () => {
    const errors = events.filter((e) => e.kind === 'error')
    if (errors.length !== 0) throw new Error(`an acquisition failed instead of waiting for the new master: ${JSON.stringify(errors)}`)
  }
  await until('every worker served after the failover', () => failed() || new Set(grants().filter((g) => g.at > killAt).map((g) => g.worker)).size === 4, 30000)
  // Some acquisitions started while there was no master to ask (the holder
  // at the kill asks again once its hold ends): they waited, as the
  // assertion below on errors shows.
  const askedDuringOutage = events.filter((e) => e.kind === 'asking' && e.at > killAt && e.at < firstAfter.at).length
  assert.ok(askedDuringOutage >= 1, 'an acquisition was started between the kill and the first grant on the new master')
  await sleep(1500)
  for (const w of workers) w.child.send('stop')
  await Promise.all(workers.map((w) => w.done))

  // Fencing tokens strictly increase in grant order, across the failover.
  const ordered = grants().sort((a, b) => a.at - b.at || a.token - b.token)
  for (let i = 1; i < ordered.length; i++) {
    assert.ok(ordered[i].token > ordered[i - 1].token, `token ${ordered[i].token} after ${ordered[i - 1].token}`)
  }
  // A holder still in its critical section at the kill either kept its
  // lease (the replica had it: released on the new master) or got
  // LockLostError (its watchdog could not renew it within the ttl). A
  // release already under way at the kill may fail (keyed-lock retries it in
  // the background); that holder was done with the lock.
  const ended = (token) => events.filter((e) => e.token === token && e.kind !== 'grant')
  let lostCount = 0
  let heldAtKill = 0
  for (const g of ordered.filter((g) => g.at <= killAt)) {
    const outcome = ended(g.token)
    const releasing = outcome.find((e) => e.kind === 'releasing')
    if (releasing && releasing.at <= killAt) continue
    heldAtKill++
    const survived = outcome.some((e) => e.kind === 'released' && e.released === true)
    const lost = outcome.some((e) => e.kind === 'lost' && e.name === 'LockLostError')
    if (lost) lostCount++
    assert.ok(survived || lost, `lease ${g.token} held at the kill: ${JSON.stringify(outcome)}`)
  }
  assert.equal(heldAtKill <= 1, true, 'one holder at a time')
  // Acquisitions started while the master was gone waited for the new one
  // (the workers do not retry a failed acquisition).
  assert.deepEqual(events.filter((e) => e.kind === 'error'), [])
  t.diagnostic(
    `kill to first grant on the new master: ${firstAfter.at - killAt} ms (the sentinels named it at ${switchedAt - killAt} ms); grants: ${ordered.length}; ` +
      `held at the kill: ${heldAtKill}, lost (LockLostError): ${lostCount}; acquisitions started during the outage: ${askedDuringOutage}, failed: 0; tokens strictly increasing`,
  )
})

test('Sentinel option: TypeErrors naming what is wrong', () => {
  const bad = [
    [{ name: 'mymaster' }, /sentinels/],
    [{ sentinels: [], name: 'mymaster' }, /sentinels/],
    [{ sentinels: ['redis://127.0.0.1:26379'] }, /name/],
    [{ sentinels: ['redis://127.0.0.1:26379'], name: 'm', host: 'x' }, /"redis"\.host/],
    [{ sentinels: [42], name: 'm' }, /sentinels\[0\]/],
    ['redis+sentinel://127.0.0.1:26379', /redis\+sentinel:\/\//],
    ['redis+sentinel://127.0.0.1:26379/', /redis\+sentinel:\/\//],
  ]
  for (const [redis, message] of bad) {
    assert.throws(() => new AsyncLock({ redis }), (err) => err instanceof TypeError && message.test(err.message))
  }
})
