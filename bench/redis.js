'use strict'
// keyed-lock's Redis reach against the npm anchors (spec/redis.md §6): redlock
// 5.0.0-beta.2 with its default retry and with retryDelay 10, and
// redis-semaphore's Mutex, on one throwaway local redis-server.
//
//   (a) uncontended: 1 client, sequential acquire + release, against a raw
//       floor (SET NX PX + Lua compare-and-delete: the least any Redis lock does);
//   (b) contended: C clients (separate processes, separate connections) on one
//       key, each holding it `hold` ms in a loop, for `seconds`;
//   (c) semaphore: the same on one key of N permits (`--sem-permits`, 2), with
//       `--sem-clients` (4) clients taking one permit each: keyed-lock's
//       `permits` against redis-semaphore's `Semaphore`.
//
// Every client runs in its own forked process (this file, role `--child`), so
// no library shares an event loop with another client or with the parent.
// Libraries are interleaved and the order rotated round by round; cells are
// medians over rounds. Writes bench/results/redis.md (and the raw samples to
// the git-ignored redis.json), prints progress per round.
//
//   node bench/redis.js [--rounds 3] [--seconds 3] [--clients 4] [--hold 1]
//                       [--think 0] [--uncontended-seconds 1] [--libs a,b]
//                       [--no-monitor] [--out DIR] [--quick]
//                       [--sem-permits 2] [--sem-clients 4] [--no-sem]

const fs = require('node:fs')
const { machine } = require('./machine')
const path = require('node:path')
const net = require('node:net')
const { fork, execFileSync } = require('node:child_process')

const ROOT = path.join(__dirname, '..')

// CLOCK_MONOTONIC is one clock for every process on the machine, so
// timestamps taken in different clients compare directly; timeOrigin +
// performance.now() would add each process's error in estimating its origin.
const now = () => Number(process.hrtime.bigint()) / 1e6

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ------------------------------------------------------------ libraries ----
// Each library is opened once per client process and gives acquire(key) →
// lease, release(lease), an exclusion probe and close(). Leases are opaque.

const TTL_MS = 10000
const NOT_BUILT = 'keyed-lock redis reach not built yet'
const WAIT_MS = 10000

function ioredisClient(url) {
  const Redis = require('ioredis')
  return new Redis(url, { lazyConnect: false })
}

const LIBS = {
  floor: {
    label: 'raw floor',
    detail: 'ioredis `SET k v PX 10000 NX` + Lua compare-and-delete; fails instead of waiting (uncontended only)',
    contended: false,
    open(url) {
      const client = ioredisClient(url)
      client.defineCommand('delIfEqual', {
        numberOfKeys: 1,
        lua: "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0",
      })
      const id = `${process.pid}:${Math.random().toString(36).slice(2)}`
      let n = 0
      return {
        async acquire(key) {
          const value = `${id}:${++n}`
          if ((await client.set(key, value, 'PX', TTL_MS, 'NX')) !== 'OK') throw new Error('floor: key is held')
          return { key, value }
        },
        release: (lease) => client.delIfEqual(lease.key, lease.value),
        async othersCanAcquire(key) {
          return (await client.set(key, 'intruder', 'PX', TTL_MS, 'NX')) === 'OK'
        },
        close: async () => client.disconnect(),
      }
    },
  },
  'keyed-lock': {
    label: 'keyed-lock',
    detail: "`new AsyncLock({ redis, name: 'bench', ttl: 10000 })`, `lock.lock(key, { timeout: 10000 })`",
    contended: true,
    open(url) {
      const AsyncLock = require(ROOT)
      const make = () => new AsyncLock({ redis: url, name: 'bench', ttl: TTL_MS })
      // Only while the reach has not landed is keyed-lock skipped; once it has,
      // any failure here is the row's failure, never a skip. The lease API
      // (lock()) exists for the in-process reaches, so "has lock()" alone
      // does not say the redis option is honoured.
      const landed = () => fs.existsSync(path.join(ROOT, 'lib', 'spaces', 'redis.js'))
      let lock
      try {
        lock = make()
        if (typeof lock.lock !== 'function') throw new Error('AsyncLock({ redis }) has no lock()')
      } catch (err) {
        if (!landed()) throw new Error(`${NOT_BUILT} (${err.message})`)
        throw err
      }
      if (!landed() && !(lock._space && lock._space.timesWaits === true)) {
        throw new Error(`${NOT_BUILT} (no lib/spaces/redis.js; the redis option is not honoured yet)`)
      }
      return {
        acquire: (key) => lock.lock(key, { timeout: WAIT_MS }),
        release: (lease) => lease.release(),
        token: (lease) => lease.token,
        async othersCanAcquire(key) {
          const other = make()
          try {
            const lease = await other.lock(key, { timeout: 200 })
            await lease.release()
            return true
          } catch {
            return false
          } finally {
            await other.close()
          }
        },
        close: () => lock.close(),
      }
    },
  },
  redlock: {
    label: 'redlock',
    detail: 'redlock 5.0.0-beta.2, one ioredis client, defaults (retryDelay 200, retryJitter 100) but retryCount -1 so a waiter never gives up',
    contended: true,
    open: (url) => openRedlock(url, { retryCount: -1 }),
  },
  'redlock-rd10': {
    label: 'redlock rd10',
    detail: 'redlock as above with `retryDelay: 10` (retryJitter stays 100, so many retries wait 0 ms)',
    contended: true,
    open: (url) => openRedlock(url, { retryCount: -1, retryDelay: 10 }),
  },
  'redis-semaphore': {
    label: 'redis-semaphore',
    detail: 'redis-semaphore 5.8.0 `Mutex`, one ioredis client, lockTimeout 10000, acquireTimeout 10000, retryInterval 10 (default)',
    contended: true,
    open(url) {
      const { Mutex } = require('redis-semaphore')
      const client = ioredisClient(url)
      const mutexes = new Map()
      const mutexFor = (key) => {
        if (!mutexes.has(key)) mutexes.set(key, new Mutex(client, key, { lockTimeout: TTL_MS, acquireTimeout: WAIT_MS }))
        return mutexes.get(key)
      }
      return {
        async acquire(key) {
          const mutex = mutexFor(key)
          await mutex.acquire()
          return mutex
        },
        release: (mutex) => mutex.release(),
        async othersCanAcquire(key) {
          const other = new Mutex(client, key, { lockTimeout: TTL_MS, acquireTimeout: 200 })
          try {
            await other.acquire()
            await other.release()
            return true
          } catch {
            return false
          }
        },
        close: async () => client.disconnect(),
      }
    },
  },
}

