'use strict'
// Quorum mode against redlock 5 on three independent throwaway Redis
// servers (issue 14 point 5): uncontended acquire + release, and 4 clients
// contending for one key holding it 1 ms, each library in its own child
// process per client so nobody shares an event loop. Writes
// bench/results/redis-quorum.md (or --out DIR). `--seconds S` per cell.

const path = require('node:path')
const fs = require('node:fs')
const { fork } = require('node:child_process')

const TTL_MS = 10000
const CLIENTS = 4

function open(lib, urls) {
  if (lib === 'keyed-lock') {
    const AsyncLock = require('..')
    const lock = new AsyncLock({ redis: { quorum: urls }, name: 'bench', ttl: TTL_MS })
    return {
      acquire: (key) => lock.lock(key, { timeout: 30000 }),
      release: (lease) => lease.release(),
      close: () => lock.close(),
    }
  }
  const Redis = require('ioredis')
  const Redlock = require('redlock').default
  const clients = urls.map((u) => new Redis(u))
  const redlock = new Redlock(clients, { retryCount: -1, retryDelay: 200, retryJitter: 100 })
  redlock.on('error', () => {})
  return {
    acquire: (key) => redlock.acquire([key], TTL_MS),
    release: (lock) => lock.release(),
    close: async () => clients.forEach((c) => c.disconnect()),
  }
}

function spin(ms) {
  const end = performance.now() + ms
  while (performance.now() < end);
}

/** Child: runs one cell, reports latencies and a holder log. */
async function child({ lib, urls, key, seconds, holdMs, start }) {
  const impl = open(lib, urls)
  await sleepUntil(start)
  const waits = []
  const spans = []
  const until = Date.now() + seconds * 1000
  let errors = 0
  while (Date.now() < until) {
    const t0 = performance.now()
    let h
    try {
      h = await impl.acquire(key)
    } catch {
      errors++
      continue
    }
    const got = Date.now()
    waits.push(performance.now() - t0)
    if (holdMs) spin(holdMs)
    spans.push([got, Date.now()])
    await impl.release(h).catch(() => errors++)
  }
  await impl.close()
  process.send({ waits, spans, errors })
}

function sleepUntil(t) {
  return new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())))
}

function pct(xs, p) {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}

async function cell(lib, urls, { clients, key, seconds, holdMs }) {
  const start = Date.now() + 1500
  const results = await Promise.all(
    Array.from({ length: clients }, () => {
      const c = fork(__filename, ['--child', JSON.stringify({ lib, urls, key, seconds, holdMs, start })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      return new Promise((resolve, reject) => {
        c.once('message', resolve)
        c.once('exit', (code) => code !== 0 && reject(new Error(`${lib} child exited ${code}`)))
      })
    }),
  )
  const waits = results.flatMap((r) => r.waits)
  // Overlapping holds (ms resolution, same clock): exclusion violations.
  const spans = results.flatMap((r, i) => r.spans.map(([a, b]) => [a, b, i])).sort((x, y) => x[0] - y[0])
  let violations = 0
  for (let i = 1; i < spans.length; i++) if (spans[i][0] < spans[i - 1][1] && spans[i][2] !== spans[i - 1][2]) violations++
  const shares = results.map((r) => r.waits.length)
  return {
    perSec: waits.length / seconds,
    p50: pct(waits, 50),
    p99: pct(waits, 99),
    max: Math.max(...waits),
    shares,
    violations,
    errors: results.reduce((n, r) => n + r.errors, 0),
  }
}

async function main() {
  const args = process.argv.slice(2)
  const seconds = Number(args[args.indexOf('--seconds') + 1]) || 3
  const outDir = args.includes('--out') ? args[args.indexOf('--out') + 1] : path.join(__dirname, 'results')
  const { startRedis } = require('../support/redis-harness.js')
  const servers = [await startRedis(), await startRedis(), await startRedis()]
  const urls = servers.map((s) => s.url)
  const rows = []
  try {
    for (const lib of ['keyed-lock', 'redlock']) {
      const un = await cell(lib, urls, { clients: 1, key: `u-${lib}`, seconds, holdMs: 0 })
      const co = await cell(lib, urls, { clients: CLIENTS, key: `c-${lib}`, seconds, holdMs: 1 })
      rows.push({ lib, un, co })
      console.log(lib, JSON.stringify({ un, co }))
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()))
  }
  const f = (x) => (Number.isFinite(x) ? x.toFixed(2) : '—')
  const L = [
    '# Quorum over 3 independent masters: keyed-lock vs redlock 5',
    '',
    `Three throwaway redis-server processes on loopback; ${seconds} s per cell; ttl ${TTL_MS} ms. keyed-lock: \`redis: { quorum }\`;`,
    'redlock 5 with one ioredis client per server, retryCount -1, retryDelay 200, retryJitter 100. Contended: 4 client processes on one key, holding it 1 ms.',
    '',
    '| library | uncontended acquire p50 / p99 ms | uncontended ops/s | contended acq/s | contended wait p50 / p99 / max ms | least / most served | violations | errors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      ({ lib, un, co }) =>
        `| ${lib} | ${f(un.p50)} / ${f(un.p99)} | ${un.perSec.toFixed(0)} | ${co.perSec.toFixed(0)} | ${f(co.p50)} / ${f(co.p99)} / ${f(co.max)} | ${Math.min(...co.shares)} / ${Math.max(...co.shares)} | ${co.violations} | ${un.errors + co.errors} |`,
    ),
    '',
  ]
  fs.mkdirSync(outDir, { recursive: true })
  fs.writeFileSync(path.join(outDir, 'redis-quorum.md'), L.join('\n'))
  console.log(L.join('\n'))
}

if (process.argv[2] === '--child') {
  child(JSON.parse(process.argv[3])).catch((err) => {
    console.error(err)
    process.exit(1)
  })
} else {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
