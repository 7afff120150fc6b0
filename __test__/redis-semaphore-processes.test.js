'use strict'
// Counted keys on the Redis reach across real processes (docs/semaphores.md):
// children run __test__/fixtures/redis-sem-worker.js, each with its own
// keyed-lock client, connection, grant channel and watchdog. Four of them
// hammer random keys with random weights and modes and check the invariants
// from inside every critical section (a counter per key in Redis); then a
// shared holder and a waiter are killed with SIGKILL.
//
// Times are ms on the monotonic clock every process shares (process.hrtime).
// Each test starts its own redis-server; after() stops them and SIGKILLs by
// pid any worker still alive.

const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { startRedis } = require('../support/redis-harness')
const { lockKey } = require('./redis-keys')
const { waitFor } = require('./helpers')

const { spawnWorker: forkWorker } = require('./helpers/fork-worker')
const WORKER = path.join(__dirname, 'fixtures', 'redis-sem-worker.js')
const CALL_TIMEOUT_MS = 30000
/** src/redis/mod.rs LIVENESS and RECHECK: a dead waiter is reaped within these. */
const LIVENESS_MS = 3000
const RECHECK_MS = 1000

const now = () => Number(process.hrtime.bigint()) / 1e6
const QUEUE = lockKey('keyed-lock', 'n', 'k', 'o')
const HOLDERS = lockKey('keyed-lock', 'n', 'k', 'h')

const workers = new Set()
const servers = new Set()

after(async () => {
  for (const w of workers) w.kill()
  await Promise.all([...workers].map((w) => w.exited))
  await Promise.all([...servers].map((s) => s.stop()))
})

async function server() {
  const s = await startRedis()
  servers.add(s)
  return s
}

function spawnWorker(label) {
  return forkWorker(WORKER, label, { workers, timeoutMs: CALL_TIMEOUT_MS })
}

/** `n` workers, each with a lock named 'n' of `permits` on `url`, warmed up. */
async function spawnLocks(n, url, { permits, ttl }) {
  const out = await Promise.all(Array.from({ length: n }, (_, i) => spawnWorker(`w${i + 1}`)))
  await Promise.all(out.map((w) => w.call('open', { url, name: 'n', ttl, permits })))
  await Promise.all(out.map((w) => w.call('warm', { key: 'warm' })))
  return out
}

const waitQueued = (s, count) => waitFor(`${count} waiter(s) in ${QUEUE}`, async () => (await s.command('ZCARD', QUEUE)) === count)

test('4 processes, random keys, weights and modes: never more than N out, an exclusive holder alone, tokens increase per key', async () => {
  const s = await server()
  const permits = 3
  const ws = await spawnLocks(4, s.url, { permits, ttl: 1000 })
  const seed = Date.now() % 100000
  const results = await Promise.all(ws.map((w, i) => w.call('stress', { keys: ['a', 'b', 'c'], n: 30, seed: seed + i, hold: [1, 4] })))
  await Promise.all(ws.map((w) => w.close()))
  const violations = results.flatMap((r) => r.violations)
  assert.deepEqual(violations, [], `seed ${seed}`)

  // The same invariants from the sections' times, per key: a sweep over
  // every start and end never finds more than N permits out.
  const records = results.flatMap((r) => r.records)
  assert.equal(records.length, 120)
  for (const key of ['a', 'b', 'c']) {
    const sections = []
    for (const r of records) {
      const at = r.keys.indexOf(key)
      if (at >= 0) sections.push({ weight: r.weights[at], token: r.tokens[at], start: r.start, end: r.end })
    }
    const events = sections.flatMap((x) => [[x.start, x.weight], [x.end, -x.weight]]).sort((p, q) => p[0] - q[0] || p[1] - q[1])
    let out = 0
    for (const [, delta] of events) {
      out += delta
      assert.ok(out <= permits, `${key}: ${out} permits out (seed ${seed})`)
    }
    // Every grant has its own token; a section that ended before another
    // began was granted before it, with a smaller token.
    assert.equal(new Set(sections.map((x) => x.token)).size, sections.length, `${key}: distinct tokens`)
    const byEnd = [...sections].sort((p, q) => p.end - q.end)
    let maxEnded = -Infinity
    let i = 0
    for (const x of [...sections].sort((p, q) => p.start - q.start)) {
      while (i < byEnd.length && byEnd[i].end < x.start) maxEnded = Math.max(maxEnded, byEnd[i++].token)
      assert.ok(x.token > maxEnded, `${key}: token ${x.token} after a section with token ${maxEnded} (seed ${seed})`)
    }
  }
  assert.equal(await s.command('EXISTS', lockKey('keyed-lock', 'n', 'a', 'h')), 0, 'no holder left')
})