function openRedlock(url, settings) {
  const Redlock = require('redlock').default
  const client = ioredisClient(url)
  const redlock = new Redlock([client], settings)
  redlock.on('error', () => {}) // ResourceLockedError per failed attempt: expected while waiting
  return {
    acquire: (key) => redlock.acquire([key], TTL_MS),
    release: (lock) => lock.release(),
    async othersCanAcquire(key) {
      try {
        const lock = await redlock.acquire([key], TTL_MS, { retryCount: 0 })
        await lock.release()
        return true
      } catch {
        return false
      }
    },
    close: async () => client.disconnect(),
  }
}

const ALL_LIBS = Object.keys(LIBS)

// (c): counted keys. Each client takes one of the key's `permits` at a time.
const SEM_LIBS = {
  'keyed-lock': {
    label: 'keyed-lock',
    detail: "`new AsyncLock({ redis, name: 'bench', ttl: 10000, permits: N })`, `lock.lock(key, { timeout: 10000 })` (weight 1)",
    open(url, permits) {
      const AsyncLock = require(ROOT)
      const lock = new AsyncLock({ redis: url, name: 'bench', ttl: TTL_MS, permits })
      return {
        acquire: (key) => lock.lock(key, { timeout: WAIT_MS }),
        release: (lease) => lease.release(),
        token: (lease) => lease.token,
        close: () => lock.close(),
      }
    },
  },
  'redis-semaphore': {
    label: 'redis-semaphore',
    detail: 'redis-semaphore 5.8.0 `Semaphore(client, key, N)`, one ioredis client, lockTimeout 10000, acquireTimeout 10000, retryInterval 10 (default)',
    open(url, permits) {
      const { Semaphore } = require('redis-semaphore')
      const client = ioredisClient(url)
      const semaphores = new Map()
      const semaphoreFor = (key) => {
        if (!semaphores.has(key)) semaphores.set(key, new Semaphore(client, key, permits, { lockTimeout: TTL_MS, acquireTimeout: WAIT_MS }))
        return semaphores.get(key)
      }
      return {
        async acquire(key) {
          const semaphore = semaphoreFor(key)
          await semaphore.acquire()
          return semaphore
        },
        release: (semaphore) => semaphore.release(),
        close: async () => client.disconnect(),
      }
    },
  },
}

// --------------------------------------------------------------- child ----

/** Busy-waits: a 1 ms setTimeout lasts 1–2 ms, and the hold must be the same for every library. */
function hold(ms) {
  const until = now() + ms
  while (now() < until);
}

async function childMain(cfg) {
  const send = (msg) => process.send(msg)
  let lib
  try {
    lib = cfg.permits ? SEM_LIBS[cfg.lib].open(cfg.url, cfg.permits) : LIBS[cfg.lib].open(cfg.url)
    // Warm the connection and the library's scripts on a key of our own,
    // then check the library excludes at all: a lock that lets a second
    // holder in would "win" every row below.
    const warmKey = `${cfg.key}:warm:${cfg.client}`
    for (let i = 0; i < 20; i++) await lib.release(await lib.acquire(warmKey))
    if (cfg.checkExclusion) {
      const lease = await lib.acquire(warmKey)
      const intruded = await lib.othersCanAcquire(warmKey)
      await lib.release(lease)
      if (intruded) throw new Error('a second acquirer got the key while it was held')
    }
  } catch (err) {
    send({ type: 'failed', message: err && err.message ? err.message : String(err) })
    return
  }
  send({ type: 'ready' })
  const go = await new Promise((resolve) => process.once('message', resolve))
  await sleep(Math.max(0, go.start - now()))
  // Per acquisition: asked, acquired, release started, release done.
  const records = []
  const tokens = []
  let errors = 0
  let lastError = null
  let count = 0
  while (now() < go.until) {
    const asked = now()
    let lease
    try {
      lease = await lib.acquire(cfg.key)
    } catch (err) {
      errors++
      lastError = err && err.message
      continue
    }
    const acquired = now()
    if (cfg.hold > 0) hold(cfg.hold)
    const releasing = now()
    try {
      await lib.release(lease)
    } catch (err) {
      errors++
      lastError = err && err.message
    }
    const released = now()
    count++
    if (cfg.record) {
      records.push(asked, acquired, releasing, released)
      if (lib.token) tokens.push(Number(lib.token(lease)))
    }
    if (cfg.think > 0) await sleep(cfg.think)
  }
  send({ type: 'result', count, records, tokens, errors, lastError, ended: now() })
  await new Promise((resolve) => process.once('message', resolve))
  try {
    await lib.close()
  } catch (err) {
    console.error(`${cfg.lib}: close() failed: ${err.message}`)
  }
  send({ type: 'closed' })
  process.disconnect()
}

