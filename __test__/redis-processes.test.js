'use strict'
// The Redis reach across real processes: every test forks children running
// __test__/fixtures/redis-worker.js, each with its own keyed-lock client (its
// own connection, grant channel and watchdog), and drives them over IPC.
// What one process cannot show: exclusion and fencing between clients,
// FIFO between processes, the hand-off's command count, and what a SIGKILL
// of a holder or of a waiter leaves behind.
//
// Times are in ms on the monotonic clock every process shares
// (process.hrtime; fixtures/redis-worker.js says why not timeOrigin +
// performance.now()). Each test starts its own throwaway redis-server; the
// file's after() stops them, and SIGKILLs by pid any worker still alive.

const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const path = require('node:path')
const { startRedis, freePort } = require('../support/redis-harness')
const { lockKey } = require('./redis-keys')

const { spawnWorker: forkWorker } = require('./helpers/fork-worker')
const WORKER = path.join(__dirname, 'fixtures', 'redis-worker.js')
const CALL_TIMEOUT_MS = 20000

const now = () => Number(process.hrtime.bigint()) / 1e6
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const { waitFor } = require('./helpers')

// Lock name 'n' with the default prefix: key 'k' lives in these Redis keys
// (src/redis/lua/common.lua has the layout).
const LEASE = lockKey('keyed-lock', 'n', 'k', 'l')
const QUEUE = lockKey('keyed-lock', 'n', 'k', 'q')

// ------------------------------------------------------------- helpers ----

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

/** Forks `n` workers, each with a lock on `url` named 'n'. */
async function spawnLocks(n, url, { ttl = 2000, label = 'w', ...rest } = {}) {
  const out = await Promise.all(Array.from({ length: n }, (_, i) => spawnWorker(`${label}${i + 1}`)))
  await Promise.all(out.map((w) => w.call('open', { url, name: 'n', ttl, ...rest })))
  return out
}

const waitQueued = (s, count, queue = QUEUE) =>
  waitFor(`${count} waiter(s) in ${queue}`, async () => (await s.command('ZCARD', queue)) === count)

/** Asserts that intervals [start, end] do not overlap; returns them sorted by start. */
function assertExclusive(records, what) {
  const sorted = [...records].sort((a, b) => a.start - b.start)
  let last = null
  for (const r of sorted) {
    assert.ok(r.end >= r.start, `${what}: an interval ends before it starts`)
    if (last !== null) {
      assert.ok(
        r.start >= last.end,
        `${what}: overlap: [${last.start.toFixed(3)}, ${last.end.toFixed(3)}] (${last.who}) and ` +
          `[${r.start.toFixed(3)}, ${r.end.toFixed(3)}] (${r.who})`,
      )
    }
    if (last === null || r.end > last.end) last = r
  }
  return sorted
}


/** `cmdstat_<name>` -> calls, from INFO commandstats. */
async function commandStats(s) {
  const info = await s.command('INFO', 'commandstats')
  const calls = new Map()
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1], Number(m[2]))
  return calls
}

/**
 * A MONITOR connection: every command the server runs, with where it came
 * from ("lua" for the commands a script runs). `between(a, b)` gives the
 * lines after the ECHO of marker a and before the ECHO of marker b.
 */
async function monitor(port) {
  const socket = net.createConnection({ host: '127.0.0.1', port })
  socket.setEncoding('utf8')
  const lines = []
  let buf = ''
  socket.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\r\n')) >= 0) {
      lines.push(buf.slice(0, i))
      buf = buf.slice(i + 2)
    }
  })
  socket.on('error', () => {})
  socket.write('MONITOR\r\n')
  await waitFor('MONITOR to start', () => lines[0] === '+OK')
  const parse = (line) => {
    const m = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]*)"(?: "([^"]*)")?/.exec(line)
    return m === null ? null : { source: m[1], command: m[2].toLowerCase(), arg: m[3] }
  }
  const indexOfEcho = (marker) => lines.findIndex((l) => {
    const p = parse(l)
    return p !== null && p.command === 'echo' && p.arg === marker
  })
  return {
    async between(a, b) {
      await waitFor(`MONITOR to see ${b}`, () => indexOfEcho(b) >= 0)
      return lines.slice(indexOfEcho(a) + 1, indexOfEcho(b)).map(parse).filter((p) => p !== null)
    },
    stop() {
      socket.destroy()
    },
  }
}

// --------------------------------------------------------------- tests ----

