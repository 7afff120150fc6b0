'use strict'
// Counted keys across worker threads (`scope: 'process'` with `permits`,
// docs/semaphores.md): threads that name one space share each key's
// permits; a stress test asserts the invariants from inside the critical
// sections with a SharedArrayBuffer counter per key; a terminated or
// crashed worker gives its permits back and leaves the queues; a space
// opened with two limits is a TypeError naming `permits`. The scenarios of
// one thread run on this reach in reach/semaphores.test.js.

const nodeTest = require('node:test')
// A lost grant would leave a test waiting forever: fail it instead.
const test = (name, fn) => nodeTest.test(name, { timeout: 60000 }, fn)
const assert = require('node:assert/strict')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const AsyncLock = require('..')

const ROOT = path.join(__dirname, '..')
let spaces = 0
const spaceName = (what) => `semaphore-workers-${what}-${process.pid}-${++spaces}`

// A worker that takes leases when the main thread says so (holding each
// until told to release), reports every grant with its token and every
// error, and can die holding them.
const AGENT = `
const { parentPort, workerData } = require('node:worker_threads')
const AsyncLock = require(${JSON.stringify(ROOT)})
const lock = new AsyncLock({ scope: 'process', name: workerData.space, permits: workerData.permits })
const held = new Map()
parentPort.on('message', (m) => {
  if (m.op === 'lock') {
    const leased = lock.lock(m.keys, m.opts)
    parentPort.postMessage({ ev: 'requested', tag: m.tag })
    leased.then(
      (lease) => {
        held.set(m.tag, lease)
        parentPort.postMessage({ ev: 'granted', tag: m.tag, token: lease.token })
        if (m.then === 'throw') setImmediate(() => { throw new Error('worker crashed holding permits') })
      },
      (err) => parentPort.postMessage({ ev: 'error', tag: m.tag, message: err.message }),
    )
  } else if (m.op === 'release') {
    held.get(m.tag).release().then(() => parentPort.postMessage({ ev: 'released', tag: m.tag }))
    held.delete(m.tag)
  }
})
parentPort.postMessage({ ev: 'ready' })
`

/** A worker running AGENT; `next(ev, tag)` waits for one of its events. */
function agent(space, permits) {
  const worker = new Worker(AGENT, { eval: true, workerData: { space, permits } })
  const seen = []
  const wanted = []
  worker.on('message', (m) => {
    const i = wanted.findIndex((w) => w.ev === m.ev && (w.tag === undefined || w.tag === m.tag))
    if (i === -1) seen.push(m)
    else wanted.splice(i, 1)[0].resolve(m)
  })
  worker.on('error', () => {}) // the crash test expects it
  const exited = new Promise((resolve) => worker.once('exit', resolve))
  return {
    worker,
    exited,
    send: (m) => worker.postMessage(m),
    next(ev, tag) {
      const i = seen.findIndex((m) => m.ev === ev && (tag === undefined || m.tag === tag))
      if (i !== -1) return Promise.resolve(seen.splice(i, 1)[0])
      return new Promise((resolve) => wanted.push({ ev, tag, resolve }))
    },
    /** Asks for a lease and waits until it is queued (or granted) in the space. */
    async request(tag, keys, opts) {
      this.send({ op: 'lock', tag, keys, opts })
      await this.next('requested', tag)
    },
  }
}

async function agents(space, permits, n) {
  const all = Array.from({ length: n }, () => agent(space, permits))
  await Promise.all(all.map((a) => a.next('ready')))
  return all
}

/** Resolves with whether `promise` settled within `ms` (for "still waiting" checks; a slow machine can only make it pass). */
function settledWithin(promise, ms = 100) {
  let done = false
  promise.then(
    () => (done = true),
    () => (done = true),
  )
  return new Promise((resolve) => setTimeout(() => resolve(done), ms))
}