/** The round trip every lock pays at least twice: sequential ioredis PINGs, p50 and p99 in ms. */
async function pingChild(url) {
  const client = ioredisClient(url)
  for (let i = 0; i < 200; i++) await client.ping()
  const times = []
  for (let i = 0; i < 3000; i++) {
    const t0 = now()
    await client.ping()
    times.push(now() - t0)
  }
  times.sort((a, b) => a - b)
  client.disconnect()
  process.send({ p50: percentile(times, 50), p99: percentile(times, 99) })
  process.disconnect()
}

function measurePing(url) {
  return new Promise((resolve) => {
    const child = fork(__filename, ['--ping', url], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    let result = null
    child.on('message', (m) => (result = m))
    child.on('exit', () => resolve(result))
  })
}

// -------------------------------------------------------------- parent ----

function parseArgs(argv) {
  const args = {
    rounds: 3,
    seconds: 3,
    clients: 4,
    hold: 1,
    think: 0,
    uncontendedSeconds: 2,
    libs: ALL_LIBS,
    monitor: true,
    out: path.join(__dirname, 'results'),
    quick: false,
    semPermits: 2,
    semClients: 4,
    sem: true,
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const num = () => {
      const v = Number(argv[++i])
      if (!Number.isFinite(v) || v < 0) throw new Error(`${a} needs a number`)
      return v
    }
    if (a === '--rounds') args.rounds = num()
    else if (a === '--seconds') args.seconds = num()
    else if (a === '--clients') args.clients = num()
    else if (a === '--hold') args.hold = num()
    else if (a === '--think') args.think = num()
    else if (a === '--uncontended-seconds') args.uncontendedSeconds = num()
    else if (a === '--libs') args.libs = argv[++i].split(',')
    else if (a === '--no-monitor') args.monitor = false
    else if (a === '--out') args.out = path.resolve(argv[++i])
    else if (a === '--quick') args.quick = true
    else if (a === '--sem-permits') args.semPermits = Math.max(2, Math.floor(num()))
    else if (a === '--sem-clients') args.semClients = num()
    else if (a === '--no-sem') args.sem = false
    else throw new Error(`unknown option ${a}`)
  }
  if (args.quick) {
    if (!argv.includes('--rounds')) args.rounds = 1
    if (!argv.includes('--seconds')) args.seconds = 1
    if (!argv.includes('--uncontended-seconds')) args.uncontendedSeconds = 0.5
  }
  for (const lib of args.libs) if (!LIBS[lib]) throw new Error(`unknown library ${lib} (known: ${ALL_LIBS.join(', ')})`)
  return args
}

/** Counts MONITOR lines, to tell commands a client sent from those a Lua script ran. */
class Monitor {
  constructor(server) {
    this.script = 0
    this.client = 0
    this.marks = []
    this.waiters = []
    this.rest = ''
    this.socket = server.socketPath ? net.createConnection(server.socketPath) : net.createConnection(server.port, '127.0.0.1')
    this.socket.setEncoding('utf8')
    this.socket.write('MONITOR\r\n')
    this.socket.on('data', (chunk) => this.onData(chunk))
    this.ready = new Promise((resolve, reject) => {
      this.onReady = resolve
      this.socket.on('error', reject)
    })
  }
  onData(chunk) {
    const lines = (this.rest + chunk).split('\r\n')
    this.rest = lines.pop()
    for (const line of lines) {
      if (line === '+OK') this.onReady()
      else if (line.includes('] "INFO" "commandstats"')) {
        this.marks.push({ script: this.script, client: this.client })
        const waiter = this.waiters.shift()
        if (waiter) waiter()
      } else if (/^\+\d+\.\d+ \[\d+ lua\]/.test(line)) this.script++
      else if (line.startsWith('+')) this.client++
    }
  }
  /** Resolves once the stream has reached the n-th commandstats call: everything before it is counted. */
  reached(n) {
    if (this.marks.length >= n) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('MONITOR stream fell behind')), 10000)
      this.waiters.push(() => {
        clearTimeout(timer)
        this.reached(n).then(resolve, reject)
      })
    })
  }
  close() {
    this.socket.destroy()
  }
}

