'use strict'
// The process reach: `new AsyncLock({ scope: 'process', name })` shared by
// the main thread and worker threads. Each test uses its own space name, so
// tests cannot see each other's keys.

const nodeTest = require('node:test')
// A broken hand-off would leave a test waiting forever: fail it instead.
const test = (name, fn) => nodeTest.test(name, { timeout: 20000 }, fn)
const assert = require('node:assert/strict')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const AsyncLock = require('..')
const alock = require('../alock')

const ROOT = path.join(__dirname, '..')

// A worker that does what the main thread tells it, over messages:
// acquire (callback mode, holding until told to release), release, and the
// ways a worker can die. It reports every grant and every error.
const AGENT = `
const { parentPort, workerData } = require('node:worker_threads')
const AsyncLock = require(${JSON.stringify(ROOT)})
const lock = new AsyncLock({ scope: 'process', name: workerData.space })
const held = new Map()
parentPort.on('message', (m) => {
  if (m.op === 'acquire') {
    lock.acquire(m.keys, (done) => {
      held.set(m.tag, done)
      parentPort.postMessage({ ev: 'granted', tag: m.tag })
      if (m.then === 'release') done()
      else if (m.then === 'exit') process.exit(0)
      else if (m.then === 'throw') setImmediate(() => { throw new Error('worker crashed holding a lock') })
    }, (err) => {
      if (err) parentPort.postMessage({ ev: 'error', tag: m.tag, message: err.message })
    }, m.opts)
    parentPort.postMessage({ ev: 'requested', tag: m.tag })
  } else if (m.op === 'release') {
    held.get(m.tag)()
    held.delete(m.tag)
  }
})
parentPort.postMessage({ ev: 'ready' })
`

/** A worker running AGENT; `next(ev, tag)` waits for one of its events. */
function agent(space) {
  const worker = new Worker(AGENT, { eval: true, workerData: { space } })
  const seen = []
  const wanted = []
  const onEvent = (m) => {
    const i = wanted.findIndex((w) => w.ev === m.ev && (w.tag === undefined || w.tag === m.tag))
    if (i === -1) seen.push(m)
    else wanted.splice(i, 1)[0].resolve(m)
  }
  worker.on('message', onEvent)
  worker.on('error', () => {}) // the crash tests expect it
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
  }
}

async function agents(space, n) {
  const all = Array.from({ length: n }, () => agent(space))
  await Promise.all(all.map((a) => a.next('ready')))
  return all
}

/** Acquires `key` on this thread and returns a function that releases it. */
function hold(lock, key) {
  return new Promise((resolve) => lock.acquire(key, (done) => resolve(done)))
}

const until = async (cond, what) => {
  const deadline = Date.now() + 5000
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what)
    await new Promise((r) => setTimeout(r, 5))
  }
}

test('scope and name are validated', () => {
  for (const opts of [{ scope: 'thread' }, { scope: 1 }]) {
    assert.throws(() => new AsyncLock(opts), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /option "scope"/ })
  }
  for (const name of [undefined, '', 42]) {
    assert.throws(() => new AsyncLock({ scope: 'process', name }), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_VALUE',
      message: /option "name"/,
    })
  }
  assert.doesNotThrow(() => new AsyncLock({ scope: 'isolate' }))
})

test('two locks with the same name on one thread are one lock space', async () => {
  const a = new AsyncLock({ scope: 'process', name: 'same-thread' })
  const b = new AsyncLock({ scope: 'process', name: 'same-thread' })
  const release = await hold(a, 'k')
  assert.equal(b.isBusy('k'), true)
  assert.equal(b.isBusy(), true)
  release()
  assert.equal(b.isBusy('k'), false)
  assert.equal(b.isBusy(), false)
})