test('mutual exclusion and monotonic fencing from 4 processes', { timeout: 40000 }, async () => {
  const s = await server()
  const N = 50
  const ws = await spawnLocks(4, s.url, { ttl: 2000 })
  for (const w of ws) await w.call('warm', { key: 'k' })
  const t0 = now()
  const results = await Promise.all(ws.map((w) => w.call('relay', { key: 'k', n: N, hold: [1, 3] })))
  const elapsed = now() - t0
  const records = results.flatMap((rs, i) => rs.map((r) => ({ ...r, who: ws[i].label })))
  assert.equal(records.length, 4 * N)

  const sorted = assertExclusive(records, 'key k')
  // Fencing: in grant order the tokens strictly increase...
  for (let i = 1; i < sorted.length; i++) {
    assert.ok(
      sorted[i].token > sorted[i - 1].token,
      `token ${sorted[i].token} (${sorted[i].who}) granted after ${sorted[i - 1].token} (${sorted[i - 1].who})`,
    )
    assert.ok(Number.isSafeInteger(sorted[i].token))
  }
  // ...so a store that refuses a token lower than the highest it has seen refuses no write.
  let highest = -Infinity
  const refused = []
  for (const r of sorted) {
    if (r.token < highest) refused.push(r)
    else highest = r.token
  }
  assert.deepEqual(refused, [])
  const gaps = sorted.slice(1).map((r, i) => r.start - sorted[i].end)
  gaps.sort((a, b) => a - b)
  console.log(
    `# 4 processes x ${N}: ${records.length} grants in ${elapsed.toFixed(0)} ms; ` +
      `hand-off gap min ${gaps[0].toFixed(3)} ms, median ${gaps[gaps.length >> 1].toFixed(3)} ms`,
  )
  await Promise.all(ws.map((w) => w.close()))
})

test('FIFO across processes: waiters are granted in the order they queued', { timeout: 30000 }, async () => {
  const s = await server()
  const [holder, ...ps] = await spawnLocks(5, s.url, { ttl: 5000, label: 'p' })
  await holder.call('lock', { tag: 'h', key: 'k' })
  const grants = []
  for (let i = 0; i < ps.length; i++) {
    grants.push(ps[i].call('lock', { tag: 'x', key: 'k', autoRelease: 5 }).then((g) => ({ ...g, who: `P${i + 1}` })))
    await waitQueued(s, i + 1)
  }
  assert.equal(await s.command('ZCARD', QUEUE), 4)
  const { released } = await holder.call('release', { tag: 'h' })
  assert.equal(released, true)
  const got = await Promise.all(grants)
  const order = [...got].sort((a, b) => a.at - b.at)
  assert.deepEqual(
    order.map((g) => g.who),
    ['P1', 'P2', 'P3', 'P4'],
  )
  for (let i = 1; i < order.length; i++) {
    assert.ok(order[i].token > order[i - 1].token, 'tokens increase in grant order')
    assert.ok(order[i].at >= order[i - 1].releasedAt, `${order[i].who} granted before ${order[i - 1].who} released`)
    assert.equal(order[i].released, true)
  }
  assert.equal(await s.command('ZCARD', QUEUE), 0)
  assert.equal(await s.command('EXISTS', LEASE), 0)
  await Promise.all([holder, ...ps].map((w) => w.close()))
})