function commandCalls(info) {
  let total = 0
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (m[1] !== 'info') total += Number(m[2])
  return total
}

/**
 * Forks `clients` processes of one library, lets them warm up, then opens
 * the measured window for all at once. Returns every client's result plus
 * the commands Redis ran during the window, or a failure.
 */
async function runClients(ctx, lib, { clients, key, hold, think, seconds, record, checkExclusion, permits }) {
  const children = []
  const cleanup = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  }
  try {
    const ready = []
    for (let i = 0; i < clients; i++) {
      const cfg = { lib, url: ctx.server.url, key, hold, think, record, checkExclusion, client: i, permits }
      const child = fork(__filename, ['--child', JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      children.push(child)
      const messages = []
      const waiters = []
      child.on('message', (m) => (waiters.length ? waiters.shift()(m) : messages.push(m)))
      child.on('exit', (code, signal) => {
        const gone = { type: 'exited', code, signal }
        while (waiters.length) waiters.shift()(gone)
        messages.push(gone)
      })
      child.next = (ms) =>
        new Promise((resolve) => {
          if (messages.length) return resolve(messages.shift())
          const waiter = (m) => (clearTimeout(timer), resolve(m))
          const timer = setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1)
            resolve({ type: 'timeout', ms })
          }, ms)
          waiters.push(waiter)
        })
      ready.push(child.next(30000))
    }
    for (const m of await Promise.all(ready)) {
      if (m.type !== 'ready') throw new Error(describe(m))
    }
    // Every commandstats call is also a mark on the MONITOR stream; count
    // them as they are sent, so a failed run cannot shift later windows.
    const before = commandCalls(await ctx.server.command('INFO', 'commandstats'))
    const beforeMark = ++ctx.infoCalls
    const start = now() + 50
    const until = start + seconds * 1000
    const results = children.map((c) => c.next(seconds * 1000 + 60000))
    for (const c of children) c.send({ type: 'go', start, until })
    const out = []
    for (const m of await Promise.all(results)) {
      if (m.type !== 'result') throw new Error(describe(m))
      out.push(m)
    }
    const after = commandCalls(await ctx.server.command('INFO', 'commandstats'))
    const afterMark = ++ctx.infoCalls
    let scriptCalls = null
    if (ctx.monitor) {
      await ctx.monitor.reached(afterMark)
      scriptCalls = ctx.monitor.marks[afterMark - 1].script - ctx.monitor.marks[beforeMark - 1].script
    }
    // close() must let the process exit: a library that keeps it alive
    // would hang every user's shutdown.
    const closed = children.map((c) => c.next(10000))
    for (const c of children) c.send({ type: 'close' })
    const notes = []
    for (const m of await Promise.all(closed)) if (m.type !== 'closed') notes.push(`close(): ${describe(m)}`)
    const exits = await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : c.next(3000))))
    if (exits.some((m) => m && m.type === 'timeout')) notes.push('a client process was still alive 3 s after close()')
    return { ok: true, start, until, clients: out, serverCalls: after - before, scriptCalls, notes }
  } catch (err) {
    return { ok: false, failure: err.message }
  } finally {
    cleanup()
  }
}

function describe(m) {
  if (m.type === 'failed') return m.message
  if (m.type === 'exited') return `client exited (${m.code ?? m.signal})`
  if (m.type === 'timeout') return `no answer within ${m.ms / 1000} s`
  return `unexpected message ${JSON.stringify(m).slice(0, 200)}`
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length === 0 ? NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : NaN)

function commandsPer(run, n) {
  const server = run.serverCalls / n
  const client = run.scriptCalls === null ? null : (run.serverCalls - run.scriptCalls) / n
  return { server, client }
}

/** Uncontended: ops/s over the measured window. */
function analyzeUncontended(run) {
  const c = run.clients[0]
  const seconds = (c.ended - run.start) / 1000
  return { opsPerSec: c.count / seconds, count: c.count, errors: c.errors, lastError: c.lastError, ...commandsPer(run, c.count) }
}