test('stress: 4 workers × 40 callers over random keys, weights and modes never break the invariants', async () => {
  const permits = 4
  const keys = ['a', 'b', 'c']
  // Per key: [permits out, exclusive holders]; then violations, entered, timed out.
  const sab = new SharedArrayBuffer(4 * (2 * keys.length + 3))
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const AsyncLock = require(${JSON.stringify(ROOT)})
    const { space, permits, keys, sab, seed } = workerData
    const lock = new AsyncLock({ scope: 'process', name: space, permits, maxPending: Infinity })
    const cells = new Int32Array(sab)
    const VIOLATIONS = 2 * keys.length
    let s = seed
    const random = () => {
      s = (s + 0x6d2b79f5) | 0
      let t = Math.imul(s ^ (s >>> 15), 1 | s)
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296
    }
    async function caller() {
      for (let i = 0; i < 25; i++) {
        const n = random() < 0.25 ? 2 : 1
        const chosen = [...keys].sort(() => random() - 0.5).slice(0, n)
        const mode = random() < 0.15 ? 'exclusive' : random() < 0.5 ? 'shared' : undefined
        const weights = chosen.map(() => (mode === 'exclusive' ? permits : mode === 'shared' ? 1 : 1 + Math.floor(random() * permits)))
        const opts = mode === 'exclusive' ? { mode } : { weight: n === 1 ? weights[0] : weights, ...(mode ? { mode } : {}) }
        if (random() < 0.05) opts.timeout = 1 + Math.floor(random() * 5)
        if (random() < 0.03) opts.skipQueue = true
        const fn = async () => {
          Atomics.add(cells, VIOLATIONS + 1, 1)
          chosen.forEach((k, j) => {
            const at = 2 * keys.indexOf(k)
            const before = Atomics.add(cells, at, weights[j])
            if (before + weights[j] > permits) Atomics.add(cells, VIOLATIONS, 1)
            if (Atomics.load(cells, at + 1) !== 0) Atomics.add(cells, VIOLATIONS, 1)
            if (weights[j] === permits) {
              if (before !== 0) Atomics.add(cells, VIOLATIONS, 1)
              Atomics.add(cells, at + 1, 1)
            }
          })
          await new Promise((r) => (random() < 0.5 ? setImmediate(r) : setTimeout(r, 0)))
          chosen.forEach((k, j) => {
            const at = 2 * keys.indexOf(k)
            if (weights[j] === permits) Atomics.sub(cells, at + 1, 1)
            Atomics.sub(cells, at, weights[j])
          })
        }
        try {
          await lock.acquire(n === 1 ? chosen[0] : chosen, fn, opts)
        } catch (err) {
          if (!/timed out/.test(err.message)) throw err
          Atomics.add(cells, VIOLATIONS + 2, 1)
        }
      }
    }
    Promise.all(Array.from({ length: 40 }, caller)).then(() => parentPort.postMessage('done'))
  `
  const space = spaceName('stress')
  const workers = Array.from(
    { length: 4 },
    (_, i) => new Worker(code, { eval: true, workerData: { space, permits, keys, sab, seed: 1000 + i } }),
  )
  await Promise.all(workers.map((w) => new Promise((resolve, reject) => w.once('message', resolve).once('error', reject))))
  const cells = new Int32Array(sab)
  const VIOLATIONS = 2 * keys.length
  const total = 4 * 40 * 25
  assert.equal(cells[VIOLATIONS], 0, 'more than permits out, or an exclusive holder beside another')
  assert.equal(cells[VIOLATIONS + 1] + cells[VIOLATIONS + 2], total, 'every call ran or timed out')
  assert.ok(cells[VIOLATIONS + 1] > total / 2, `most calls ran (${cells[VIOLATIONS + 1]})`)
  for (let i = 0; i < VIOLATIONS; i++) assert.equal(cells[i], 0)
  assert.equal(new AsyncLock({ scope: 'process', name: space, permits }).isBusy(), false, 'nothing stranded')
})

test('permits are shared across threads: FIFO across weights and modes, tokens increase per grant', async () => {
  const space = spaceName('fifo')
  const lock = new AsyncLock({ scope: 'process', name: space, permits: 3 })
  const ws = await agents(space, 3, 3)
  const writer = await lock.lock('k', { mode: 'exclusive' })
  // Behind the main thread's writer: a reader, a writer, two readers, each
  // on its own thread but the last.
  await ws[0].request('r1', 'k', { mode: 'shared' })
  await ws[1].request('w', 'k', { mode: 'exclusive' })
  await ws[2].request('r2', 'k', { mode: 'shared' })
  const r3 = lock.lock('k', { mode: 'shared' })
  assert.equal(lock.queues.k.length, 4)
  await writer.release()
  const r1 = await ws[0].next('granted', 'r1')
  const wGranted = ws[1].next('granted', 'w')
  assert.equal(await settledWithin(wGranted), false, 'the writer waits for r1')
  assert.equal(await settledWithin(r3, 0), false, 'later readers wait behind the writer')
  ws[0].send({ op: 'release', tag: 'r1' })
  const w = await wGranted
  ws[1].send({ op: 'release', tag: 'w' })
  // One release starts both readers, on two threads.
  const [r2, mine] = await Promise.all([ws[2].next('granted', 'r2'), r3])
  const tokens = [writer.token, r1.token, w.token]
  for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `tokens ${tokens}`)
  assert.ok(r2.token > w.token && mine.token > w.token && r2.token !== mine.token, 'every grant its own token')
  ws[2].send({ op: 'release', tag: 'r2' })
  await ws[2].next('released', 'r2')
  await mine.release()
  assert.equal(lock.isBusy(), false)
  await Promise.all(ws.map((a) => a.worker.terminate()))
})

test("a timed-out exclusive head on one thread wakes the shared waiters of two others", async () => {
  const space = spaceName('timeout-head')
  const lock = new AsyncLock({ scope: 'process', name: space, permits: Infinity })
  const [a, b, c] = await agents(space, Infinity, 3)
  const reader = await lock.lock('doc', { mode: 'shared' })
  await a.request('w', 'doc', { mode: 'exclusive', timeout: 150 })
  await b.request('r', 'doc', { mode: 'shared' })
  await c.request('r', 'doc', { mode: 'shared' })
  assert.equal(lock.queues.doc.length, 3)
  assert.equal((await a.next('error', 'w')).message, 'async-lock timed out in queue doc')
  // Both readers run beside the main thread's reader.
  await Promise.all([b.next('granted', 'r'), c.next('granted', 'r')])
  assert.equal(lock.queues.doc.length, 0)
  b.send({ op: 'release', tag: 'r' })
  c.send({ op: 'release', tag: 'r' })
  await Promise.all([b.next('released', 'r'), c.next('released', 'r')])
  await reader.release()
  assert.equal(lock.isBusy(), false)
  await Promise.all([a, b, c].map((w) => w.worker.terminate()))
})

for (const how of ['terminate', 'throw']) {
  test(`a worker that ${how === 'terminate' ? 'is terminated' : 'throws'} gives its permits back and leaves the queues, waking two threads`, async () => {
    const space = spaceName(how)
    const lock = new AsyncLock({ scope: 'process', name: space, permits: 3 })
    const [doomed, other] = await agents(space, 3, 2)
    const mine = await lock.lock('k')
    // The doomed worker holds 2 of k and all of j, and waits for all 3 of k.
    await doomed.request('held', ['k', 'j'], { weight: [2, 3] })
    await doomed.next('granted', 'held')
    await doomed.request('waits', 'k', { weight: 3 })
    // Behind its waiter: one permit each for another worker and this thread.
    await other.request('one', 'k')
    const one = lock.lock('k')
    assert.equal(lock.queues.k.length, 3)
    assert.equal(await settledWithin(one), false, 'k is full, and the doomed head waits first')
    if (how === 'terminate') {
      await doomed.worker.terminate()
    } else {
      doomed.send({ op: 'lock', tag: 'crash', keys: 'x', then: 'throw' })
      assert.equal(await doomed.exited, 1)
    }
    // Its 2 permits came back and its waiter left: both requests behind it run.
    const [lease] = await Promise.all([one, other.next('granted', 'one')])
    assert.equal(lock.isBusy('j'), false, 'every key it held came back')
    assert.equal(lock.queues.k.length, 0)
    // 3 out now (main 2, other 1): an exclusive request waits for them.
    const all = lock.lock('k', { mode: 'exclusive' })
    assert.equal(await settledWithin(all), false)
    other.send({ op: 'release', tag: 'one' })
    await lease.release()
    await mine.release()
    await (await all).release()
    assert.equal(lock.isBusy(), false, 'nothing stranded')
    await other.worker.terminate()
  })
}

test('two threads opening one space with different permits: a TypeError naming permits, nothing queued', async () => {
  const space = spaceName('mismatch')
  const [w] = await agents(space, 3, 1)
  await w.request('held', 'k', { weight: 2 })
  await w.next('granted', 'held')
  for (const permits of [2, undefined, 1, Infinity]) {
    assert.throws(
      () => new AsyncLock({ scope: 'process', name: space, permits }),
      (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG_VALUE' && /option "permits" must be 3, the permits the process space/.test(err.message),
      String(permits),
    )
  }
  const lock = new AsyncLock({ scope: 'process', name: space, permits: 3 })
  assert.deepEqual(Object.keys(lock.queues), ['k'])
  assert.equal(lock.queues.k.length, 0, 'nothing was queued')
  // On the thread that opened it too, and for a mutex space.
  assert.throws(() => new AsyncLock({ scope: 'process', name: space, permits: 4 }), /option "permits" must be 3,/)
  const mutexName = spaceName('mismatch-mutex')
  const mutex = new AsyncLock({ scope: 'process', name: mutexName })
  assert.throws(() => new AsyncLock({ scope: 'process', name: mutexName, permits: 2 }), /option "permits" must be 1 or unset,/)
  assert.equal(mutex.isBusy(), false)
  const rw = new AsyncLock({ scope: 'process', name: spaceName('mismatch-rw'), permits: Infinity })
  assert.throws(() => new AsyncLock({ scope: 'process', name: rw._space.name, permits: 5 }), /option "permits" must be Infinity,/)
  // A bad weight on the process reach: named, before anything is queued.
  assert.throws(() => lock.acquire('k', () => {}, { weight: 4 }), /option "weight"/)
  await assert.rejects(lock.lock('k', { weight: 0 }), /option "weight"/)
  assert.equal(lock.queues.k.length, 0)
  await w.worker.terminate()
})