test('two client commands per contended acquisition', { timeout: 30000 }, async () => {
  const s = await server()
  const N = 40
  // A ttl far above the run: no watchdog extension falls inside it.
  const ws = await spawnLocks(4, s.url, { ttl: 30000 })
  // Connected, subscribed, and every script the relay runs loaded.
  for (const w of ws) await w.call('warm', { key: 'k' })
  const mon = await monitor(s.port)
  try {
    await s.command('ECHO', 'keyed-lock-start')
    const before = await commandStats(s)
    const t0 = now()
    const results = await Promise.all(ws.map((w) => w.call('relay', { key: 'k', n: N, hold: [1, 1] })))
    const elapsed = now() - t0
    const afterStats = await commandStats(s)
    await s.command('ECHO', 'keyed-lock-end')
    const acquisitions = results.reduce((n, rs) => n + rs.length, 0)
    assert.equal(acquisitions, 4 * N)
    assertExclusive(
      results.flatMap((rs, i) => rs.map((r) => ({ ...r, who: ws[i].label }))),
      'key k',
    )

    const delta = (name) => (afterStats.get(name) || 0) - (before.get(name) || 0)
    const scripts = delta('evalsha') + delta('eval') + delta('eval_ro') + delta('evalsha_ro')
    // INFO commandstats also counts the commands a script runs (GET, SET,
    // ZRANGE, PUBLISH, TIME...): its total is the server's work, not the
    // client's commands. MONITOR tells them apart ([0 lua] vs a client address).
    const ignored = new Set(['info', 'ping', 'subscribe', 'hello', 'client', 'select', 'echo', 'monitor'])
    let serverTotal = 0
    for (const [name, calls] of afterStats) {
      if (!ignored.has(name.split('|')[0])) serverTotal += calls - (before.get(name) || 0)
    }
    const seen = await mon.between('keyed-lock-start', 'keyed-lock-end')
    const client = seen.filter((c) => c.source !== 'lua' && !ignored.has(c.command))
    const byCommand = {}
    for (const c of client) byCommand[c.command] = (byCommand[c.command] || 0) + 1

    const perAcq = scripts / acquisitions
    const clientPerAcq = client.length / acquisitions
    console.log(
      `# ${acquisitions} contended acquisitions by 4 processes in ${elapsed.toFixed(0)} ms: ` +
        `${perAcq.toFixed(3)} script calls (EVALSHA/EVAL) per acquisition; ` +
        `${clientPerAcq.toFixed(3)} client commands per acquisition (MONITOR: ${JSON.stringify(byCommand)}); ` +
        `${(serverTotal / acquisitions).toFixed(1)} server commands per acquisition counting those inside scripts`,
    )
    assert.ok(perAcq >= 2, `at least ACQUIRE and RELEASE per acquisition, got ${perAcq}`)
    assert.ok(perAcq <= 2.2, `script calls per acquisition: ${perAcq.toFixed(3)} > 2.2`)
    assert.ok(clientPerAcq <= 2.2, `client commands per acquisition: ${clientPerAcq.toFixed(3)} > 2.2 (${JSON.stringify(byCommand)})`)
  } finally {
    mon.stop()
  }
  await Promise.all(ws.map((w) => w.close()))
})

test('a SIGKILLed holder: the waiter in another process gets the key after the lease runs out', { timeout: 30000 }, async () => {
  const s = await server()
  const ttl = 1500
  const [holder, waiter] = await spawnLocks(2, s.url, { ttl })
  const held = await holder.call('lock', { tag: 'h', key: 'k' })
  const granted = waiter.call('lock', { tag: 'w', key: 'k' })
  await waitQueued(s, 1)
  // Past the first watchdog extension (ttl/3), so the lease was renewed.
  await sleep(ttl / 3 + 200)
  const killedAt = now()
  await holder.kill()
  const asked = now()
  const pttl = await s.command('PTTL', LEASE)
  assert.ok(pttl > 0, `the dead holder's lease is still in Redis (PTTL ${pttl})`)
  const g = await granted
  const delay = g.at - killedAt
  console.log(`# holder SIGKILLed: waiter granted ${delay.toFixed(0)} ms later (ttl ${ttl}, lease had ${pttl} ms left)`)
  assert.ok(delay < ttl + 3000, `granted ${delay.toFixed(0)} ms after the kill`)
  // Never while the dead holder's lease was still valid in Redis.
  assert.ok(g.at >= asked + pttl - 20, `granted ${(asked + pttl - g.at).toFixed(0)} ms before the dead lease ran out`)
  assert.ok(g.token > held.token)
  assert.equal((await waiter.call('release', { tag: 'w' })).released, true)
  await waiter.close()
})