/** Contended: throughput, hand-off, waits, fairness, exclusion and fencing from every client's intervals. */
function analyzeContended(run, seconds) {
  const acqs = []
  run.clients.forEach((c, client) => {
    for (let i = 0; i < c.records.length; i += 4) {
      acqs.push({ client, asked: c.records[i], acquired: c.records[i + 1], releasing: c.records[i + 2], token: c.tokens[i / 4] })
    }
  })
  acqs.sort((a, b) => a.acquired - b.acquired)
  const inWindow = acqs.filter((a) => a.acquired <= run.until).length
  const handoffs = []
  const passes = []
  let self = 0
  let violations = 0
  let heldUntil = -Infinity
  let holder = -1
  let tokensIncrease = acqs.length > 0 && acqs.every((a) => Number.isFinite(a.token))
  for (let i = 0; i < acqs.length; i++) {
    const a = acqs[i]
    // Held from acquired to releasing; anyone else's acquire inside that
    // span is a second holder.
    if (a.acquired < heldUntil && a.client !== holder) violations++
    if (a.releasing > heldUntil) {
      heldUntil = a.releasing
      holder = a.client
    }
    if (i > 0) {
      const prev = acqs[i - 1]
      handoffs.push(a.acquired - prev.releasing)
      if (prev.client === a.client) self++
      else passes.push(a.acquired - prev.releasing)
      if (tokensIncrease && !(a.token > prev.token)) tokensIncrease = false
    }
  }
  handoffs.sort((x, y) => x - y)
  passes.sort((x, y) => x - y)
  const waits = acqs.map((a) => a.acquired - a.asked).sort((x, y) => x - y)
  const shares = run.clients.map((c) => c.count)
  const errors = run.clients.reduce((n, c) => n + c.errors, 0)
  const lastError = run.clients.map((c) => c.lastError).find(Boolean) || null
  return {
    acqPerSec: inWindow / seconds,
    count: acqs.length,
    handoffP50: percentile(handoffs, 50),
    handoffP99: percentile(handoffs, 99),
    passP50: percentile(passes, 50),
    passP99: percentile(passes, 99),
    waitP50: percentile(waits, 50),
    waitP99: percentile(waits, 99),
    waitMax: waits.length ? waits[waits.length - 1] : NaN,
    selfPct: handoffs.length ? (100 * self) / handoffs.length : NaN,
    shareMin: Math.min(...shares),
    shareMax: Math.max(...shares),
    violations,
    errors,
    lastError,
    tokensIncrease: run.clients.some((c) => c.tokens.length > 0) ? tokensIncrease : null,
    ...commandsPer(run, acqs.length),
  }
}

/**
 * (c): throughput, hand-off, waits, fairness and exclusion on a key of
 * `permits`. Permits are interchangeable, so a grant is taken to use the
 * permit that has been free the longest (freed by the earliest release not
 * yet taken); when the grantee was already waiting when that release
 * started, the time from it to the grant is a hand-off (a client asking
 * after the release, e.g. the releaser taking it back, is no hand-off). A
 * violation is a grant while `permits` holders already held the key.
 */
function analyzeSemaphore(run, seconds, permits) {
  const acqs = []
  run.clients.forEach((c, client) => {
    for (let i = 0; i < c.records.length; i += 4) {
      acqs.push({ client, asked: c.records[i], acquired: c.records[i + 1], releasing: c.records[i + 2] })
    }
  })
  acqs.sort((a, b) => a.acquired - b.acquired)
  const inWindow = acqs.filter((a) => a.acquired <= run.until).length
  const releases = acqs.map((a) => a.releasing).sort((x, y) => x - y)
  const events = acqs.flatMap((a) => [[a.acquired, 1], [a.releasing, -1]]).sort((p, q) => p[0] - q[0] || p[1] - q[1])
  let out = 0
  let violations = 0
  for (const [, delta] of events) {
    out += delta
    if (out > permits) violations++
  }
  const handoffs = []
  // The permits free before the window's first grants have no release.
  const free = new Array(permits).fill(-Infinity)
  let head = 0
  let r = 0
  for (const a of acqs) {
    while (r < releases.length && releases[r] <= a.acquired) free.push(releases[r++])
    if (head >= free.length) continue
    const freed = free[head++]
    if (a.asked < freed) handoffs.push(a.acquired - freed)
  }
  handoffs.sort((x, y) => x - y)
  const waits = acqs.map((a) => a.acquired - a.asked).sort((x, y) => x - y)
  const shares = run.clients.map((c) => c.count)
  return {
    acqPerSec: inWindow / seconds,
    count: acqs.length,
    handoffP50: percentile(handoffs, 50),
    handoffP99: percentile(handoffs, 99),
    waitP50: percentile(waits, 50),
    waitP99: percentile(waits, 99),
    waitMax: waits.length ? waits[waits.length - 1] : NaN,
    shareMin: Math.min(...shares),
    shareMax: Math.max(...shares),
    violations,
    errors: run.clients.reduce((n, c) => n + c.errors, 0),
    lastError: run.clients.map((c) => c.lastError).find(Boolean) || null,
    ...commandsPer(run, acqs.length),
  }
}

const fmtRate = (x) => (x >= 1e4 ? `${(x / 1e3).toFixed(1)}k` : x >= 100 ? x.toFixed(0) : x.toFixed(1))
const fmtMs = (x) => (!Number.isFinite(x) ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3))
const fmtRatio = (r) => (!Number.isFinite(r) ? '–' : r >= 10 ? `${r.toFixed(0)}×` : `${r.toFixed(2)}×`)
const fmtCmds = (c) => (c.client === null ? `– (${c.server.toFixed(1)})` : `${c.client.toFixed(2)} (${c.server.toFixed(1)})`)

/** Median over the rounds that succeeded; a failure in any round is the cell's value. */
function summarize(runs, key) {
  const failed = runs.find((r) => !r.ok)
  if (failed) return { failed: true, label: `FAIL (${runs.filter((r) => !r.ok).length}/${runs.length})`, detail: failed.failure }
  const stats = runs.map((r) => r.stats)
  const med = {}
  for (const k of Object.keys(stats[0])) {
    const values = stats.map((s) => s[k])
    if (typeof values[0] === 'number') med[k] = median(values)
  }
  med.client = stats[0].client === null ? null : median(stats.map((s) => s.client))
  med.min = Math.min(...stats.map((s) => s[key]))
  med.max = Math.max(...stats.map((s) => s[key]))
  med.violations = stats.reduce((n, s) => n + (s.violations || 0), 0)
  med.errors = stats.reduce((n, s) => n + s.errors, 0)
  med.lastError = stats.map((s) => s.lastError).find(Boolean) || null
  med.tokensIncrease = stats.every((s) => s.tokensIncrease == null) ? null : stats.every((s) => s.tokensIncrease !== false)
  med.notes = [...new Set(runs.flatMap((r) => r.notes || []))]
  return med
}

