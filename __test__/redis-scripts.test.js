'use strict'
// The Lua scripts of the Redis reach, driven one EVAL at a time against a
// throwaway redis-server, asserting the state each one leaves (lease, queue,
// waiter records, fence). The same text the Rust client loads (joined as
// src/redis/scripts.rs does: redis-keys.js scriptText). Multi-process behaviour is in
// redis-processes.test.js; faults in redis-faults.test.js.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { startRedis } = require('../support/redis-harness')
const { lockKey, ticketKey, scriptText } = require('./redis-keys')

const SCRIPTS = Object.fromEntries(['acquire', 'release', 'cancel', 'extend', 'inspect'].map((name) => [name, scriptText(name)]))
const P = 't'
const TRY = 0
const WAIT = 1
const FORCE = 2
// The outcome codes the scripts return, from the one table (src/core/outcome.rs).
const { GRANTED, QUEUED, REJECTED, BUSY, HANDED_OFF, CANCELLED } = require('../lib/native').OUTCOME

let server
before(async () => {
  server = await startRedis()
})
after(() => server.stop())

// Lock `name` without a space under prefix P (docs/redis-keys.md).
const base = (name) => lockKey(P, '', name, 'l')
const metaKey = (name) => lockKey(P, '', name, 'm')
const queueKey = (name) => lockKey(P, '', name, 'q')
const waitersKey = (name) => lockKey(P, '', name, 'w')
const keysOf = (names) => names.flatMap((n) => [base(n), metaKey(n), queueKey(n), waitersKey(n)]).concat(ticketKey(P))
const evalScript = (name, keys, args) => server.command('EVAL', SCRIPTS[name], keys.length, ...keys, ...args)

let next = 0
/** A fresh lock name per test, so tests don't share state. */
const fresh = () => 'n' + ++next

function acquire(names, id, { ttl = 10000, mode = WAIT, maxPending = -1, skipQueue = false, owner = 'o', live = 3000 } = {}) {
  return evalScript('acquire', keysOf(names), [P, id, ttl, mode, maxPending, skipQueue ? 1 : 0, owner, live])
}
const release = (names, id) => evalScript('release', keysOf(names), [P, id])
const cancel = (names, id) => evalScript('cancel', keysOf(names), [P, id])
const extend = (names, id, ttl) => evalScript('extend', keysOf(names), [P, id, ttl])
const queue = (name) => server.command('ZRANGE', queueKey(name), 0, -1)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

test('ACQUIRE on a free name grants it with a fence and a lease of ttl', async () => {
  const n = fresh()
  const [status, token] = await acquire([n], 'c1:1', { ttl: 5000, owner: 'alice' })
  assert.equal(status, GRANTED)
  assert.equal(await server.command('GET', base(n)), 'c1:1|alice')
  const pttl = await server.command('PTTL', base(n))
  assert.ok(pttl > 4000 && pttl <= 5000, `pttl ${pttl}`)
  assert.equal(Number(await server.command('GET', metaKey(n))), token)
  // Time-seeded: about the server's clock in microseconds.
  const [sec] = await server.command('TIME')
  assert.ok(Math.abs(token / 1e6 - Number(sec)) < 5, `token ${token} vs time ${sec}`)
})

test('a busy name queues a waiter once, however often it re-runs ACQUIRE, and refreshes its liveness', async () => {
  const n = fresh()
  await acquire([n], 'c1:1')
  const [status, pttl] = await acquire([n], 'c2:1', { live: 3000 })
  assert.equal(status, QUEUED)
  assert.ok(pttl > 0)
  const score = await server.command('ZSCORE', queueKey(n), 'c2:1')
  const record1 = await server.command('HGET', waitersKey(n), 'c2:1')
  await sleep(20)
  assert.equal((await acquire([n], 'c2:1', { live: 3000 }))[0], QUEUED)
  assert.deepEqual(await queue(n), ['c2:1'])
  assert.equal(await server.command('ZSCORE', queueKey(n), 'c2:1'), score, 'kept its place')
  const record2 = await server.command('HGET', waitersKey(n), 'c2:1')
  assert.ok(Number(record2.split('|')[0]) > Number(record1.split('|')[0]), 'deadline moved on')
  assert.match(record2, /^\d+\|10000\|1\|o$/)
})