test('a SIGKILLed waiter: the next live waiter is granted when the holder releases', { timeout: 30000 }, async () => {
  const s = await server()
  // The default ttl: a dead waiter must not block the key for it.
  const ttl = 10000
  const [holder, dead, live, holder2, dead2, live2] = await spawnLocks(6, s.url, { ttl })

  // Released at once: the dead waiter heartbeated less than LIVENESS (3 s)
  // ago, so the release hands it the lease, but only for the claim time
  // (3 s, not its 10 s ttl): the live waiter's re-check then finds it
  // expired.
  await holder.call('lock', { tag: 'h', key: 'k' })
  dead.call('lock', { tag: 'x', key: 'k' }).catch(() => {})
  await waitQueued(s, 1)
  const granted = live.call('lock', { tag: 'x', key: 'k' })
  await waitQueued(s, 2)
  await dead.kill()
  const { at: releasedAt } = await holder.call('release', { tag: 'h' })
  // Who has the lease now: with one waiter left queued, the dead one.
  const [leaseNow, queuedNow] = [await s.command('EXISTS', LEASE), await s.command('ZCARD', QUEUE)]
  const g = await granted
  const delay = g.at - releasedAt
  console.log(
    `# waiter SIGKILLed just before the release: the next waiter granted ${delay.toFixed(0)} ms after it (ttl ${ttl}); ` +
      (leaseNow === 1 && queuedNow === 1 ? 'the release had handed the lease to the dead waiter' : `lease ${leaseNow}, queued ${queuedNow} after the release`),
  )
  assert.ok(delay < 6500, `granted ${delay.toFixed(0)} ms after the release, not a ttl (${ttl} ms) later`)
  assert.equal((await live.call('release', { tag: 'x' })).released, true)

  // Released after LIVENESS: the dead waiter is reaped by the release itself.
  const k2 = 'k2'
  const q2 = lockKey('keyed-lock', 'n', 'k2', 'q')
  await holder2.call('lock', { tag: 'h', key: k2 })
  dead2.call('lock', { tag: 'x', key: k2 }).catch(() => {})
  await waitQueued(s, 1, q2)
  const granted2 = live2.call('lock', { tag: 'x', key: k2 })
  await waitQueued(s, 2, q2)
  await dead2.kill()
  await sleep(3300)
  const { at: releasedAt2 } = await holder2.call('release', { tag: 'h' })
  const g2 = await granted2
  const delay2 = g2.at - releasedAt2
  console.log(`# waiter SIGKILLed 3.3 s before the release: the next waiter granted ${delay2.toFixed(0)} ms after it`)
  assert.ok(delay2 < 1000, `granted ${delay2.toFixed(0)} ms after the release`)
  assert.equal(await s.command('ZCARD', q2), 0, 'the dead waiter was reaped')
  assert.equal((await live2.call('release', { tag: 'x' })).released, true)
  await Promise.all([holder, live, holder2, live2].map((w) => w.close()))
})

test('an unreachable Redis: acquire and lock reject naming the URL', { timeout: 30000 }, async () => {
  const port = await freePort()
  const url = `redis://127.0.0.1:${port}`
  const [w] = await spawnLocks(1, url)
  const timed = async (promise) => {
    const t0 = now()
    const err = await promise.then(
      () => assert.fail('resolved against a closed port'),
      (e) => e,
    )
    return { err, ms: now() - t0 }
  }

  const a = await timed(w.call('acquire', { key: 'k', mode: 'promise' }))
  console.log(`# acquire against ${url}: rejected in ${a.ms.toFixed(0)} ms: ${a.err.message}`)
  assert.ok(a.err.message.includes(url), a.err.message)
  assert.ok(a.ms < 6000, `rejected after ${a.ms.toFixed(0)} ms`)

  const c = await timed(w.call('acquire', { key: 'k', mode: 'callback' }))
  assert.ok(c.err.message.includes(url), c.err.message)
  assert.ok(c.ms < 6000, `rejected after ${c.ms.toFixed(0)} ms`)

  const l = await timed(w.call('lock', { tag: 'x', key: 'k', timeout: 500 }))
  console.log(`# lock({ timeout: 500 }) against ${url}: rejected in ${l.ms.toFixed(0)} ms: ${l.err.message}`)
  assert.ok(l.err.message.includes(url), l.err.message)
  assert.ok(l.ms < 6000, `rejected after ${l.ms.toFixed(0)} ms`)
  await w.close()
})

test("a lost lease's release frees nothing of the next holder's, and its signal aborts", { timeout: 30000 }, async () => {
  const s = await server()
  const ttl = 1000
  const [a, b] = await spawnLocks(2, s.url, { ttl })
  const heldA = await a.call('lock', { tag: 'a', key: 'k' })
  const valueA = await s.command('GET', LEASE)
  assert.ok(valueA !== null)
  const lostA = a.call('lost', { tag: 'a' })

  assert.equal(await s.command('DEL', LEASE), 1)
  const deletedAt = now()
  const heldB = await b.call('lock', { tag: 'b', key: 'k' })
  const valueB = await s.command('GET', LEASE)
  assert.ok(valueB !== null && valueB !== valueA, `B holds the lease key (${valueB})`)
  assert.ok(heldB.token > heldA.token)

  const lost = await lostA
  const sinceDel = lost.at - deletedAt
  console.log(`# A's lease.signal aborted ${sinceDel.toFixed(0)} ms after the DEL (ttl ${ttl}): ${lost.reason.message}`)
  assert.equal(lost.reason.name, 'LockLostError')
  assert.equal(lost.reason.code, 'ELOCKLOST')
  assert.equal(lost.isLockLostError, true)
  assert.equal(lost.reason.key, 'k')
  assert.equal(lost.reason.token, heldA.token)
  assert.ok(sinceDel < ttl + 500, `aborted ${sinceDel.toFixed(0)} ms after the DEL`)

  assert.equal((await a.call('release', { tag: 'a' })).released, false)
  assert.equal(await s.command('GET', LEASE), valueB, "A's release left B's lease alone")
  assert.equal((await b.call('release', { tag: 'b' })).released, true)
  assert.equal(await s.command('EXISTS', LEASE), 0)
  await Promise.all([a, b].map((w) => w.close()))
})