test('mutual exclusion across 6 workers (SharedArrayBuffer counter)', async () => {
  const sab = new SharedArrayBuffer(12)
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const AsyncLock = require(${JSON.stringify(ROOT)})
    const lock = new AsyncLock({ scope: 'process', name: 'exclusion' })
    const cells = new Int32Array(workerData.sab)
    ;(async () => {
      for (let i = 0; i < 150; i++) {
        await lock.acquire('k', async () => {
          // cells[0]: holders right now; cells[1]: overlaps seen; cells[2]: total
          if (Atomics.add(cells, 0, 1) !== 0) Atomics.add(cells, 1, 1)
          const v = Atomics.load(cells, 2)
          await new Promise((r) => setImmediate(r))
          Atomics.store(cells, 2, v + 1) // lost updates unless exclusive
          Atomics.sub(cells, 0, 1)
        })
      }
      parentPort.postMessage('done')
    })()
  `
  const workers = Array.from({ length: 6 }, () => new Worker(code, { eval: true, workerData: { sab } }))
  const exits = workers.map((w) => new Promise((r) => w.once('exit', r)))
  await Promise.all(workers.map((w) => new Promise((resolve, reject) => w.once('message', resolve).once('error', reject))))
  const cells = new Int32Array(sab)
  assert.equal(cells[1], 0, 'two holders at once')
  assert.equal(cells[2], 900)
  // Idle workers end on their own: the lock keeps no event loop alive.
  await Promise.all(exits)
})

test('4 workers × 40 concurrent callers with timeouts: never two holders of a key, never a release of a key not held', async () => {
  // Several waiters per thread: a thread queues again while a grant of its
  // own waits in its outbox. The table reuses a granted ticket at once, so
  // if the thread were told table tickets it would start the wrong waiter
  // (src/process.rs, "Tickets are tags").
  const sab = new SharedArrayBuffer(20)
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const AsyncLock = require(${JSON.stringify(ROOT)})
    const lock = new AsyncLock({ scope: 'process', name: 'many-callers', maxPending: Infinity })
    const cells = new Int32Array(workerData.sab) // a, b, c holders; [3] overlaps; [4] calls that ran
    let s = workerData.n + 1
    const random = () => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff
    async function caller() {
      for (let i = 0; i < 25; i++) {
        const k = Math.floor(random() * 3)
        try {
          await lock.acquire(['a', 'b', 'c'][k], async () => {
            if (Atomics.add(cells, k, 1) !== 0) Atomics.add(cells, 3, 1)
            Atomics.add(cells, 4, 1)
            await new Promise((r) => setImmediate(r))
            Atomics.sub(cells, k, 1)
          }, { timeout: random() < 0.05 ? 2 : 0 })
        } catch (err) {
          if (!/timed out/.test(err.message)) throw err
        }
      }
    }
    Promise.all(Array.from({ length: 40 }, caller)).then(() => parentPort.postMessage('done'))
  `
  const workers = Array.from({ length: 4 }, (_, n) => new Worker(code, { eval: true, workerData: { sab, n } }))
  await Promise.all(workers.map((w) => new Promise((resolve, reject) => w.once('message', resolve).once('error', reject))))
  const cells = new Int32Array(sab)
  assert.equal(cells[3], 0, 'two holders of a key at once')
  assert.ok(cells[4] > 2000, `most calls ran (${cells[4]} of 4000)`)
  assert.equal(new AsyncLock({ scope: 'process', name: 'many-callers' }).isBusy(), false)
})

test('FIFO across threads in the order the acquisitions reached the core', async () => {
  const space = 'fifo'
  const lock = new AsyncLock({ scope: 'process', name: space })
  const ws = await agents(space, 6)
  const release = await hold(lock, 'k')
  // One worker at a time: worker i has queued before worker i + 1 asks.
  for (let i = 0; i < ws.length; i++) {
    ws[i].send({ op: 'acquire', keys: 'k', tag: i })
    await ws[i].next('requested', i)
  }
  assert.equal(lock.queues.k.length, 6, 'the main thread sees the workers waiting')
  // Each worker holds the key until main has recorded it: messages from
  // different workers' ports are not ordered with each other.
  const order = []
  const grants = ws.map((w, i) =>
    w.next('granted', i).then(() => {
      order.push(i)
      w.send({ op: 'release', tag: i })
    }),
  )
  release()
  await Promise.all(grants)
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5])
  await until(() => !lock.isBusy('k'), 'the last release')
  await Promise.all(ws.map((w) => w.worker.terminate()))
})