function buildReport(args, meta, cellsA, cellsB, skipped, cellsC = {}) {
  const L = []
  L.push('# keyed-lock Redis benchmark')
  L.push('')
  L.push(
    `Measured ${meta.date}, ${meta.cpu} × ${meta.cores}, Node ${meta.node}, redis-server ${meta.redis} on 127.0.0.1 (one throwaway server), ` +
      `${args.rounds} round(s), libraries interleaved and rotated; every client in its own process. ` +
      `keyed-lock at ${meta['keyed-lock']}; versions: ${meta.versions}.`,
  )
  L.push('')
  if (meta.ping) {
    L.push(`One ioredis PING round trip (1 client, sequential): p50 ${fmtMs(meta.ping.p50)} ms, p99 ${fmtMs(meta.ping.p99)} ms.`)
    L.push('')
  }
  const ref = (cells, name) => (cells[name] && !cells[name].failed ? cells[name] : null)

  L.push(`## (a) Uncontended: 1 client, sequential acquire + release, ${args.uncontendedSeconds} s per round`)
  L.push('')
  L.push('ops/s: median over rounds (min–max). × = ops/s ratio (>1 = faster). Commands per op: client-sent (all Redis ran, incl. inside scripts).')
  L.push('')
  L.push('| library | ops/s | vs floor | vs redlock | vs redis-semaphore | cmds/op |')
  L.push('|---|---|---:|---:|---:|---:|')
  for (const lib of args.libs) {
    const c = cellsA[lib]
    if (!c) continue
    if (c.failed) {
      L.push(`| ${LIBS[lib].label} | **${c.label}** | | | | |`)
      continue
    }
    const ratio = (name) => (ref(cellsA, name) && name !== lib ? fmtRatio(c.opsPerSec / ref(cellsA, name).opsPerSec) : '–')
    L.push(
      `| ${LIBS[lib].label} | ${fmtRate(c.opsPerSec)} (${fmtRate(c.min)}–${fmtRate(c.max)}) | ${ratio('floor')} | ${ratio('redlock')} | ${ratio('redis-semaphore')} | ${fmtCmds(c)} |`,
    )
  }
  L.push('')

  const pattern = args.think > 0 ? `, then ${args.think} ms outside the lock` : ', re-requesting at once'
  L.push(`## (b) Contended: ${args.clients} clients on one key, hold ${args.hold} ms${pattern}, ${args.seconds} s per round`)
  L.push('')
  L.push(
    'acq/s over the window; hand-off = from a holder starting release() to the next acquire resolving (any client); ' +
      'to another = the same, only where another client took the key next; ' +
      'wait = from calling acquire to it resolving; self = hand-offs where the releaser got the key back; ' +
      'share = acquisitions of the least / most served client; violations = acquisitions inside another client’s hold (summed over rounds). ' +
      'vs columns: acq/s ratio, then how many times shorter the hand-off p50 is.',
  )
  L.push('')
  L.push('| library | acq/s | vs redlock | vs redis-semaphore | hand-off p50 / p99 ms | to another p50 / p99 ms | wait p50 / p99 / max ms | self | min/max share | violations | cmds/acq | errors |')
  L.push('|---|---|---:|---:|---|---|---|---:|---|---:|---:|---:|')
  for (const lib of args.libs) {
    const c = cellsB[lib]
    if (!c) continue
    if (c.failed) {
      L.push(`| ${LIBS[lib].label} | **${c.label}** | | | | | | | | | | |`)
      continue
    }
    const vs = (name) => {
      const r = ref(cellsB, name)
      if (!r || name === lib) return '–'
      return `${fmtRatio(c.acqPerSec / r.acqPerSec)}, ${fmtRatio(r.handoffP50 / c.handoffP50)}`
    }
    L.push(
      `| ${LIBS[lib].label} | ${fmtRate(c.acqPerSec)} (${fmtRate(c.min)}–${fmtRate(c.max)}) | ${vs('redlock')} | ${vs('redis-semaphore')} | ` +
        `${fmtMs(c.handoffP50)} / ${fmtMs(c.handoffP99)} | ${fmtMs(c.passP50)} / ${fmtMs(c.passP99)} | ${fmtMs(c.waitP50)} / ${fmtMs(c.waitP99)} / ${fmtMs(c.waitMax)} | ` +
        `${c.selfPct.toFixed(0)}% | ${c.shareMin.toFixed(0)}/${c.shareMax.toFixed(0)} | ${c.violations} | ${fmtCmds(c)} | ${c.errors} |`,
    )
  }
  L.push('')
  const semLibs = Object.keys(cellsC)
  if (semLibs.length > 0) {
    L.push(`## (c) Semaphore: ${args.semClients} clients on one key of ${args.semPermits} permits, one permit each, hold ${args.hold} ms${pattern}, ${args.seconds} s per round`)
    L.push('')
    L.push(
      'hand-off = from a holder starting release() to the grant of a client that was already waiting; ' +
        'share = acquisitions of the least / most served client; violations = grants while every permit was out (summed over rounds). ' +
        'vs redis-semaphore: acq/s ratio, then how many times shorter the hand-off p50 is.',
    )
    L.push('')
    L.push('| library | acq/s | vs redis-semaphore | hand-off p50 / p99 ms | wait p50 / p99 / max ms | min/max share | violations | cmds/acq | errors |')
    L.push('|---|---|---:|---|---|---|---:|---:|---:|')
    for (const lib of semLibs) {
      const c = cellsC[lib]
      if (c.failed) {
        L.push(`| ${SEM_LIBS[lib].label} | **${c.label}** | | | | | | | |`)
        continue
      }
      const r = ref(cellsC, 'redis-semaphore')
      const vs = r && lib !== 'redis-semaphore' ? `${fmtRatio(c.acqPerSec / r.acqPerSec)}, ${fmtRatio(r.handoffP50 / c.handoffP50)}` : '–'
      L.push(
        `| ${SEM_LIBS[lib].label} | ${fmtRate(c.acqPerSec)} (${fmtRate(c.min)}–${fmtRate(c.max)}) | ${vs} | ` +
          `${fmtMs(c.handoffP50)} / ${fmtMs(c.handoffP99)} | ${fmtMs(c.waitP50)} / ${fmtMs(c.waitP99)} / ${fmtMs(c.waitMax)} | ` +
          `${c.shareMin.toFixed(0)}/${c.shareMax.toFixed(0)} | ${c.violations} | ${fmtCmds(c)} | ${c.errors} |`,
      )
    }
    L.push('')
  }
  L.push('## Libraries')
  L.push('')
  for (const lib of args.libs) L.push(`- **${LIBS[lib].label}**: ${LIBS[lib].detail}`)
  for (const lib of semLibs) L.push(`- (c) **${SEM_LIBS[lib].label}**: ${SEM_LIBS[lib].detail}`)
  if (!args.monitor) L.push('- Run with --no-monitor: client-sent commands were not separated from script-internal ones.')
  const notes = []
  for (const [phase, cells] of [['a', cellsA], ['b', cellsB], ['c', cellsC]]) {
    for (const lib of phase === 'c' ? semLibs : args.libs) {
      const c = cells[lib]
      if (!c) continue
      if (c.failed) notes.push(`- (${phase}) ${(phase === 'c' ? SEM_LIBS : LIBS)[lib].label}: ${c.detail}`)
      else {
        const label = (phase === 'c' ? SEM_LIBS : LIBS)[lib].label
        if (c.errors) notes.push(`- (${phase}) ${label}: ${c.errors} failed acquire/release call(s), e.g. ${c.lastError}`)
        for (const n of c.notes) notes.push(`- (${phase}) ${label}: ${n}`)
        if (c.tokensIncrease === false) notes.push(`- (${phase}) ${label}: fencing tokens did NOT strictly increase in acquisition order`)
        if (c.tokensIncrease === true) notes.push(`- (${phase}) ${label}: fencing tokens strictly increased in acquisition order`)
      }
    }
  }
  for (const s of skipped) notes.push(`- ${s}`)
  if (notes.length) L.push('', '## Notes', '', ...notes)
  return L.join('\n') + '\n'
}

