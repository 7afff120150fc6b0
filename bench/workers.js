'use strict'
// Cross-thread hand-offs on one key of a scope 'process' lock, against the
// same loop on one thread with the default (isolate) lock, and against the
// machine's own floor for waking one thread from another.
//
// Each contender (a worker thread, the main thread, or an async loop on the
// main thread for the isolate rows) takes the key, stamps the time and its
// id, and releases at once. The next holder reads the stamp: if another
// contender released, that is one hand-off and its release->grant latency.
//
// The "main + 2 workers" rows are the issue-15 figure: the main thread and
// two workers relay one key. Its floors pass a turn round the same three
// threads with no lock at all: one blocking in `Atomics.wait` (the cheapest
// wake the OS gives), one awaiting `Atomics.waitAsync` (the cheapest wake a
// thread's event loop can get, which any lock that runs its grants on the
// event loop pays).
//
//   node bench/workers.js [seconds per row=1] [rounds=1]

const { Worker, isMainThread, workerData, parentPort } = require('node:worker_threads')
const { performance } = require('node:perf_hooks')
const AsyncLock = require('..')

const now = () => performance.timeOrigin + performance.now() // comparable across threads

/** One contender: loops until `until`, returns hand-off latencies (ms) it saw. */
async function contend(lock, id, stamp, until) {
  const latencies = []
  let ops = 0
  while (now() < until) {
    await lock.acquire('k', (done) => {
      const t = now()
      // stamp[1] holds the id of the last releaser + 1 (0: none yet).
      if (stamp[1] !== 0 && stamp[1] !== id + 1) latencies.push(t - stamp[0])
      ops++
      stamp[0] = now()
      stamp[1] = id + 1
      done()
    })
  }
  return { latencies, ops }
}

/**
 * One member of a ring of `n` threads passing a turn (the floor rows):
 * waits for its turn, records the latency since the last pass, passes on.
 * `turn[0]` is whose turn it is, `turn[1]` is 1 once the ring is over.
 */
async function ring(id, n, turn, stamp, until, async) {
  const latencies = []
  let ops = 0
  // A pending waitAsync does not keep a thread's event loop alive.
  const alive = setInterval(() => {}, 1 << 30)
  for (;;) {
    const cur = Atomics.load(turn, 0)
    if (Atomics.load(turn, 1) === 1) break
    if (cur !== id) {
      if (async) await Atomics.waitAsync(turn, 0, cur).value
      else Atomics.wait(turn, 0, cur)
      continue
    }
    const t = now()
    if (stamp[1] !== 0) latencies.push(t - stamp[0])
    ops++
    stamp[0] = now()
    stamp[1] = 1
    if (now() >= until) Atomics.store(turn, 1, 1)
    Atomics.store(turn, 0, (id + 1) % n)
    Atomics.notify(turn, 0)
  }
  // Wake the others so they see the end.
  Atomics.add(turn, 0, n)
  Atomics.notify(turn, 0)
  clearInterval(alive)
  return { latencies, ops }
}

