'use strict'
// The diagnostics_channel channels (lib/trace.js, index.d.ts TraceContext)
// on every reach: the order of the events and the context they carry for a
// grant, fn's failure, a timeout, a refusal, an abort, a release and a lost
// lease. Events are told apart by key, so a reach's late events from an
// earlier test never count.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const dc = require('node:diagnostics_channel')
const { forEachReach, outcome, eventually, mockClock, realSleep } = require('./helpers/reaches')

const EVENTS = ['start', 'end', 'asyncStart', 'asyncEnd', 'error']

/**
 * Records every keyed-lock event whose keys include `key`, as
 * [channel:event, context snapshot, context object], until the test ends.
 */
function record(t, key) {
  const seen = []
  const mine = (message) => message.keys.includes(key)
  const subs = []
  for (const name of ['keyed-lock:acquire', 'keyed-lock:lock']) {
    for (const event of EVENTS) {
      const channel = `tracing:${name}:${event}`
      const fn = (ctx) => {
        if (mine(ctx)) seen.push({ what: `${name.slice('keyed-lock:'.length)}:${event}`, ctx, at: { ...ctx } })
      }
      dc.subscribe(channel, fn)
      subs.push([channel, fn])
    }
  }
  for (const channel of ['keyed-lock:release', 'keyed-lock:lease:lost']) {
    const fn = (message) => {
      if (mine(message)) seen.push({ what: channel.slice('keyed-lock:'.length), ctx: message, at: { ...message } })
    }
    dc.subscribe(channel, fn)
    subs.push([channel, fn])
  }
  t.after(() => {
    for (const [channel, fn] of subs) dc.unsubscribe(channel, fn)
  })
  return {
    seen,
    names: () => seen.map((e) => e.what),
    /** Resolves once `n` events were seen (Redis answers later). */
    async count(n) {
      const wait = async () => {
        while (seen.length < n) await realSleep(2)
      }
      await eventually(wait(), `${n} events`)
    },
  }
}

let keys = 0
const fresh = () => `trace-${++keys}`

