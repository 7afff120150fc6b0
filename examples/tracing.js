'use strict'
// Seeing into a lock: worker threads contend on a few keys of one
// `scope: 'process'` lock (one hot key, a few warm ones), while the main
// thread prints, every half second, a table of the busiest keys from
// `lock.stats()` next to the wait and hold times the workers saw on the
// `keyed-lock:*` diagnostics channels. Ends by itself after a few seconds.
//
//   node examples/tracing.js [workers=4] [seconds=3]
//
// diagnostics_channel is per thread: each worker subscribes in its own
// thread and posts its figures to the main thread. At the end: how the same
// events would feed an OpenTelemetry span and a Prometheus gauge (sketched
// with stand-ins, since keyed-lock has no runtime dependency on either).

const dc = require('node:diagnostics_channel')
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads')
const AsyncLock = require('..')

const NAME = 'examples/tracing'
const KEYS = ['hot', 'hot', 'hot', 'hot', 'warm-1', 'warm-2', 'cold']
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

if (!isMainThread) {
  const lock = new AsyncLock({ scope: 'process', name: NAME })
  // Per key: how many grants, the sum and max of their waits and holds (ms).
  const seen = {}
  const entry = (key) => (seen[key] ??= { grants: 0, waitMs: 0, maxWaitMs: 0, holdMs: 0, timeouts: 0 })
  dc.tracingChannel('keyed-lock:acquire').subscribe({
    start() {},
    end() {},
    asyncStart(ctx) {
      const e = entry(ctx.keys[0])
      e.grants++
      e.waitMs += ctx.waitMs
      e.maxWaitMs = Math.max(e.maxWaitMs, ctx.waitMs)
    },
    asyncEnd(ctx) {
      if (ctx.holdMs !== undefined) entry(ctx.keys[0]).holdMs += ctx.holdMs
    },
    error(ctx) {
      if (ctx.outcome === 'timeout') entry(ctx.keys[0]).timeouts++
    },
  })
  const report = setInterval(() => parentPort.postMessage({ id: workerData.id, seen }), 250)
  ;(async () => {
    const until = Date.now() + workerData.ms
    let i = workerData.id
    while (Date.now() < until) {
      const key = KEYS[i++ % KEYS.length]
      // Work of 1–4 ms under the lock; a waiter gives up after 200 ms.
      await lock.acquire(key, () => sleep(1 + (i % 4)), { timeout: 200 }).catch(() => {})
    }
    clearInterval(report)
    parentPort.postMessage({ id: workerData.id, seen, done: true })
  })()
} else {
  const workers = Number(process.argv[2]) || 4
  const seconds = Number(process.argv[3]) || 3
  const lock = new AsyncLock({ scope: 'process', name: NAME })
  const reports = new Map()
  let done = 0
  for (let id = 0; id < workers; id++) {
    const worker = new Worker(__filename, { workerData: { id, ms: seconds * 1000 } })
    worker.on('message', (m) => {
      reports.set(m.id, m.seen)
      if (m.done) done++
    })
    worker.on('error', (err) => {
      console.error(err)
      process.exitCode = 1
    })
  }

  const table = () => {
    // The space's state now (every thread's holders and waiters) ...
    const { keys, busyKeys, waiting } = lock.stats({ top: 5 })
    const now = Object.fromEntries(keys.map((k) => [k.key, k.waiters]))
    // ... next to what the workers' channels saw so far.
    const totals = {}
    for (const seen of reports.values()) {
      for (const [key, e] of Object.entries(seen)) {
        const t = (totals[key] ??= { grants: 0, waitMs: 0, maxWaitMs: 0, holdMs: 0, timeouts: 0 })
        t.grants += e.grants
        t.waitMs += e.waitMs
        t.maxWaitMs = Math.max(t.maxWaitMs, e.maxWaitMs)
        t.holdMs += e.holdMs
        t.timeouts += e.timeouts
      }
    }
    const rows = Object.entries(totals)
      .sort(([a], [b]) => (now[b] ?? -1) - (now[a] ?? -1) || totals[b].waitMs - totals[a].waitMs)
      .map(([key, t]) => ({
        key,
        'waiting now': now[key] ?? 0,
        grants: t.grants,
        'mean wait ms': t.grants ? +(t.waitMs / t.grants).toFixed(2) : 0,
        'max wait ms': +t.maxWaitMs.toFixed(2),
        'mean hold ms': t.grants ? +(t.holdMs / t.grants).toFixed(2) : 0,
        timeouts: t.timeouts,
      }))
    console.log(`\nbusy keys now: ${busyKeys}, waiters now: ${waiting}`)
    console.table(rows)
  }

  const timer = setInterval(() => {
    table()
    if (done === workers) {
      clearInterval(timer)
      feeds()
    }
  }, 500)

  /**
   * How the channels feed an APM or a metrics exporter. Stand-ins here; with
   * the real packages (dev dependencies of your app, not of keyed-lock):
   *
   *   const { trace } = require('@opentelemetry/api')
   *   const tracer = trace.getTracer('keyed-lock')
   *   const spans = new WeakMap()
   *   dc.tracingChannel('keyed-lock:acquire').subscribe({
   *     start(ctx) { spans.set(ctx, tracer.startSpan('keyed-lock.acquire', { attributes: { 'keyed-lock.keys': ctx.keys.map(String), 'keyed-lock.reach': ctx.reach } })) },
   *     asyncStart(ctx) { spans.get(ctx).addEvent('granted', { 'keyed-lock.wait_ms': ctx.waitMs, 'keyed-lock.token': ctx.token }) },
   *     error(ctx) { spans.get(ctx).recordException(ctx.error) },
   *     asyncEnd(ctx) { spans.get(ctx).setAttribute('keyed-lock.outcome', ctx.outcome).end() },
   *     end() {},
   *   })
   *
   *   const client = require('prom-client')
   *   new client.Gauge({ name: 'keyed_lock_waiting', help: 'waiters on the lock', collect() { this.set(lock.stats().waiting) } })
   *   new client.Gauge({ name: 'keyed_lock_wait_p99_ms', help: 'p99 wait', collect() { this.set(lock.stats().wait.p99) } })
   */
  async function feeds() {
    const spans = new WeakMap()
    const fakeTracer = {
      startSpan: (name, { attributes }) => ({ name, attributes, events: [], end() { console.log('span', this.name, JSON.stringify(this.attributes), JSON.stringify(this.events)) } }),
    }
    const handlers = {
      start: (ctx) => spans.set(ctx, fakeTracer.startSpan('keyed-lock.acquire', { attributes: { 'keyed-lock.keys': ctx.keys.map(String), 'keyed-lock.reach': ctx.reach } })),
      end() {},
      asyncStart: (ctx) => spans.get(ctx).events.push(['granted', { wait_ms: +ctx.waitMs.toFixed(3), token: ctx.token }]),
      error: (ctx) => spans.get(ctx).events.push(['exception', String(ctx.error)]),
      asyncEnd(ctx) {
        const span = spans.get(ctx)
        span.attributes['keyed-lock.outcome'] = ctx.outcome
        span.end()
      },
    }
    const channel = dc.tracingChannel('keyed-lock:acquire')
    console.log('\nOne acquire() as an OpenTelemetry span would see it:')
    channel.subscribe(handlers)
    await lock.acquire('hot', () => sleep(2))
    channel.unsubscribe(handlers)
    // A Prometheus gauge's collect() would read these on every scrape.
    const { waiting, wait, acquisitions } = lock.stats()
    console.log(`gauge keyed_lock_waiting ${waiting}; keyed_lock_wait_p99_ms ${wait.p99}; counter keyed_lock_acquisitions_total ${acquisitions} (this thread's lock)`)
  }
}
