'use strict'
// What a holder and a waiter see when Redis itself misbehaves: stalls past
// the lease (SIGSTOP), dies and comes back empty (kill -9 + restart), or
// drops the connection while somebody waits. Each test has its own server.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const AsyncLock = require('../index.js')
const { startRedis } = require('../support/redis-harness')
const { lockKey, lockKeys, ticketKey, scriptText } = require('./redis-keys')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const now = () => performance.now()

/**
 * Resolves with the time `signal` aborted, and its reason. A held lease does
 * not keep the process alive (its watchdog is off the event loop), so the
 * wait holds a timer of its own.
 */
const aborted = (signal) =>
  new Promise((resolve, reject) => {
    if (signal.aborted) return resolve({ at: now(), reason: signal.reason })
    const giveUp = setTimeout(() => reject(new Error('the lease signal never fired')), 20000)
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(giveUp)
        resolve({ at: now(), reason: signal.reason })
      },
      { once: true },
    )
  })

test('Redis stalled (SIGSTOP) past the ttl: the lease signal fires before Redis is back', async (t) => {
  const server = await startRedis()
  t.after(() => server.stop())
  const lock = new AsyncLock({ redis: server.url, name: 'stall', ttl: 1200 })
  t.after(() => lock.close())
  const lease = await lock.lock('k')
  const lost = aborted(lease.signal)
  server.pause()
  const pausedAt = now()
  await sleep(3000)
  const firedBeforeResume = lease.signal.aborted
  server.resume()
  const { at, reason } = await lost
  assert.ok(firedBeforeResume, 'the watchdog could not confirm the lease and said so while Redis was stopped')
  // Lost once the last confirmed extension ran out (ttl minus drift), not much later.
  assert.ok(at - pausedAt < 1200 + 1000, `fired ${Math.round(at - pausedAt)} ms after the stall began`)
  assert.equal(reason.name, 'LockLostError')
  assert.equal(reason.code, 'ELOCKLOST')
  assert.equal(reason.key, 'k')
  assert.equal(reason.token, lease.token)
  assert.match(reason.cause.message, /could be confirmed before it ran out/)
  // Back up: the lease expired meanwhile, so releasing frees nothing of anybody's.
  assert.equal(await lease.release(), false)
  const next = await lock.lock('k', { timeout: 3000 })
  assert.ok(next.token > lease.token)
  await next.release()
})

test('Redis killed and restarted empty: the holder learns it lost the lease, the waiter re-enqueues and is granted, tokens still increase', async (t) => {
  const server = await startRedis()
  t.after(() => server.stop())
  const holder = new AsyncLock({ redis: server.url, name: 'restart', ttl: 1500 })
  const waiter = new AsyncLock({ redis: server.url, name: 'restart', ttl: 1500 })
  t.after(() => Promise.all([holder.close(), waiter.close()]))
  const lease = await holder.lock('k')
  const lost = aborted(lease.signal)
  const waiting = waiter.lock('k', { timeout: 15000 })
  await sleep(200) // queued behind the holder
  await server.kill9()
  await server.restart()
  const started = now()
  const { reason } = await lost
  assert.equal(reason.name, 'LockLostError')
  assert.ok(now() - started < 1500 + 1500, 'told within about a ttl of the restart')
  // The waiter's re-check found its queue gone and re-enqueued; the lease
  // was free, so it is granted: that is the documented double-holder window.
  const second = await waiting
  assert.ok(second.token > lease.token, `${second.token} > ${lease.token}`)
  assert.equal(await lease.release(), false, "the old holder cannot free the new holder's lock")
  assert.ok((await server.command('GET', lockKey('keyed-lock', 'restart', 'k', 'l'))) !== null)
  assert.equal(await second.release(), true)
})