/** Which keyed-lock was measured: the commit, and whether the tree had uncommitted changes. */
function keyedLockRevision() {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return `version ${versionOf('..')}`
  }
}

function versionOf(name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version
  } catch {
    return '?'
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  const { startRedis } = require('../support/redis-harness.js')
  const skipped = []
  const server = await startRedis()
  const ctx = { server, infoCalls: 0, monitor: args.monitor ? new Monitor(server) : null }
  try {
    if (ctx.monitor) await ctx.monitor.ready
    const info = await server.command('INFO', 'server')
    const redisVersion = (info.match(/redis_version:(\S+)/) || [])[1] || '?'
    let libsA = [...args.libs]
    let libsB = libsA.filter((l) => LIBS[l].contended)
    const rawA = Object.fromEntries(libsA.map((l) => [l, []]))
    const rawB = Object.fromEntries(libsB.map((l) => [l, []]))
    const droppedAsNotBuilt = (lib, run) => {
      if (run.ok || !run.failure.startsWith(NOT_BUILT)) return false
      const note = `${run.failure}: keyed-lock skipped`
      console.log(note)
      skipped.push(note)
      libsA = libsA.filter((l) => l !== lib)
      libsB = libsB.filter((l) => l !== lib)
      return true
    }
    const rotate = (libs, round) => libs.map((_, i) => libs[(i + round) % libs.length])
    const libsC = args.sem ? Object.keys(SEM_LIBS) : []
    const rawC = Object.fromEntries(libsC.map((l) => [l, []]))
    const ping = await measurePing(server.url)
    console.log(
      `redis-server ${redisVersion} at ${server.url}; PING round trip p50 ${ping ? fmtMs(ping.p50) : '?'} ms; ${args.rounds} round(s)`,
    )
    for (let round = 0; round < args.rounds; round++) {
      const line = []
      for (const lib of rotate(libsA, round)) {
        const run = await runClients(ctx, lib, {
          clients: 1,
          key: `bench:a:${lib}:${round}`,
          hold: 0,
          think: 0,
          seconds: args.uncontendedSeconds,
          record: false,
          checkExclusion: true,
        })
        if (droppedAsNotBuilt(lib, run)) continue
        if (run.ok) run.stats = analyzeUncontended(run)
        rawA[lib].push(run)
        line.push(`${lib} ${run.ok ? fmtRate(run.stats.opsPerSec) + '/s' : 'FAIL'}`)
      }
      console.log(`(a) round ${round + 1}/${args.rounds}: ${line.join(', ')}`)
      for (const lib of rotate(libsB, round)) {
        const run = await runClients(ctx, lib, {
          clients: args.clients,
          key: `bench:b:${lib}:${round}`,
          hold: args.hold,
          think: args.think,
          seconds: args.seconds,
          record: true,
          checkExclusion: false,
        })
        if (droppedAsNotBuilt(lib, run)) continue
        if (run.ok) run.stats = analyzeContended(run, args.seconds)
        rawB[lib].push(run)
        const s = run.stats
        console.log(
          `(b) round ${round + 1}/${args.rounds} ${lib}: ` +
            (run.ok
              ? `${fmtRate(s.acqPerSec)} acq/s, hand-off p50 ${fmtMs(s.handoffP50)} ms p99 ${fmtMs(s.handoffP99)} ms ` +
                `(to another ${fmtMs(s.passP50)} / ${fmtMs(s.passP99)}), ` +
                `wait max ${fmtMs(s.waitMax)} ms, share ${s.shareMin}/${s.shareMax}, violations ${s.violations}, errors ${s.errors}`
              : `FAIL ${run.failure}`),
        )
      }
      for (const lib of rotate(libsC, round)) {
        const run = await runClients(ctx, lib, {
          clients: args.semClients,
          key: `bench:c:${lib}:${round}`,
          hold: args.hold,
          think: args.think,
          seconds: args.seconds,
          record: true,
          checkExclusion: false,
          permits: args.semPermits,
        })
        if (run.ok) run.stats = analyzeSemaphore(run, args.seconds, args.semPermits)
        rawC[lib].push(run)
        const s = run.stats
        console.log(
          `(c) round ${round + 1}/${args.rounds} ${lib}: ` +
            (run.ok
              ? `${fmtRate(s.acqPerSec)} acq/s, hand-off p50 ${fmtMs(s.handoffP50)} ms p99 ${fmtMs(s.handoffP99)} ms, ` +
                `share ${s.shareMin}/${s.shareMax}, violations ${s.violations}, errors ${s.errors}`
              : `FAIL ${run.failure}`),
        )
      }
    }
    args.libs = libsA
    const cellsC = Object.fromEntries(libsC.map((l) => [l, summarize(rawC[l], 'acqPerSec')]))
    const cellsA = Object.fromEntries(libsA.map((l) => [l, summarize(rawA[l], 'opsPerSec')]))
    const cellsB = Object.fromEntries(libsB.map((l) => [l, summarize(rawB[l], 'acqPerSec')]))
    const meta = {
      ...machine(),
      redis: redisVersion,
      'keyed-lock': keyedLockRevision(),
      ping,
      versions: ['redlock', 'redis-semaphore', 'ioredis'].map((n) => `${n} ${versionOf(n)}`).join(', '),
    }
    const report = buildReport(args, meta, cellsA, cellsB, skipped, cellsC)
    fs.mkdirSync(args.out, { recursive: true })
    fs.writeFileSync(path.join(args.out, 'redis.md'), report)
    const strip = (runs) => runs.map(({ clients, ...rest }) => ({ ...rest, clients: clients && clients.map(({ records, tokens, ...c }) => c) }))
    fs.writeFileSync(
      path.join(args.out, 'redis.json'),
      JSON.stringify({ meta, args, uncontended: Object.fromEntries(Object.entries(rawA).filter(([k]) => libsA.includes(k)).map(([k, v]) => [k, strip(v)])), contended: Object.fromEntries(Object.entries(rawB).filter(([k]) => libsB.includes(k)).map(([k, v]) => [k, strip(v)])), semaphore: Object.fromEntries(Object.entries(rawC).map(([k, v]) => [k, strip(v)])) }, null, 1),
    )
    console.log('\n' + report)
    const broken = [...Object.values(cellsA), ...Object.values(cellsB), ...Object.values(cellsC)].some((c) => c.failed || c.violations > 0)
    if (broken) process.exitCode = 1
  } finally {
    if (ctx.monitor) ctx.monitor.close()
    await server.stop()
  }
}

if (process.argv[2] === '--ping') {
  pingChild(process.argv[3])
} else if (process.argv[2] === '--child') {
  childMain(JSON.parse(process.argv[3])).catch((err) => {
    console.error(err)
    process.exit(1)
  })
} else {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
