'use strict'
// Issue 17 against a real redis-server: hostile key names (defect 3), a
// waiter stalled while it is handed the key (4), a stalled multi-key waiter
// (5), what an idle key leaves in Redis (6), and the release of a lease that
// already ran out (9). Stalls are SIGSTOPs of worker processes
// (fixtures/redis-worker.js), stopped and continued by their pid only.
// Times are ms on the monotonic clock every process shares (process.hrtime).

const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { fork } = require('node:child_process')
const AsyncLock = require('../index.js')
const native = require('../lib/native')
const { RedisClient } = require('../lib/redis/client')
const { startRedis } = require('../support/redis-harness')
const { lockKey, lockKeys, scriptText } = require('./redis-keys')

const WORKER = path.join(__dirname, 'fixtures', 'redis-worker.js')
const now = () => Number(process.hrtime.bigint()) / 1e6
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const { waitFor } = require('./helpers')

const servers = new Set()
const workers = new Set()
after(async () => {
  for (const w of workers) {
    if (w.child.exitCode === null && w.child.signalCode === null) {
      w.child.kill('SIGCONT')
      w.child.kill('SIGKILL')
    }
  }
  await Promise.all([...workers].map((w) => w.exited))
  await Promise.all([...servers].map((s) => s.stop()))
})

async function server() {
  const s = await startRedis()
  servers.add(s)
  return s
}

/** A worker process with one AsyncLock (name 'n') on `url`; `call(op, args)` over IPC. */
async function worker(label, url, opts = {}) {
  const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const pending = new Map()
  let seq = 0
  const exited = new Promise((resolve) => child.on('exit', resolve))
  const w = {
    label,
    child,
    exited,
    call(op, args = {}) {
      const id = ++seq
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject })
        child.send({ id, op, ...args })
      })
    },
    stop: () => process.kill(child.pid, 'SIGSTOP'),
    cont: () => process.kill(child.pid, 'SIGCONT'),
  }
  child.on('exit', () => {
    for (const p of pending.values()) p.reject(new Error(`worker ${label} exited`))
    pending.clear()
  })
  await new Promise((resolve) => {
    child.on('message', (m) => {
      if (m.ready) return resolve()
      const p = pending.get(m.id)
      if (p === undefined) return
      pending.delete(m.id)
      if (m.ok) p.resolve(m.value)
      else p.reject(Object.assign(new Error(m.error.message), { code: m.error.code }))
    })
  })
  workers.add(w)
  await w.call('open', { url, name: 'n', ttl: 10000, ...opts })
  await w.call('warm', { key: 'warm-' + label })
  return w
}

const queueOf = (key, space = 'n') => lockKey('keyed-lock', space, key, 'q')
const waitQueued = (s, key, count) => waitFor(`${count} waiter(s) on ${key}`, async () => (await s.command('ZCARD', queueOf(key))) === count)

/** Asserts [at, end] intervals do not overlap. */
function assertExclusive(intervals, what) {
  const sorted = [...intervals].sort((a, b) => a.at - b.at)
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1], sorted[i]]
    assert.ok(
      b.at >= a.end,
      `${what}: ${b.who} was granted at ${b.at.toFixed(1)} while ${a.who} held it (${a.at.toFixed(1)}..${a.end.toFixed(1)}${a.lost ? ', then lost' : ''})`,
    )
  }
}

// ------------------------------------------------------------ defect 3 ----