test('a connection drop mid-wait is survived: the waiter is granted once Redis is back', async (t) => {
  const server = await startRedis()
  t.after(() => server.stop())
  const holder = new AsyncLock({ redis: server.url, name: 'drop', ttl: 1000 })
  const waiter = new AsyncLock({ redis: server.url, name: 'drop', ttl: 1000 })
  t.after(() => Promise.all([holder.close(), waiter.close()]))
  const lease = await holder.lock('k')
  const order = []
  const waiting = waiter.acquire('k', () => order.push('waiter ran'), { timeout: 20000 })
  await sleep(200)
  // Every client connection is cut (the harness's own is skipped); the
  // server stays up with its state. keyed-lock's connections carry the grant
  // subscription, so Redis counts them as pubsub clients.
  const cut = (await server.command('CLIENT', 'KILL', 'TYPE', 'pubsub')) + (await server.command('CLIENT', 'KILL', 'TYPE', 'normal'))
  assert.ok(cut >= 1, `cut ${cut} connections: the waiter's connection was among them`)
  await sleep(300)
  await lease.release()
  await waiting
  assert.deepEqual(order, ['waiter ran'])
})

test('an acquire timeout with Redis unreachable mid-wait rejects; it never hangs', async (t) => {
  const server = await startRedis()
  t.after(() => server.stop())
  const holder = new AsyncLock({ redis: server.url, name: 'gone', ttl: 1000 })
  const waiter = new AsyncLock({ redis: server.url, name: 'gone', ttl: 1000 })
  t.after(() => Promise.all([holder.close(), waiter.close()]))
  await holder.lock('k')
  const started = now()
  const waiting = waiter.acquire('k', () => {}, { timeout: 1500 })
  await sleep(200)
  await server.kill9()
  // The re-runs fail while Redis is gone; the wait ends at its timeout as
  // any wait does (docs: "Connection errors and back-off"): never a hang.
  await assert.rejects(waiting, { message: 'async-lock timed out in queue k' })
  assert.ok(now() - started < 1500 + 1000, 'settled at the timeout')
})

test('an acquisition started while a Redis it had reached is down waits for it, within its timeout', async (t) => {
  const server = await startRedis()
  t.after(() => server.stop())
  const lock = new AsyncLock({ redis: server.url, name: 'outage', ttl: 1000 })
  t.after(() => lock.close())
  await (await lock.lock('k')).release() // connected once
  // The harness's child is unref'd: its exit alone would not keep this test alive.
  const alive = setInterval(() => {}, 1000)
  t.after(() => clearInterval(alive))
  await server.kill9()
  // Started with no Redis to ask: it keeps trying (the reconnect back-off)
  // and is granted once Redis is back.
  const waiting = lock.lock('k', { timeout: 8000 })
  await sleep(1000)
  await server.restart()
  const lease = await waiting
  assert.ok(lease.token > 0)
  await lease.release()
  // Redis down for longer than the timeout: the usual timeout error, at
  // the timeout (not at once, not later).
  await server.kill9()
  const started = now()
  await assert.rejects(lock.lock('k', { timeout: 800 }), { message: 'async-lock timed out in queue k' })
  const took = now() - started
  assert.ok(took >= 780 && took < 800 + 1000, `rejected after ${Math.round(took)} ms`)
  await server.restart()
})

test('a process that exits holding a lease frees it at exit, not a ttl later', async (t) => {
  const server = await startRedis()
  t.after(() => server.stop())
  const { execFileSync } = require('node:child_process')
  for (const ending of ['', 'process.exit(0)']) {
    // The lease's ttl is a minute: only the exit hook can free it in time.
    const script = `
      const AsyncLock = require(${JSON.stringify(require.resolve('../index.js'))})
      const lock = new AsyncLock({ redis: ${JSON.stringify(server.url)}, name: 'exit', ttl: 60000 })
      lock.lock('k').then((lease) => { console.log(lease.token); ${ending} })
    `
    const started = now()
    const token = Number(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 }).trim())
    assert.ok(token > 0)
    assert.equal(await server.command('EXISTS', lockKey('keyed-lock', 'exit', 'k', 'l')), 0, `freed at exit (${ending || 'natural end'})`)
    assert.ok(now() - started < 20000)
  }
})