test('a worker waiting on the main thread is granted in FIFO order with main-thread waiters', async () => {
  const space = 'mixed-fifo'
  const lock = new AsyncLock({ scope: 'process', name: space })
  const [w] = await agents(space, 1)
  const release = await hold(lock, 'k')
  const order = []
  const first = lock.acquire('k', () => order.push('main 1'))
  // The worker keeps the key until main has recorded its turn: its
  // "granted" message and main's own grant travel on different channels, so
  // a worker that released at once could be overtaken in `order`.
  w.send({ op: 'acquire', keys: 'k', tag: 'w' })
  await w.next('requested', 'w')
  const last = lock.acquire('k', () => order.push('main 2'))
  const worker = w.next('granted', 'w').then(() => {
    order.push('worker')
    w.send({ op: 'release', tag: 'w' })
  })
  release()
  await Promise.all([first, worker, last])
  assert.deepEqual(order, ['main 1', 'worker', 'main 2'])
  await w.worker.terminate()
})

test('multi-key acquisitions across threads, opposite key orders, no deadlock', async () => {
  const sab = new SharedArrayBuffer(16)
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const AsyncLock = require(${JSON.stringify(ROOT)})
    const lock = new AsyncLock({ scope: 'process', name: 'multi' })
    const cells = new Int32Array(workerData.sab) // a, b, c occupancy; [3] violations
    const sets = [['a', 'b'], ['b', 'a'], ['c', 'a'], ['b', 'c', 'a'], ['a']]
    const at = { a: 0, b: 1, c: 2 }
    ;(async () => {
      for (let i = 0; i < 100; i++) {
        const keys = sets[(i + workerData.n) % sets.length]
        await lock.acquire(keys, async () => {
          for (const k of keys) if (Atomics.add(cells, at[k], 1) !== 0) Atomics.add(cells, 3, 1)
          await new Promise((r) => setImmediate(r))
          for (const k of keys) Atomics.sub(cells, at[k], 1)
        })
      }
      parentPort.postMessage('done')
    })()
  `
  const workers = Array.from({ length: 5 }, (_, n) => new Worker(code, { eval: true, workerData: { sab, n } }))
  await Promise.all(workers.map((w) => new Promise((resolve, reject) => w.once('message', resolve).once('error', reject))))
  assert.equal(new Int32Array(sab)[3], 0, 'a key was held twice at once')
  assert.equal(new AsyncLock({ scope: 'process', name: 'multi' }).isBusy(), false)
})

test('main thread and 4 workers relaying 3 keys: thousands of hand-offs, none lost', async () => {
  // A wake that got lost would leave a waiter queued forever (the test's
  // timeout fails it); a worker whose event loop ended while it still
  // waited would exit before "done". Holds are short (some yield a turn,
  // some release at once) so most grants cross threads.
  const ROUNDS = 1500
  const sab = new SharedArrayBuffer(4 * 9)
  const body = `
    const KEYS = ['a', 'b', 'c']
    // cells[0..2]: holders of a, b, c now; [3] overlaps; [4] grants;
    // [5] grants whose previous holder was another thread; [6..]: last holder of each key
    async function relay(lock, cells, me, rounds) {
      for (let i = 0; i < rounds; i++) {
        const k = (i * 7 + me) % 4
        const keys = k === 3 ? ['c', 'a'] : KEYS[k]
        const at = (typeof keys === 'string' ? [keys] : keys).map((key) => KEYS.indexOf(key))
        const held = () => {
          for (const j of at) {
            if (Atomics.add(cells, j, 1) !== 0) Atomics.add(cells, 3, 1)
            if (Atomics.exchange(cells, 6 + j, me + 1) !== me + 1) Atomics.add(cells, 5, 1)
          }
          Atomics.add(cells, 4, 1)
        }
        const free = () => {
          for (const j of at) Atomics.sub(cells, j, 1)
        }
        if (i % 3 === 0) {
          await lock.acquire(keys, async () => {
            held()
            await new Promise((r) => setImmediate(r))
            free()
          })
        } else {
          await lock.acquire(keys, (done) => {
            held()
            free()
            done()
          })
        }
      }
    }
  `
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const AsyncLock = require(${JSON.stringify(ROOT)})
    ${body}
    const lock = new AsyncLock({ scope: 'process', name: 'relay' })
    relay(lock, new Int32Array(workerData.sab), workerData.me, workerData.rounds).then(() => parentPort.postMessage('done'))
  `
  const relay = new Function(`${body}; return relay`)()
  const workers = Array.from({ length: 4 }, (_, i) => new Worker(code, { eval: true, workerData: { sab, me: i + 1, rounds: ROUNDS } }))
  const finished = workers.map(
    (w, i) =>
      new Promise((resolve, reject) => {
        w.once('message', resolve).once('error', reject)
        w.once('exit', (code) => reject(new Error(`worker ${i + 1} exited (${code}) before it was done`)))
      }),
  )
  const lock = new AsyncLock({ scope: 'process', name: 'relay' })
  await Promise.all([relay(lock, new Int32Array(sab), 0, ROUNDS), ...finished])
  const cells = new Int32Array(sab)
  assert.equal(cells[3], 0, 'a key was held twice at once')
  assert.equal(cells[4], 5 * ROUNDS, 'every acquisition was granted')
  // How many grants cross threads is the scheduler's choice: on a loaded
  // machine a woken thread often takes a key again before the others ask
  // (372 of 7,500 in one CI run, 4,600-6,400 on a quiet one). A lost wake
  // shows as the relay never finishing; this only checks the wake path ran.
  assert.ok(cells[5] > 0, 'no grant crossed threads')
  assert.equal(lock.isBusy(), false)
  await Promise.all(workers.map((w) => w.terminate()))
})