test('a SIGKILLed shared holder: its permits come back when its lease runs out', async (t) => {
  const s = await server()
  const ttl = 600
  const [a, b, c] = await spawnLocks(3, s.url, { permits: 2, ttl })
  await a.call('take', { tag: 'x', key: 'k', opts: { mode: 'shared' } })
  await b.call('take', { tag: 'x', key: 'k', opts: { mode: 'shared' } })
  const exclusive = c.call('take', { tag: 'x', key: 'k', opts: { mode: 'exclusive' } })
  await waitQueued(s, 1)
  await a.kill()
  const killedAt = now()
  await b.call('release', { tag: 'x' })
  // What is left is the dead holder's lease: read when Redis will drop it.
  const left = await s.command('HGETALL', HOLDERS)
  const records = []
  for (let i = 0; i < left.length; i += 2) if (left[i] !== '#') records.push(left[i + 1])
  assert.equal(records.length, 1, 'the dead holder still counts')
  const [sec, usec] = await s.command('TIME')
  const readAt = now()
  const remaining = Number(records[0].split('|')[0]) - (Number(sec) * 1000 + Math.floor(Number(usec) / 1000))
  assert.ok(remaining > 0 && remaining <= ttl, `the lease has ${remaining} ms left, at most its ttl`)
  const granted = await exclusive
  const waited = granted.at - readAt
  t.diagnostic(`SIGKILLed shared holder: the exclusive waiter was granted ${Math.round(granted.at - killedAt)} ms after the kill (ttl ${ttl} ms; ${Math.round(remaining)} ms of the lease were left after the other holder released)`)
  assert.ok(waited >= remaining - 25, `not granted before the dead holder's lease ran out (${waited} < ${remaining} ms)`)
  assert.ok(waited <= remaining + RECHECK_MS + 1000, `granted within a re-check of the lease's end (${waited} ms for ${remaining} ms)`)
  await c.call('release', { tag: 'x' })
  await Promise.all([b.close(), c.close()])
})

test('a SIGKILLed waiter: the queue moves on without it', async (t) => {
  const s = await server()
  const ttl = 600
  const [a, dead, c] = await spawnLocks(3, s.url, { permits: 2, ttl })
  await a.call('take', { tag: 'x', key: 'k', opts: { mode: 'exclusive' } })
  const doomed = dead.call('take', { tag: 'x', key: 'k', opts: { mode: 'shared' } })
  doomed.catch(() => {})
  await waitQueued(s, 1)
  const next = c.call('take', { tag: 'x', key: 'k', opts: { mode: 'exclusive' } })
  await waitQueued(s, 2)
  await dead.kill()
  const killedAt = now()
  await a.call('release', { tag: 'x' })
  const granted = await next
  const waited = granted.at - killedAt
  t.diagnostic(`SIGKILLed waiter: the next waiter was granted ${Math.round(waited)} ms after the kill (liveness ${LIVENESS_MS} ms, ttl ${ttl} ms)`)
  // Released at once, the dead waiter still looked alive and was handed a
  // permit for at most min(ttl, CLAIM); else it was reaped first.
  assert.ok(waited <= Math.max(LIVENESS_MS, ttl) + RECHECK_MS + 1500, `${waited} ms`)
  await c.call('release', { tag: 'x' })
  await Promise.all([a.close(), c.close()])
  await waitFor('no holder left', async () => (await s.command('EXISTS', HOLDERS)) === 0)
})