test('a JS thread blocked for longer than the ttl keeps its lease: the watchdog is not on the event loop', async (t) => {
  const server = await startRedis()
  t.after(() => server.stop())
  const lock = new AsyncLock({ redis: server.url, name: 'busy', ttl: 900 })
  t.after(() => lock.close())
  const lease = await lock.lock('k')
  const blockedUntil = Date.now() + 3000 // more than three ttls with no turn of the event loop
  while (Date.now() < blockedUntil) {
    // a CPU-bound section, or a debugger paused on a breakpoint
  }
  await sleep(50) // a lost-lease report, if any, would be delivered by now
  assert.equal(lease.signal.aborted, false)
  const pttl = await server.command('PTTL', lockKey('keyed-lock', 'busy', 'k', 'l'))
  assert.ok(pttl > 0 && pttl <= 900, `still held, renewed: pttl ${pttl}`)
  assert.equal(await lease.release(), true)
})

test('a lost grant message: the waiter finds its grant at its next re-check', async (t) => {
  const server = await startRedis()
  t.after(() => server.stop())
  const keys = [...lockKeys('keyed-lock', 'lost', 'k'), ticketKey('keyed-lock')]
  const evalScript = (name, args) => server.command('EVAL', scriptText(name), keys.length, ...keys, ...args)
  // Another "process" holds the key, through the very script keyed-lock runs.
  assert.equal((await evalScript('acquire', ['keyed-lock', 'other:1', 60000, 1, -1, 0, '', 3000]))[0], 0)
  const lock = new AsyncLock({ redis: server.url, name: 'lost' })
  t.after(() => lock.close())
  const waiting = lock.lock('k', { timeout: 10000 })
  const deadline = Date.now() + 5000
  while ((await server.command('ZCARD', keys[2])) !== 1) {
    if (Date.now() > deadline) throw new Error('the waiter never queued')
    await sleep(10)
  }
  // Released with the grant published on a channel nobody listens to: the
  // lease is the waiter's in Redis, but its process never hears of it.
  assert.equal(await evalScript('release', ['elsewhere', 'other:1']), 1)
  const handedAt = now()
  const lease = await waiting
  const after = now() - handedAt
  assert.ok(after < 2500, `found ${Math.round(after)} ms after the hand-off (re-check every second)`)
  assert.equal(lease.token, Number(await server.command('GET', keys[1])))
  assert.equal(await lease.release(), true)
})

test('a worker thread terminated while holding a Redis lease frees it at once', async (t) => {
  const server = await startRedis()
  t.after(() => server.stop())
  const { Worker } = require('node:worker_threads')
  const code = `
    const AsyncLock = require(${JSON.stringify(require.resolve('../index.js'))})
    const { parentPort } = require('node:worker_threads')
    const lock = new AsyncLock({ redis: ${JSON.stringify(server.url)}, name: 'worker', ttl: 60000 })
    lock.lock('k').then((lease) => parentPort.postMessage(lease.token))
  `
  const worker = new Worker(code, { eval: true })
  const token = await new Promise((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  await worker.terminate()
  const lock = new AsyncLock({ redis: server.url, name: 'worker' })
  t.after(() => lock.close())
  // The lease's ttl is a minute: the worker's env teardown released it.
  const lease = await lock.lock('k', { timeout: 5000 })
  assert.ok(lease.token > token)
  await lease.release()
})

test('isBusy(key) holds the JS thread at most 2 s when Redis does not answer, then throws naming the URL', async (t) => {
  const server = await startRedis()
  t.after(() => server.stop())
  const lock = new AsyncLock({ redis: server.url, name: 'stuck' })
  t.after(() => lock.close())
  assert.equal(lock.isBusy('k'), false)
  server.pause()
  const started = now()
  let thrown = null
  try {
    lock.isBusy('k')
  } catch (err) {
    thrown = err
  }
  const waited = now() - started
  server.resume()
  assert.ok(thrown !== null && thrown.code === 'KEYED_LOCK_REDIS' && thrown.message.includes(server.url), String(thrown))
  assert.ok(waited >= 1500 && waited < 4000, `waited ${Math.round(waited)} ms`)
})