test('timeout and maxPending for a worker waiting on the main thread', async () => {
  const space = 'limits'
  const lock = new AsyncLock({ scope: 'process', name: space })
  const [a, b] = await agents(space, 2)
  const release = await hold(lock, 'k')
  a.send({ op: 'acquire', keys: 'k', tag: 't', opts: { timeout: 50 } })
  const timedOut = await a.next('error', 't')
  assert.equal(timedOut.message, 'async-lock timed out in queue k')
  assert.equal(lock.queues.k.length, 0, 'the timed-out waiter left the queue')
  a.send({ op: 'acquire', keys: 'k', tag: 'q', then: 'release' })
  await a.next('requested', 'q')
  b.send({ op: 'acquire', keys: 'k', tag: 'full', opts: { maxPending: 1 } })
  assert.equal((await b.next('error', 'full')).message, 'Too many pending tasks in queue k')
  // skipQueue from another thread goes in front of the worker's waiter.
  const order = []
  const skipper = lock.acquire('k', () => order.push('skipper'), { skipQueue: true })
  const waiter = a.next('granted', 'q').then(() => order.push('worker'))
  release()
  await Promise.all([skipper, waiter])
  assert.deepEqual(order, ['skipper', 'worker'])
  await Promise.all([a.worker.terminate(), b.worker.terminate()])
})

test('terminate() of a worker holding a lock passes it to the next waiter', async () => {
  const space = 'terminate-holder'
  const lock = new AsyncLock({ scope: 'process', name: space })
  const [w] = await agents(space, 1)
  w.send({ op: 'acquire', keys: ['k', 'j'], tag: 'h' })
  await w.next('granted', 'h')
  let ran = false
  const waiting = lock.acquire('k', () => {
    ran = true
  })
  assert.equal(lock.isBusy('j'), true)
  await w.worker.terminate()
  await waiting
  assert.equal(ran, true)
  assert.equal(lock.isBusy(), false, 'nothing stranded')
})