test('keys: the pairs that aliased are distinct locks, and no key reaches another key\'s queue, meta or waiters', async (t) => {
  const s = await server()
  const open = (opts) => {
    const lock = new AsyncLock({ redis: s.url, ttl: 10000, ...opts })
    t.after(() => lock.close())
    return lock
  }
  // Each pair: the first is held; the second must be granted at once.
  const pairs = [
    [open({}), 'a', open({}), '{a}'],
    [open({ prefix: 'keyed-lock:app' }), 't', open({ prefix: 'keyed-lock' }), 'app:{t}'],
    [open({ name: 'a' }), 'b:c', open({ name: 'a:b' }), 'c'],
    [open({ name: '{billing}' }), 'acct', open({ name: '{billing}' }), 'acct:q'],
    [open({ name: 'x' }), 'y', open({}), 'x:y'],
  ]
  for (const [l1, k1, l2, k2] of pairs) {
    const held = await l1.lock(k1)
    const other = await l2.lock(k2, { timeout: 1000 }) // a shared lock would time out here
    await other.release()
    await held.release()
  }

  // Holding keys named like another key's structures, then using that key
  // with contention (queue, waiters, hand-off, meta): no WRONGTYPE, no
  // stolen lease.
  for (const opts of [{}, { name: '{v}' }, { name: 'v' }]) {
    const a = open(opts)
    const b = open(opts)
    const squatters = await Promise.all(['{v}:q', '{v}:m', '{v}:w', 'v:q', 'v:m', 'v:w', '{v}', 'v}:q'].map((k) => a.lock(k)))
    const first = await a.lock('v')
    const second = b.lock('v', { timeout: 5000 })
    await sleep(50)
    assert.equal(await first.release(), true)
    const next = await second
    assert.ok(next.token > first.token)
    assert.equal(await next.release(), true)
    for (const l of squatters) assert.equal(await l.release(), true, 'each squatter still holds its own lease')
  }
})

test('keys: a lone surrogate is a TypeError naming the key, not U+FFFD', async (t) => {
  const s = await server()
  const lock = new AsyncLock({ redis: s.url })
  t.after(() => lock.close())
  for (const bad of ['\uD800', 'a\uDC00', '\uDBFFx', 'x\uDFFF\uD800']) {
    assert.throws(() => lock.acquire(bad, () => {}), { name: 'TypeError', message: /key must be a string without lone surrogates/ })
    await assert.rejects(lock.lock(['ok', bad]), { name: 'TypeError', message: /key must be/ })
    assert.throws(() => lock.isBusy(bad), { name: 'TypeError', message: /key/ })
  }
  assert.throws(() => new AsyncLock({ redis: s.url, name: 'n\uD800' }), { name: 'TypeError', message: /option "name"/ })
  assert.throws(() => new AsyncLock({ redis: s.url, prefix: 'p\uDC00' }), { name: 'TypeError', message: /option "prefix"/ })
  // Well-formed pairs and U+FFFD itself are keys like any other, and distinct.
  const held = await lock.lock('\uFFFD')
  const pair = await lock.lock('\uD83D\uDE00', { timeout: 1000 })
  await Promise.all([held.release(), pair.release()])
})

test('keys: the JS mirror used by the tests is the native encoding (docs/redis-keys.md)', () => {
  const alphabet = ['{', '}', ':', '%', 'l', 'q', 'a', '7', 'B', '\u00e9', '\uD83D\uDE00', '']
  let seed = 17
  const rand = (n) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n
  const text = () => Array.from({ length: rand(8) }, () => alphabet[rand(alphabet.length)]).join('')
  const seen = new Map()
  for (let i = 0; i < 3000; i++) {
    const [prefix, space, key] = [text() || 'p', text(), text()]
    const want = native.redisLeaseKey(prefix, key, space)
    assert.equal(lockKey(prefix, space, key, 'l'), want, JSON.stringify({ prefix, space, key }))
    const triple = JSON.stringify([prefix, space, key])
    const before = seen.get(want)
    assert.ok(before === undefined || before === triple, `${before} and ${triple} share ${want}`)
    seen.set(want, triple)
  }
  assert.equal(RedisClient.prototype.keyOf.call({ prefix: 'keyed-lock' }, 'k', 'n'), 'keyed-lock:{n:k}:l')
})

// ------------------------------------------------------------ defect 4 ----