test('callback and promise mode, multi-key, maxPending and timeout across two processes', { timeout: 30000 }, async () => {
  const s = await server()
  const [x, y] = await spawnLocks(2, s.url, { ttl: 5000 })

  // Exclusion per key between single- and multi-key tasks, both modes, both processes.
  const plan = [
    [x, { key: 'a', mode: 'callback' }],
    [y, { key: ['b', 'a'], mode: 'promise' }],
    [x, { key: ['a', 'b'], mode: 'callback' }],
    [y, { key: 'b', mode: 'callback' }],
    [x, { key: 'b', mode: 'promise' }],
    [y, { key: 'a', mode: 'promise' }],
    [y, { key: ['a', 'b'], mode: 'callback' }],
    [x, { key: ['b', 'a'], mode: 'promise' }],
  ]
  const calls = []
  for (let round = 0; round < 3; round++) {
    plan.forEach(([w, args], i) => {
      const ret = `${w.label}-${round}-${i}`
      calls.push(w.call('acquire', { ...args, hold: 3, ret }).then((r) => ({ ...r, ret, keys: [].concat(args.key), who: ret })))
    })
  }
  const done = await Promise.all(calls)
  for (const r of done) assert.equal(r.value, r.ret, 'fn’s value reaches the caller')
  for (const key of ['a', 'b']) assertExclusive(done.filter((r) => r.keys.includes(key)), `key ${key}`)

  // maxPending counts waiters from every process.
  await x.call('lock', { tag: 'h', key: 'k' })
  const first = y.call('acquire', { key: 'k', mode: 'promise', ret: 'first', opts: { maxPending: 1 } })
  await waitQueued(s, 1)
  await assert.rejects(x.call('acquire', { key: 'k', mode: 'promise', opts: { maxPending: 1 } }), {
    message: 'Too many pending tasks in queue k',
  })
  await assert.rejects(x.call('acquire', { key: 'k', mode: 'callback', opts: { maxPending: 1 } }), {
    message: 'Too many pending tasks in queue k',
  })
  await assert.rejects(y.call('acquire', { key: ['j', 'k'], mode: 'promise', opts: { maxPending: 1 } }), {
    message: 'Too many pending tasks in queue k',
  })
  assert.equal(await s.command('ZCARD', QUEUE), 1, 'refused tasks did not join the queue')
  await x.call('release', { tag: 'h' })
  assert.equal((await first).value, 'first')

  // Timeouts: async-lock's message, and the waiter leaves the queue.
  await x.call('lock', { tag: 'h', key: 'k' })
  const timeouts = [
    y.call('acquire', { key: 'k', mode: 'promise', opts: { timeout: 300 } }),
    y.call('acquire', { key: 'k', mode: 'callback', opts: { timeout: 300 } }),
    y.call('acquire', { key: ['k', 'j'], mode: 'promise', opts: { timeout: 300 } }),
    y.call('lock', { tag: 't', key: 'k', timeout: 300 }),
  ]
  const t0 = now()
  const settled = await Promise.allSettled(timeouts)
  const waited = now() - t0
  for (const r of settled) {
    assert.equal(r.status, 'rejected')
    assert.equal(r.reason.message, 'async-lock timed out in queue k')
  }
  assert.ok(waited >= 250 && waited < 3000, `timed out after ${waited.toFixed(0)} ms`)
  assert.equal(await s.command('ZCARD', QUEUE), 0, 'timed-out waiters left the queue')
  assert.equal((await x.call('release', { tag: 'h' })).released, true)
  const free = await y.call('acquire', { key: 'k', mode: 'promise', ret: 'free' })
  assert.equal(free.value, 'free')
  await Promise.all([x, y].map((w) => w.close()))
})