test('try mode answers BUSY with the holder and leaves no waiter behind', async () => {
  const n = fresh()
  await acquire([n], 'c1:1', { owner: 'alice|x' })
  const [status, holder, pttl] = await acquire([n], 'c2:1', { mode: TRY })
  assert.equal(status, BUSY)
  assert.equal(holder, 'alice|x')
  assert.ok(pttl > 0)
  assert.deepEqual(await queue(n), [])
})

test('maxPending refuses the waiter that would exceed it, naming the full queue', async () => {
  const a = fresh()
  const b = fresh()
  await acquire([b], 'c1:1')
  await acquire([b], 'c2:1')
  assert.deepEqual(await acquire([a, b], 'c3:1', { maxPending: 1 }), [REJECTED, 2])
  assert.deepEqual(await queue(b), ['c2:1'])
  assert.deepEqual(await queue(a), [])
})

test('RELEASE hands the name to the head in the same script, with a larger token, for at most the claim time', async () => {
  const n = fresh()
  const [, t1] = await acquire([n], 'c1:1')
  await acquire([n], 'c2:1', { owner: 'bob', ttl: 7000 })
  await acquire([n], 'c3:1', { ttl: 1000 })
  assert.equal(await release([n], 'c1:1'), 1)
  assert.equal(await server.command('GET', base(n)), 'c2:1|bob')
  // 3 s, not the head's 7 s: if the head died since its last heartbeat, the
  // key is blocked for the claim only (a live head's watchdog renews it).
  const pttl = await server.command('PTTL', base(n))
  assert.ok(pttl > 2000 && pttl <= 3000, `claim ${pttl}`)
  const t2 = Number(await server.command('GET', metaKey(n)))
  assert.ok(t2 > t1)
  assert.deepEqual(await queue(n), ['c3:1'])
  assert.equal(await server.command('HGET', waitersKey(n), 'c2:1'), null)
  // The waiter re-running ACQUIRE after the grant (a lost message) finds it,
  // and is told it came by a hand-off, with the ms the lease has left.
  const [status, token, left] = await acquire([n], 'c2:1')
  assert.deepEqual([status, token], [HANDED_OFF, t2])
  assert.ok(left > 2000 && left <= 3000, `left ${left}`)
  // A head whose own ttl is below the claim gets its ttl.
  assert.equal(await release([n], 'c2:1'), 1)
  const short = await server.command('PTTL', base(n))
  assert.ok(short > 0 && short <= 1000, `ttl ${short}`)
})

test("a stale RELEASE or EXTEND never touches somebody else's lease", async () => {
  const n = fresh()
  await acquire([n], 'c1:1', { ttl: 10000 })
  await server.command('DEL', base(n)) // c1's lease is gone (expired, or Redis lost it)
  await acquire([n], 'c2:1')
  assert.equal(await release([n], 'c1:1'), 0)
  assert.equal(await extend([n], 'c1:1', 60000), 0)
  assert.ok((await server.command('GET', base(n))).startsWith('c2:1|'))
  assert.ok((await server.command('PTTL', base(n))) <= 10000, 'not extended by the stale holder')
  assert.equal(await extend([n], 'c2:1', 60000), 1)
  assert.ok((await server.command('PTTL', base(n))) > 10000)
})

test('RELEASE with nobody waiting deletes the lease; the queue and waiter keys go with their last member', async () => {
  const n = fresh()
  await acquire([n], 'c1:1')
  await acquire([n], 'c2:1')
  await cancel([n], 'c2:1')
  assert.equal(await release([n], 'c1:1'), 1)
  assert.equal(await server.command('EXISTS', base(n), queueKey(n), waitersKey(n)), 0)
})