if (!isMainThread) {
  const { kind, id, n, sab, turnSab } = workerData
  const lock = kind === 'lock' ? new AsyncLock({ scope: 'process', name: 'bench/workers' }) : null
  // Booting a worker takes long on a loaded machine: the deadline is set
  // once every contender is ready.
  parentPort.once('message', (until) => {
    const run = lock
      ? contend(lock, id, new Float64Array(sab), until)
      : ring(id, n, new Int32Array(turnSab), new Float64Array(sab), until, kind === 'waitAsync')
    run.then((r) => parentPort.postMessage(r))
  })
  parentPort.postMessage('ready')
} else {
  const seconds = Number(process.argv[2]) || 1
  const rounds = Number(process.argv[3]) || 1

  // p99 is a share of the hand-offs, and threads that take the key
  // uncontended while another is descheduled make fewer hand-offs; the
  // number of slow hand-offs per second reads the tail without that.
  const SLOW_MS = 0.2

  const summarize = (name, results, ms) => {
    const lat = results.flatMap((r) => r.latencies).sort((a, b) => a - b)
    const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] * 1000 : NaN)
    return {
      name,
      handoffs: Math.round(lat.length / (ms / 1000)),
      ops: results.reduce((n, r) => n + r.ops, 0),
      p50: q(0.5),
      p99: q(0.99),
      slow: Math.round(lat.filter((x) => x > SLOW_MS).length / (ms / 1000)),
    }
  }

  /** Runs `workers` workers of `kind`, plus `main()` on this thread if given, to one deadline. */
  const spawn = async (kind, workers, main) => {
    const sab = new SharedArrayBuffer(16)
    const turnSab = new SharedArrayBuffer(8)
    const n = workers + (main ? 1 : 0)
    const spawned = Array.from({ length: workers }, (_, i) => {
      const id = i + (main ? 1 : 0)
      const w = new Worker(__filename, { workerData: { kind, id, n, sab, turnSab } })
      const ready = new Promise((resolve, reject) => w.once('message', resolve).once('error', reject))
      return { w, ready }
    })
    await Promise.all(spawned.map((s) => s.ready))
    const until = now() + seconds * 1000
    const finished = spawned.map(({ w }) => {
      const done = new Promise((resolve, reject) => w.once('message', resolve).once('error', reject))
      w.postMessage(until)
      return done
    })
    if (main) finished.push(main({ sab, turnSab, n, until }))
    return Promise.all(finished)
  }

  const threads = async (n) => summarize(`process, ${n} workers`, await spawn('lock', n), seconds * 1000)

  const mainAnd2 = async () => {
    const lock = new AsyncLock({ scope: 'process', name: 'bench/workers' })
    const run = await spawn('lock', 2, ({ sab, until }) => contend(lock, 0, new Float64Array(sab), until))
    return summarize('process, main + 2 workers', run, seconds * 1000)
  }

  const floor = async (async) => {
    const kind = async ? 'waitAsync' : 'wait'
    const run = await spawn(kind, 2, ({ sab, turnSab, n, until }) =>
      ring(0, n, new Int32Array(turnSab), new Float64Array(sab), until, async),
    )
    return summarize(`floor: Atomics.${kind} ring, main + 2 workers`, run, seconds * 1000)
  }

  const isolate = async (n) => {
    const lock = new AsyncLock()
    const stamp = new Float64Array(2)
    const until = now() + seconds * 1000
    const results = await Promise.all(Array.from({ length: n }, (_, id) => contend(lock, id, stamp, until)))
    return summarize(`isolate, ${n} async loops, 1 thread`, results, seconds * 1000)
  }

  ;(async () => {
    // Warm-up, not reported.
    await isolate(2)
    const fmt = (x) => (Number.isNaN(x) ? '-' : x.toFixed(1))
    const header = () => {
      console.log('| contenders | hand-offs/s | acquisitions/s | release->grant p50 (us) | p99 (us) | over 200 us /s |')
      console.log('| --- | --- | --- | --- | --- | --- |')
    }
    const row = (r) =>
      console.log(`| ${r.name} | ${r.handoffs} | ${Math.round(r.ops / seconds)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${r.slow} |`)
    console.log(`one key, ${seconds}s per row, ${require('node:os').cpus().length} cores, Node ${process.version}`)
    header()
    for (const n of [2, 4]) {
      row(await threads(n))
      row(await isolate(n))
    }
    // The issue-15 figure, interleaved with its floors round by round.
    console.log('\nmain thread + 2 workers relaying one key, beside the floors (same run)')
    header()
    const rows = [mainAnd2, () => floor(true), () => floor(false)]
    const seen = rows.map(() => [])
    for (let round = 0; round < rounds; round++) {
      // Rotate the order each round so no row always runs first.
      for (let i = 0; i < rows.length; i++) {
        const k = (i + round) % rows.length
        const r = await rows[k]()
        seen[k].push(r)
        row(r)
      }
    }
    if (rounds > 1) {
      const med = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]
      console.log('\nmedians over rounds')
      header()
      for (const rs of seen) {
        row({ name: rs[0].name, handoffs: med(rs.map((r) => r.handoffs)), ops: med(rs.map((r) => r.ops)), p50: med(rs.map((r) => r.p50)), p99: med(rs.map((r) => r.p99)), slow: med(rs.map((r) => r.slow)) })
      }
    }
  })()
}