test('a waiter SIGSTOPped while it is handed the key: its lease runs from the grant; 0 overlaps', { timeout: 60000 }, async () => {
  const s = await server()
  const [h, w, c] = await Promise.all(['h', 'w', 'c'].map((l) => worker(l, s.url)))
  // The claim of a hand-off is 3 s (ttl 10 s). Below it the stalled waiter
  // can keep the lease (it renews at once when it resumes); above it, it must
  // not act on a grant that ran out, and the next waiter is granted.
  const stalls = [2200, 2400, 2800, 3400, 3800]
  const report = []
  for (const [i, stall] of stalls.entries()) {
    const key = 'stall' + i
    await h.call('lock', { tag: key, key })
    // Held past the claim: W must renew it to keep it.
    const held = w.call('hold', { key, hold: 3500, timeout: 30000 })
    await waitQueued(s, key, 1)
    const next = c.call('hold', { key, hold: 300, timeout: 30000 })
    await waitQueued(s, key, 2)
    w.stop()
    let released
    try {
      await sleep(30)
      released = (await h.call('release', { tag: key })).at
      await sleep(stall)
    } finally {
      w.cont()
    }
    const [wr, cr] = await Promise.all([held, next])
    const what = wr.at > cr.at ? 'read its grant too late, queued again, got the key after C' : wr.lost ? 'lost the lease' : 'kept the lease'
    report.push(`stall ${stall} ms: W ${what} (W at +${(wr.at - released).toFixed(0)} ms, C at +${(cr.at - released).toFixed(0)} ms)`)
    assertExclusive([{ ...wr, who: 'the stalled waiter' }, { ...cr, who: 'the next waiter' }], `stall ${stall}`)
    if (stall <= 2400) {
      assert.equal(wr.lost, false, `stalled ${stall} ms of a 3000 ms claim: the lease could be kept, and was not`)
      assert.ok(wr.at < cr.at)
    }
  }
  console.log('# ' + report.join('; '))
})

// ------------------------------------------------------------ defect 5 ----

test('a multi-key waiter SIGSTOPped and reaped from one queue re-joins every queue; the others are not held up', { timeout: 60000 }, async () => {
  const s = await server()
  const [h, z, m, p, r, q] = await Promise.all(['h', 'z', 'm', 'p', 'r', 'q'].map((l) => worker(l, s.url)))
  for (const run of [1, 2]) {
    const [X, Y] = ['X' + run, 'Y' + run]
    await h.call('lock', { tag: X, key: X })
    await h.call('lock', { tag: Y, key: Y })
    // Z waits on Y ahead of M and stays alive: its heartbeats keep Y's queue,
    // and M's place in it, while M is stopped.
    const zDone = z.call('hold', { key: Y, hold: 50, timeout: 30000 })
    await waitQueued(s, Y, 1)
    const mDone = m.call('hold', { key: [Y, X], hold: 200, timeout: 30000 })
    await waitQueued(s, Y, 2)
    await waitQueued(s, X, 1)
    const [mid] = await s.command('ZRANGE', queueOf(X), 0, -1)
    const pDone = p.call('hold', { key: X, hold: 200, timeout: 30000 })
    await waitQueued(s, X, 2)
    m.stop()
    try {
      // Past the liveness window (3 s) plus a heartbeat of P: P's ACQUIRE
      // reaps M from X's queue. In Y's, M is behind a live head: left there.
      await waitFor('M reaped from X', async () => (await s.command('ZSCORE', queueOf(X), mid)) === null, 8000)
      assert.notEqual(await s.command('ZSCORE', queueOf(Y), mid), null, 'still in Y: reaped from one queue only')
    } finally {
      m.cont()
    }
    // M's next heartbeat: it leaves Y and joins both again, at the back.
    await waitFor('M back in X', async () => (await s.command('ZSCORE', queueOf(X), mid)) !== null, 3000)
    assert.notEqual(await s.command('ZSCORE', queueOf(Y), mid), null)
    const rDone = r.call('hold', { key: X, hold: 2500, timeout: 30000 })
    await waitQueued(s, X, 3)
    const qDone = q.call('hold', { key: Y, hold: 50, timeout: 30000 })
    await waitQueued(s, Y, 3)
    await h.call('release', { tag: Y })
    const zr = await zDone
    const released = (await h.call('release', { tag: X })).at
    const [mr, pr, rr, qr] = await Promise.all([mDone, pDone, rDone, qDone])
    console.log(
      `# run ${run}: after X's release P got X at +${(pr.at - released).toFixed(0)} ms, M [Y, X] at +${(mr.at - released).toFixed(0)} ms, ` +
        `Q (Y) at +${(qr.at - released).toFixed(0)} ms, R (X) at +${(rr.at - released).toFixed(0)} ms`,
    )
    assert.ok(pr.at < mr.at && mr.at < rr.at, 'X in queue order: P, then M (re-joined before R queued), then R')
    assert.ok(zr.at < mr.at && mr.at < qr.at, 'Y in queue order: Z, M, Q')
    assert.ok(qr.at - released < 2000, `Q waited ${(qr.at - released).toFixed(0)} ms for a key only M was ahead of`)
    assertExclusive([{ ...pr, who: 'P' }, { ...mr, who: 'M' }, { ...rr, who: 'R' }], 'X')
    assertExclusive([{ ...zr, who: 'Z' }, { ...mr, who: 'M' }, { ...qr, who: 'Q' }], 'Y')
  }
})