test('CANCEL takes a waiter out of the queue; a CANCEL that lost the race to a grant keeps the grant', async () => {
  const n = fresh()
  await acquire([n], 'c1:1')
  await acquire([n], 'c2:1')
  await acquire([n], 'c3:1')
  assert.deepEqual(await cancel([n], 'c2:1'), [CANCELLED])
  assert.deepEqual(await queue(n), ['c3:1'])
  await release([n], 'c1:1') // grants c3
  const [granted, token] = await cancel([n], 'c3:1')
  assert.equal(granted, HANDED_OFF, 'told it holds the lease')
  assert.equal(token, Number(await server.command('GET', metaKey(n))))
  assert.ok((await server.command('GET', base(n))).startsWith('c3:1|'))
})

test('waiters that stopped heartbeating are reaped and skipped by the hand-off', async () => {
  const n = fresh()
  await acquire([n], 'c1:1')
  await acquire([n], 'dead:1', { live: 1 })
  await acquire([n], 'c3:1', { live: 10000 })
  await sleep(20)
  assert.equal(await release([n], 'c1:1'), 1)
  assert.ok((await server.command('GET', base(n))).startsWith('c3:1|'))
  assert.deepEqual(await queue(n), [])
  assert.equal(await server.command('HGET', waitersKey(n), 'dead:1'), null)
})

test('an expired holder is passed over: the next ACQUIRE grants the head, not the caller', async () => {
  const n = fresh()
  await acquire([n], 'c1:1', { ttl: 30 })
  await acquire([n], 'c2:1')
  await sleep(80)
  assert.equal((await acquire([n], 'c3:1'))[0], QUEUED, 'no barging past the head')
  assert.ok((await server.command('GET', base(n))).startsWith('c2:1|'))
  assert.deepEqual(await queue(n), ['c3:1'])
})

test('skipQueue goes before every ticket, the latest first', async () => {
  const n = fresh()
  await acquire([n], 'c1:1')
  await acquire([n], 'c2:1')
  await acquire([n], 'c3:1', { skipQueue: true })
  await acquire([n], 'c4:1', { skipQueue: true })
  assert.deepEqual(await queue(n), ['c4:1', 'c3:1', 'c2:1'])
})

test('force takes a held name; the old holder has lost it', async () => {
  const n = fresh()
  const [, t1] = await acquire([n], 'c1:1')
  const [status, t2] = await acquire([n], 'c2:1', { mode: FORCE })
  assert.equal(status, GRANTED)
  assert.ok(t2 > t1)
  assert.equal(await extend([n], 'c1:1', 1000), 0)
})

test('multi-name: one ticket in every queue, granted only at the head of all with all free', async () => {
  const x = fresh()
  const y = fresh()
  await acquire([x], 'c1:1')
  assert.equal((await acquire([x, y], 'm:1'))[0], QUEUED)
  const sx = await server.command('ZSCORE', queueKey(x), 'm:1')
  assert.equal(await server.command('ZSCORE', queueKey(y), 'm:1'), sx)
  // y is free but reserved for its head: a newcomer queues behind it.
  assert.equal((await acquire([y], 'c2:1'))[0], QUEUED)
  assert.equal(await server.command('EXISTS', base(y)), 0)
  assert.equal(await release([x], 'c1:1'), 1)
  // A multi-name head is only woken (it must take every name in one step).
  assert.equal(await server.command('EXISTS', base(x)), 0)
  const [status, tx, ty] = await acquire([x, y], 'm:1')
  assert.equal(status, GRANTED)
  assert.ok(tx > 0 && ty > 0)
  assert.equal(await release([x, y], 'm:1'), 2)
  assert.ok((await server.command('GET', base(y))).startsWith('c2:1|'), 'y passed on to the next waiter')
})