forEachReach((reach) => {
  test('a granted acquire(): start, end, asyncStart at the grant, release and asyncEnd when fn settles, one context', async (t) => {
    const lock = reach.make()
    const key = fresh()
    const rec = record(t, key)
    assert.equal(await lock.acquire(key, () => 7), 7)
    await rec.count(5)
    assert.deepEqual(rec.names(), ['acquire:start', 'acquire:end', 'acquire:asyncStart', 'release', 'acquire:asyncEnd'])
    const ctx = rec.seen[0].ctx
    for (const e of rec.seen) if (e.what.startsWith('acquire')) assert.equal(e.ctx, ctx, 'the same context object throughout')
    assert.deepEqual(rec.seen[0].at.keys, [key])
    assert.equal(ctx.reach, reach.name)
    assert.equal(ctx.mode, 'promise')
    assert.equal(rec.seen[0].at.outcome, undefined)
    const granted = rec.seen[2].at
    assert.equal(granted.outcome, 'granted')
    assert.ok(granted.waitMs >= 0, `waitMs ${granted.waitMs}`)
    assert.ok(Number.isSafeInteger(granted.token) && granted.token > 0, `token ${granted.token}`)
    assert.equal(granted.holdMs, undefined)
    assert.equal(ctx.outcome, 'granted')
    assert.ok(ctx.holdMs >= 0, `holdMs ${ctx.holdMs}`)
    const release = rec.seen[3].ctx
    assert.deepEqual(release.keys, [key])
    assert.equal(release.token, granted.token)
    assert.equal(release.holdMs, ctx.holdMs)
    assert.equal(release.mode, 'promise')
    assert.equal(release.handedOff, reach.name === 'redis' ? undefined : false)
    for (const e of rec.seen) assert.ok(!JSON.stringify(e.at).includes('redis://'), 'no URL in any payload')
  })

  test("callback mode and a failing fn: mode 'callback', error before asyncEnd, outcome 'error'; a waiter's wait and the handoff", async (t) => {
    const lock = reach.make()
    const key = fresh()
    const rec = record(t, key)
    const boom = new Error('boom')
    let release
    const first = new Promise((resolve) => lock.acquire(key, (done) => (release = done), (err) => resolve(err)))
    await eventually(
      (async () => {
        while (!release) await realSleep(2)
      })(),
      'the first grant',
    )
    const second = new Promise((resolve) =>
      lock.acquire(
        key,
        (done) => done(boom),
        (err) => resolve(err),
      ),
    )
    await reach.queued(lock, key, 1)
    await realSleep(5)
    release()
    assert.equal(await first, undefined)
    assert.equal(await second, boom)
    await rec.count(10)
    const contexts = [...new Set(rec.seen.filter((e) => e.what.startsWith('acquire')).map((e) => e.ctx))]
    assert.equal(contexts.length, 2)
    const [a, b] = contexts
    const of = (ctx) => rec.seen.filter((e) => e.ctx === ctx || (e.what === 'release' && e.ctx.token === ctx.token)).map((e) => e.what)
    assert.deepEqual(of(a), ['acquire:start', 'acquire:end', 'acquire:asyncStart', 'release', 'acquire:asyncEnd'])
    assert.deepEqual(of(b), ['acquire:start', 'acquire:end', 'acquire:asyncStart', 'acquire:error', 'release', 'acquire:asyncEnd'])
    assert.equal(a.mode, 'callback')
    assert.equal(b.outcome, 'error')
    assert.equal(b.error, boom)
    assert.ok(b.waitMs >= 4, `the waiter waited: waitMs ${b.waitMs}`)
    assert.ok(b.token > a.token, 'tokens increase')
    const handoff = rec.seen.find((e) => e.what === 'release' && e.ctx.token === a.token).ctx
    assert.equal(handoff.handedOff, reach.name === 'redis' ? undefined : true)
  })

  test("a timed-out wait: start, end, error, asyncEnd, outcome 'timeout', no asyncStart", async (t) => {
    const clock = reach.jsTimeout ? mockClock(t) : null
    const lock = reach.make()
    const key = fresh()
    const holder = await lock.lock(key)
    const rec = record(t, key)
    const waiting = outcome(lock.acquire(key, () => 1, { timeout: 50 }))
    if (clock) await clock.tick(50)
    const { error } = await waiting
    assert.match(error.message, /timed out/)
    await rec.count(4)
    assert.deepEqual(rec.names(), ['acquire:start', 'acquire:end', 'acquire:error', 'acquire:asyncEnd'])
    const ctx = rec.seen[0].ctx
    assert.equal(ctx.outcome, 'timeout')
    assert.equal(ctx.error, error)
    assert.ok(ctx.waitMs >= 0)
    assert.equal(ctx.token, undefined)
    await holder.release()
  })

  test("a refused call (maxPending): start, end, error, asyncEnd, outcome 'refused'", async (t) => {
    const lock = reach.make({ maxPending: 0 })
    const key = fresh()
    const holder = await lock.lock(key)
    const rec = record(t, key)
    const { error } = await outcome(lock.acquire(key, () => 1))
    assert.match(error.message, /Too many pending/)
    const refusedLease = await outcome(lock.lock(key))
    assert.equal(refusedLease.error.message, error.message)
    await rec.count(8)
    assert.deepEqual(rec.names(), [
      'acquire:start',
      'acquire:end',
      'acquire:error',
      'acquire:asyncEnd',
      'lock:start',
      'lock:end',
      'lock:error',
      'lock:asyncEnd',
    ])
    assert.equal(rec.seen[0].ctx.outcome, 'refused')
    assert.equal(rec.seen[4].ctx.outcome, 'refused')
    assert.equal(rec.seen[4].ctx.mode, 'lease')
    await holder.release()
  })

  test("leases: keyed-lock:lock from call to release; an aborted wait is outcome 'aborted'", async (t) => {
    const lock = reach.make()
    const key = fresh()
    const rec = record(t, key)
    const lease = await lock.lock(key)
    const controller = new AbortController()
    const waiting = outcome(lock.lock(key, { signal: controller.signal }))
    await reach.queued(lock, key, 1)
    controller.abort(new Error('stop'))
    assert.equal((await waiting).error.message, 'stop')
    await lease.release()
    await rec.count(9)
    const leaseCtx = rec.seen[0].ctx
    const of = (ctx) => rec.seen.filter((e) => e.ctx === ctx || (e.what === 'release' && e.ctx.token === ctx.token)).map((e) => e.what)
    assert.deepEqual(of(leaseCtx), ['lock:start', 'lock:end', 'lock:asyncStart', 'release', 'lock:asyncEnd'])
    assert.equal(leaseCtx.mode, 'lease')
    assert.equal(leaseCtx.token, lease.token)
    assert.equal(leaseCtx.outcome, 'granted')
    const aborted = rec.seen.find((e) => e.ctx !== leaseCtx && e.what === 'lock:error').ctx
    assert.equal(aborted.outcome, 'aborted')
    assert.deepEqual(of(aborted), ['lock:start', 'lock:end', 'lock:error', 'lock:asyncEnd'])
  })

  if (reach.name === 'redis') {
    test("a lost lease (its key deleted in Redis): keyed-lock:lease:lost with key, token, reach and cause, then outcome 'lost' at release", async (t) => {
      const lock = reach.make({ ttl: 1000 })
      const key = fresh()
      const rec = record(t, key)
      const lease = await lock.lock(key)
      const lost = new Promise((resolve) => lease.signal.addEventListener('abort', resolve))
      // The lease itself is `<prefix>:{<name>:<key>}:l` (docs/redis-keys.md).
      await reach.server.command('DEL', reach.leaseKey(lock, key))
      await eventually(lost, 'the lost-lease signal')
      await lease.release()
      await rec.count(6)
      assert.deepEqual(rec.names(), ['lock:start', 'lock:end', 'lock:asyncStart', 'lease:lost', 'release', 'lock:asyncEnd'])
      const message = rec.seen[3].ctx
      assert.deepEqual(message.keys, [key])
      assert.equal(message.key, key)
      assert.equal(message.token, lease.token)
      assert.equal(message.reach, 'redis')
      assert.equal(message.cause, lease.signal.reason.cause)
      assert.equal(rec.seen[0].ctx.outcome, 'lost')
      assert.equal(lock.stats().lost, 1)
    })
  } else {
    test('in process a lease is never lost: nothing on keyed-lock:lease:lost', async (t) => {
      const lock = reach.make()
      const key = fresh()
      const rec = record(t, key)
      const lease = await lock.lock(key)
      await reach.quiet()
      await lease.release()
      assert.ok(!rec.names().includes('lease:lost'))
      assert.equal(lock.stats().lost, 0)
    })
  }
})