test('ACQUIRE of a waiter found in some of its queues only: out of all, then into all at the back', async () => {
  const s = await server()
  const keys = (names) => names.flatMap((n) => lockKeys('t', '', n)).concat('t:tkt')
  const acquire = (names, id) => s.command('EVAL', scriptText('acquire'), names.length * 4 + 1, ...keys(names), 't', id, 10000, 1, -1, 0, '', 3000)
  const q = (n) => lockKey('t', '', n, 'q')
  assert.equal((await acquire(['X'], 'h:1'))[0], 0) // X is held
  assert.equal((await acquire(['Y', 'X'], 'm:1'))[0], 1) // M waits on Y (free, reserved for it) and X
  assert.equal((await acquire(['X'], 'p:1'))[0], 1) // P waits on X behind M
  // What a reap of X leaves while M's process is stopped: gone from X only.
  await s.command('ZREM', q('X'), 'm:1')
  await s.command('HDEL', lockKey('t', '', 'X', 'w'), 'm:1')
  // M's heartbeat: it is in every queue again, behind P in X.
  assert.equal((await acquire(['Y', 'X'], 'm:1'))[0], 1)
  assert.deepEqual(await s.command('ZRANGE', q('X'), 0, -1), ['p:1', 'm:1'])
  assert.deepEqual(await s.command('ZRANGE', q('Y'), 0, -1), ['m:1'])
  assert.ok((await s.command('HGET', lockKey('t', '', 'X', 'w'), 'm:1')) !== null)
})

// ------------------------------------------------------------ defect 6 ----

/** Every key in the database, as SCAN sees it (expired keys are not listed). */
async function allKeys(s) {
  const out = []
  let cursor = '0'
  do {
    const [next, keys] = await s.command('SCAN', cursor, 'COUNT', 1000)
    cursor = next
    out.push(...keys)
  } while (cursor !== '0')
  return out
}

test('memory: an idle key leaves nothing in Redis once its ttl (or the waiters\' liveness window) has passed', { timeout: 60000 }, async (t) => {
  const s = await server()
  const ttl = 1000
  const a = new AsyncLock({ redis: s.url, name: 'mem', ttl })
  const b = new AsyncLock({ redis: s.url, name: 'mem', ttl })
  t.after(() => Promise.all([a.close(), b.close()]))
  const N = 3000
  const t0 = now()
  for (let i = 0; i < N; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, j) => a.lock('k' + (i + j)).then((l) => l.release())))
  }
  // Contended: a queue, waiter records and the ticket counter come and go.
  for (let i = 0; i < 100; i++) {
    const held = await a.lock('c' + i)
    const waiting = b.lock('c' + i, { timeout: 5000 })
    await waitFor('queued', async () => (await s.command('ZCARD', queueOf('c' + i, 'mem'))) === 1)
    await held.release()
    await (await waiting).release()
  }
  // A waiter that gave up, and an 8 MB key.
  const held = await a.lock('big')
  await b.lock('big', { timeout: 100 }).catch(() => {})
  await held.release()
  const big = 'x'.repeat(8 * 1024 * 1024)
  await (await a.lock(big)).release()
  const elapsed = now() - t0

  const left = await allKeys(s)
  const pttls = await Promise.all(left.map((k) => s.command('PTTL', k)))
  const longest = Math.max(0, ...pttls)
  // -1: no expiry (-2: expired since the SCAN).
  const noExpiry = left.filter((k, i) => pttls[i] === -1).map((k) => k.slice(0, 80))
  const memory = /used_memory:(\d+)/.exec(await s.command('INFO', 'memory'))[1]
  assert.deepEqual(noExpiry, [], 'no key without an expiry')
  assert.ok(longest <= 3000, `the longest expiry left is ${longest} ms: no more than the ttl or the liveness window`)
  await sleep(3100)
  const after = await allKeys(s)
  const memoryAfter = /used_memory:(\d+)/.exec(await s.command('INFO', 'memory'))[1]
  console.log(
    `# ${N + 102} distinct keys locked and released (one of 8 MB) in ${elapsed.toFixed(0)} ms: ${left.length} Redis keys right after ` +
      `(longest expiry ${longest} ms), ${after.length} after 3.1 s; used_memory ${(memory / 1048576).toFixed(1)} MiB -> ${(memoryAfter / 1048576).toFixed(1)} MiB`,
  )
  assert.deepEqual(after, [], 'keys left behind')
})