test('opposite key orders cannot deadlock: both waiters are in the same order in both queues', async () => {
  const a = fresh()
  const b = fresh()
  await acquire([a], 'h:1')
  await acquire([b], 'h:2')
  await acquire([a, b], 'p1:1')
  await acquire([b, a], 'p2:1')
  assert.deepEqual(await queue(a), ['p1:1', 'p2:1'])
  assert.deepEqual(await queue(b), ['p1:1', 'p2:1'])
  await release([a], 'h:1')
  await release([b], 'h:2')
  assert.equal((await acquire([a, b], 'p1:1'))[0], GRANTED)
  assert.equal((await acquire([b, a], 'p2:1'))[0], QUEUED)
  await release([a, b], 'p1:1')
  assert.equal((await acquire([b, a], 'p2:1'))[0], GRANTED)
})

test('tokens keep increasing when Redis loses the counter (time-seeded)', async () => {
  const n = fresh()
  const [, t1] = await acquire([n], 'c1:1')
  await release([n], 'c1:1')
  await server.command('DEL', metaKey(n)) // what a restart without persistence does
  const [, t2] = await acquire([n], 'c2:1')
  assert.ok(t2 > t1, `${t2} > ${t1}`)
  // And within one microsecond the counter still moves on.
  await release([n], 'c2:1')
  const [, t3] = await acquire([n], 'c3:1')
  assert.ok(t3 > t2)
})

test('INSPECT shows owner, pttl and waiters', async () => {
  const n = fresh()
  assert.deepEqual(await evalScript('inspect', [base(n), queueKey(n)], []), [null, -2, 0])
  await acquire([n], 'c1:1', { owner: 'alice', ttl: 4000 })
  await acquire([n], 'c2:1')
  const [owner, pttl, waiters] = await evalScript('inspect', [base(n), queueKey(n)], [])
  assert.equal(owner, 'alice')
  assert.ok(pttl > 3000)
  assert.equal(waiters, 1)
})

/** Commands Redis ran (EVALs and the commands inside them) between two INFO commandstats. */
async function commandsRun(work) {
  const calls = async () => {
    const info = await server.command('INFO', 'commandstats')
    let sum = 0
    for (const m of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) if (m[1] !== 'info') sum += Number(m[2])
    return sum
  }
  const before = await calls()
  await work()
  return (await calls()) - before
}

test('an uncontended acquire + release runs 8 commands in Redis, its two EVALs included', async () => {
  const n = fresh()
  // The first grant of a name reads the server clock for its token (2 more).
  assert.equal(await commandsRun(async () => {
    assert.equal((await acquire([n], 'c1:1'))[0], GRANTED)
    assert.equal(await release([n], 'c1:1'), 1)
  }), 10)
  assert.equal(await commandsRun(async () => {
    assert.equal((await acquire([n], 'c1:2'))[0], GRANTED)
    assert.equal(await release([n], 'c1:2'), 1)
  }), 8)
  assert.equal(await server.command('EXISTS', base(n)), 0)
})

test('tokens strictly increase whichever path grants them: fast, hand-off, multi-name, force', async () => {
  const a = fresh()
  const b = fresh()
  const seen = []
  const take = (r) => {
    assert.ok(r[0] === GRANTED || r[0] === HANDED_OFF, `granted: ${r}`)
    seen.push(r[1])
  }
  take(await acquire([a], 'c1:1')) // fast
  await acquire([a], 'c2:1') // queued
  await release([a], 'c1:1') // hands on to c2:1 (general path)
  take(await acquire([a], 'c2:1')) // its grant, found by a re-run
  await release([a], 'c2:1')
  take(await acquire([a], 'c3:1')) // fast again, after a hand-off
  await release([a], 'c3:1')
  take(await acquire([a, b], 'c4:1')) // multi-name: the general path
  await release([a, b], 'c4:1')
  take(await acquire([a], 'c5:1')) // fast
  take(await acquire([a], 'c6:1', { mode: FORCE }))
  await release([a], 'c6:1')
  take(await acquire([a], 'c7:1')) // fast
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i] > seen[i - 1], `tokens ${seen}`)
  assert.equal(Number(await server.command('GET', metaKey(a))), seen[seen.length - 1])
})