test('a subscriber sees every event of the calls made after it subscribed, on a lock made before', async (t) => {
  // The channels are looked up once at load; a lock made and used while
  // nobody listened still publishes once someone does.
  const AsyncLock = require('..')
  const lock = new AsyncLock()
  await lock.acquire('quiet', () => 1)
  const rec = record(t, 'quiet')
  await lock.acquire('quiet', () => 2)
  assert.deepEqual(rec.names(), ['acquire:start', 'acquire:end', 'acquire:asyncStart', 'release', 'acquire:asyncEnd'])
})

test('examples/tracing.js runs, prints the busiest keys and the span/gauge lines, and ends by itself', () => {
  const { execFileSync } = require('node:child_process')
  const path = require('node:path')
  const out = execFileSync(process.execPath, [path.join(__dirname, '..', 'examples', 'tracing.js'), '2', '1'], {
    encoding: 'utf8',
    timeout: 60_000,
  })
  assert.match(out, /busy keys now: \d+, waiters now: \d+/)
  assert.match(out, /'hot'/)
  assert.match(out, /span keyed-lock\.acquire .*"keyed-lock\.outcome":"granted"/)
  assert.match(out, /gauge keyed_lock_waiting \d+/)
})

test('domainReentrant: a re-entry runs holding nothing; its trace still ends with asyncEnd, and no release is published for it', async (t) => {
  const domain = require('node:domain')
  const AsyncLock = require('..')
  const lock = new AsyncLock({ domainReentrant: true })
  const rec = record(t, 'reentrant')
  await new Promise((resolve, reject) =>
    domain.create().run(() => lock.acquire('reentrant', () => lock.acquire('reentrant', () => 1)).then(resolve, reject)),
  )
  assert.deepEqual(rec.names(), [
    'acquire:start',
    'acquire:end',
    'acquire:asyncStart',
    'acquire:start',
    'acquire:end',
    'acquire:asyncStart',
    'acquire:asyncEnd',
    'release',
    'acquire:asyncEnd',
  ])
})