test('terminate() of a waiting worker takes its entry out of the queue', async () => {
  const space = 'terminate-waiter'
  const lock = new AsyncLock({ scope: 'process', name: space })
  const [w] = await agents(space, 1)
  const release = await hold(lock, 'k')
  w.send({ op: 'acquire', keys: 'k', tag: 'w' })
  await w.next('requested', 'w')
  assert.equal(lock.queues.k.length, 1)
  await w.worker.terminate()
  assert.equal(lock.queues.k.length, 0)
  release()
  assert.equal(lock.isBusy(), false)
})

test('a worker that calls process.exit() while holding a lock frees it', async () => {
  const space = 'process-exit'
  const lock = new AsyncLock({ scope: 'process', name: space })
  const [w] = await agents(space, 1)
  const release = await hold(lock, 'k')
  w.send({ op: 'acquire', keys: 'k', tag: 'x', then: 'exit' })
  await w.next('requested', 'x')
  const next = lock.acquire('k', () => 'mine')
  release() // the worker gets it, then exits holding it
  assert.equal(await next, 'mine')
  assert.equal(await w.exited, 0)
  assert.equal(lock.isBusy(), false)
})

test('an uncaught exception in a worker holding a lock frees it', async () => {
  const space = 'throw'
  const lock = new AsyncLock({ scope: 'process', name: space })
  const [w] = await agents(space, 1)
  const errored = new Promise((resolve) => w.worker.once('error', resolve))
  w.send({ op: 'acquire', keys: 'k', tag: 'x', then: 'throw' })
  await w.next('granted', 'x')
  const next = lock.acquire('k', () => 'mine')
  assert.match((await errored).message, /worker crashed holding a lock/)
  assert.equal(await next, 'mine')
  assert.equal(await w.exited, 1)
  assert.equal(lock.isBusy(), false)
})

test('a waiting worker stays alive until granted, then exits on its own', async () => {
  const space = 'liveness'
  const lock = new AsyncLock({ scope: 'process', name: space })
  const release = await hold(lock, 'k')
  // No message listener, no timer: only the wait can keep this worker alive.
  const code = `
    const { parentPort } = require('node:worker_threads')
    const AsyncLock = require(${JSON.stringify(ROOT)})
    new AsyncLock({ scope: 'process', name: 'liveness' }).acquire('k', () => parentPort.postMessage('granted'))
  `
  const w = new Worker(code, { eval: true })
  let exited = false
  const exit = new Promise((resolve) => w.once('exit', resolve)).then(() => (exited = true))
  const granted = new Promise((resolve) => w.once('message', resolve))
  await until(() => lock.queues.k && lock.queues.k.length === 1, 'the worker to queue')
  await new Promise((r) => setTimeout(r, 100))
  assert.equal(exited, false, 'a waiter keeps its thread alive')
  release()
  assert.equal(await granted, 'granted')
  await exit // once idle, the worker's event loop ends by itself
  assert.equal(lock.isBusy(), false)
})

test("require('keyed-lock/alock').shared is one lock for every thread", async () => {
  assert.equal(typeof alock.shared, 'function')
  assert.notEqual(alock.shared, alock)
  assert.equal(alock.shared, alock.shared)
  const code = `
    const { parentPort } = require('node:worker_threads')
    const lock = require(${JSON.stringify(path.join(ROOT, 'alock.js'))}).shared
    lock('x', (done) => { parentPort.postMessage('granted'); done() })
  `
  let release
  alock.shared('x', (done) => {
    release = done
  })
  // The isolate-wide alock space is a different space: 'x' is free there.
  let isolateRan = false
  alock('x', (done) => {
    isolateRan = true
    done()
  })
  assert.equal(isolateRan, true)
  const w = new Worker(code, { eval: true })
  const exit = new Promise((resolve) => w.once('exit', resolve))
  let granted = false
  const message = new Promise((resolve) => w.once('message', resolve)).then(() => (granted = true))
  await new Promise((r) => setTimeout(r, 100))
  assert.equal(granted, false, 'the worker waits for the main thread')
  release()
  await message
  await exit
})