// ------------------------------------------------------------ defect 9 ----

test('the release of a lease that already ran out hands the key on at once', { timeout: 30000 }, async (t) => {
  const s = await server()
  const a = new AsyncLock({ redis: s.url, name: 'exp', ttl: 10000 })
  const b = new AsyncLock({ redis: s.url, name: 'exp', ttl: 10000 })
  t.after(() => Promise.all([a.close(), b.close()]))
  const waits = []
  for (let i = 0; i < 5; i++) {
    const key = 'k' + i
    const held = await a.lock(key)
    const waiting = b.lock(key, { timeout: 5000 })
    await waitFor('queued', async () => (await s.command('ZCARD', queueOf(key, 'exp'))) === 1)
    // The lease runs out (a stall, a clock step): nobody has noticed yet.
    await s.command('PEXPIRE', lockKey('keyed-lock', 'exp', key, 'l'), 1)
    await sleep(5)
    const released = now()
    assert.equal(await held.release(), false, 'the lease had been lost')
    const next = await waiting
    waits.push(now() - released)
    await next.release()
  }
  console.log(`# granted ${waits.map((w) => w.toFixed(0)).join(', ')} ms after the release of an expired lease`)
  for (const w of waits) assert.ok(w < 200, `granted ${w.toFixed(0)} ms after the release, not at the next heartbeat`)
})

test('a lease that runs out unreleased is handed on when it runs out, not at the next heartbeat', { timeout: 30000 }, async (t) => {
  const s = await server()
  const client = RedisClient.open(s.url)
  const b = new AsyncLock({ redis: s.url, ttl: 10000 })
  t.after(() => Promise.all([client.close(), b.close()]))
  const waits = []
  for (let i = 0; i < 3; i++) {
    const key = 'gone' + i
    // A holder whose process stopped renewing: its lease simply expires.
    const r = await client.acquire([key], { ttl: 400, watchdog: false })
    assert.equal(r.status, 'granted')
    const expires = now() + 400
    const next = await b.lock(key, { timeout: 5000 })
    waits.push(now() - expires)
    await next.release()
  }
  console.log(`# granted ${waits.map((w) => w.toFixed(0)).join(', ')} ms after the holder's lease ran out`)
  for (const w of waits) assert.ok(w < 250, `granted ${w.toFixed(0)} ms after the lease ran out`)
})

test('a loss reported before its handler is set is not dropped', async () => {
  // A hand-off read late can be lost moments after the grant; the report can
  // reach JS before the code that registers the handler has run.
  const client = Object.create(RedisClient.prototype)
  client.lostHandlers = new Map()
  client.lostEarly = new Map()
  client._lost({ lease: 7, reason: 'gone' })
  const cause = await new Promise((resolve) => client.onLost(7, resolve))
  assert.equal(cause.code, 'KEYED_LOCK_LEASE_LOST')
  assert.equal(client.lostEarly.size, 0)
})
