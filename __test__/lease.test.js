'use strict'
// lock.lock(): what the per-reach scenario suite (reach/leases.test.js, run
// on the isolate, process and Redis reaches) does not cover: worker threads,
// grants racing aborts and timeouts, `await using` syntax, every bad
// argument, the idle-key sweep, and the Lease/LockLostError building blocks.
// Each process-reach test uses its own space name.

const nodeTest = require('node:test')
// A lost grant would leave a test waiting forever: fail it instead.
const test = (name, fn) => nodeTest.test(name, { timeout: 20000 }, fn)
const assert = require('node:assert/strict')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { KeyedLock: AsyncLock, drain, mockTimers } = require('./helpers')
const { Lease, LockLostError, leaseLost } = require('../lib/lease')
const { Stats } = require('../lib/trace')

const ROOT = path.join(__dirname, '..')

let spaces = 0
/** A fresh lock on `scope`, in a process space no other test uses. */
function fresh(scope, opts = {}) {
  return scope === 'process'
    ? new AsyncLock({ ...opts, scope, name: `lease-test-${process.pid}-${spaces++}` })
    : new AsyncLock(opts)
}

const SCOPES = ['isolate', 'process']
const eachScope = (name, fn) => {
  for (const scope of SCOPES) test(`${name} [${scope}]`, () => fn(scope))
}

/** Whether `promise` has settled after the microtasks and immediates run out. */
async function settled(promise) {
  let done = false
  promise.then(
    () => (done = true),
    () => (done = true),
  )
  await drain()
  return done
}

test('tokens strictly increase per key across the main thread and 2 workers on one process space', async (t) => {
  const space = `lease-workers-${process.pid}`
  const n = 300
  // cells[0]: next log slot; cells[1]: holders right now; cells[2]: overlaps seen
  const cells = new Int32Array(new SharedArrayBuffer(12))
  const log = new Float64Array(new SharedArrayBuffer(8 * 3 * n))
  const body = (lock, Atomics, cells, log, n, tag) => async () => {
    for (let i = 0; i < n; i++) {
      const lease = await lock.lock(i % 4 === 0 ? ['k', 'other-' + tag] : 'k')
      if (Atomics.add(cells, 1, 1) !== 0) Atomics.add(cells, 2, 1)
      log[Atomics.add(cells, 0, 1)] = lease.token
      if (i % 5 === 0) await new Promise((resolve) => setImmediate(resolve))
      Atomics.sub(cells, 1, 1)
      await lease.release()
    }
  }
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const AsyncLock = require(${JSON.stringify(ROOT)})
    const lock = new AsyncLock({ scope: 'process', name: workerData.space })
    const cells = new Int32Array(workerData.cells)
    const log = new Float64Array(workerData.log)
    ;(${body.toString()})(lock, Atomics, cells, log, ${n}, workerData.tag)().then(() => parentPort.postMessage('done'))
  `
  const workers = [1, 2].map(
    (tag) => new Worker(code, { eval: true, workerData: { space, tag, cells: cells.buffer, log: log.buffer } }),
  )
  t.after(() => Promise.all(workers.map((w) => w.terminate())))
  const done = workers.map((w) => new Promise((resolve, reject) => w.once('message', resolve).once('error', reject)))
  const lock = new AsyncLock({ scope: 'process', name: space })
  await Promise.all([body(lock, Atomics, cells, log, n, 'main')(), ...done])
  await Promise.all(workers.map((w) => w.terminate()))
  assert.equal(Atomics.load(cells, 0), 3 * n)
  assert.equal(Atomics.load(cells, 2), 0, 'two holders at once')
  for (let i = 1; i < 3 * n; i++) assert.ok(log[i] > log[i - 1], `grant ${i}: token ${log[i]} after ${log[i - 1]}`)
})

test('a grant from another thread racing an abort is passed on, not swallowed', async (t) => {
  const space = `lease-race-${process.pid}`
  const flag = new Int32Array(new SharedArrayBuffer(4))
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads')
    const AsyncLock = require(${JSON.stringify(ROOT)})
    const lock = new AsyncLock({ scope: 'process', name: workerData.space })
    const flag = new Int32Array(workerData.flag)
    lock.lock('k').then((lease) => {
      parentPort.postMessage('held')
      parentPort.once('message', () => {
        lease.release()
        Atomics.store(flag, 0, 1)
        Atomics.notify(flag, 0)
      })
    })
  `,
    { eval: true, workerData: { space, flag: flag.buffer } },
  )
  // A failed assertion must not leave the worker keeping the file alive.
  t.after(() => worker.terminate())
  await new Promise((resolve) => worker.once('message', resolve))
  const lock = new AsyncLock({ scope: 'process', name: space })
  const controller = new AbortController()
  const racing = lock.lock('k', { signal: controller.signal })
  const behind = lock.acquire('k', () => 'behind ran')
  worker.postMessage('release')
  // Block this thread until the worker has released: the core has granted
  // `racing`, but the wake-up cannot run before this thread's loop does.
  // 'not-equal': the worker had released already, before this thread got
  // to wait (the grant is made all the same); only a timeout is a failure.
  assert.notEqual(Atomics.wait(flag, 0, 0, 10000), 'timed-out')
  const reason = new Error('aborted after the grant was made')
  controller.abort(reason)
  assert.equal(await racing.catch((e) => e), reason)
  assert.equal(await behind, 'behind ran')
  assert.equal(lock.isBusy(), false)
  await worker.terminate()
})

test('a grant parked in a delivery further up the stack, then aborted, is passed on [isolate]', async () => {
  const lock = new AsyncLock()
  const onJ = await lock.lock('j')
  const onK = await lock.lock('k')
  const controller = new AbortController()
  const racing = lock.lock('k', { signal: controller.signal })
  const behind = lock.acquire('k', () => 'behind ran')
  const reason = new Error('aborted inside a hand-off')
  // Started by the release of j, inside the engine's delivery loop: the grant
  // of k to `racing` is parked until this callback returns, and the abort
  // comes before it.
  lock.acquire(
    'j',
    (done) => {
      onK.release()
      controller.abort(reason)
      done()
    },
    () => {},
  )
  await onJ.release()
  assert.equal(await racing.catch((e) => e), reason)
  assert.equal(await behind, 'behind ran')
  assert.equal(lock.isBusy(), false)
})

test('a timeout in the same turn as the grant: one outcome, nothing stranded [isolate]', async (t) => {
  // Both orders, on mock timers: the holder's release and the waiter's
  // timeout fire in one tick() (one turn). The grant first: the lease is
  // granted (the timer is cleared); the timeout first: it rejects and the
  // key goes to the next waiter.
  mockTimers(t)
  for (const releaseFirst of [true, false]) {
    const lock = new AsyncLock()
    const holder = await lock.lock('k')
    if (releaseFirst) setTimeout(() => holder.release(), 3)
    const racing = lock.lock('k', { timeout: 3 }).then(
      (lease) => lease,
      (err) => err,
    )
    if (!releaseFirst) setTimeout(() => holder.release(), 3)
    const behind = lock.lock('k')
    t.mock.timers.tick(3)
    const outcome = await racing
    if (releaseFirst) {
      assert.ok(outcome instanceof Lease)
      assert.equal(await settled(behind), false)
      await outcome.release()
    } else {
      assert.equal(outcome.message, 'async-lock timed out in queue k')
    }
    await (await behind).release()
    assert.equal(lock.isBusy(), false)
  }
})
eachScope('await using releases at the end of the block', async (scope) => {
  const asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')
  const lock = fresh(scope)
  const lease = await lock.lock('k')
  assert.equal(typeof lease[asyncDispose], 'function')
  assert.equal(await lease[asyncDispose](), undefined)
  assert.equal(lock.isBusy('k'), false)
  assert.equal(await lease.release(), false, 'dispose was the release')

  const source = `module.exports = async (lock, log) => {
    {
      await using lease = await lock.lock('k')
      log.push(lock.isBusy('k'))
    }
    log.push(lock.isBusy('k'))
    try {
      await using lease = await lock.lock('k')
      throw new Error('inside')
    } catch (err) {
      log.push(err.message, lock.isBusy('k'))
    }
  }`
  let run
  try {
    run = evalModule(source)
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err
    // No `await using` in this V8 (Node < 24): run what TypeScript makes of it.
    const ts = require('typescript')
    const js = ts.transpileModule(source, {
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS },
    }).outputText
    run = evalModule(js)
  }
  const log = []
  await run(lock, log)
  assert.deepEqual(log, [true, false, 'inside', false])
})

function evalModule(source) {
  const module = { exports: {} }
  new Function('module', 'exports', 'require', source)(module, module.exports, require)
  return module.exports
}

test('bad arguments reject with a TypeError naming them, before anything is locked', async () => {
  const lock = new AsyncLock()
  const cases = [
    [[undefined], /keyed-lock: key must be/],
    [[null], /keyed-lock: key must be/],
    [[{}], /keyed-lock: key must be/],
    [[true], /keyed-lock: key must be/],
    [[[]], /keyed-lock: key must be .*; got an array/],
    [[['a', {}]], /keyed-lock: key\[1\] must be/],
    [[['a', ['b']]], /keyed-lock: key\[1\] must be/],
    [['k', 5], /keyed-lock: options must be an object; got 5/],
    [['k', 'fast'], /keyed-lock: options must be an object/],
    [['k', { timeout: -1 }], /keyed-lock: options\.timeout must be/],
    [['k', { timeout: '5' }], /keyed-lock: options\.timeout must be .*; got "5"/],
    [['k', { timeout: NaN }], /keyed-lock: options\.timeout must be/],
    [['k', { timeout: 2 ** 31 }], /keyed-lock: options\.timeout must be/],
    [['k', { signal: {} }], /keyed-lock: options\.signal must be an AbortSignal; got an object/],
    [['k', { signal: null }], /keyed-lock: options\.signal must be an AbortSignal; got null/],
    [['k', { signal: new AbortController() }], /keyed-lock: options\.signal must be an AbortSignal/],
  ]
  for (const [args, message] of cases) {
    let result
    assert.doesNotThrow(() => {
      result = lock.lock(...args)
    })
    await assert.rejects(result, { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message })
  }
  assert.equal(lock.isBusy(), false)
  // Bad input is reported before an aborted signal.
  await assert.rejects(lock.lock({}, { signal: AbortSignal.abort() }), TypeError)
  // null options are no options.
  await (await lock.lock('k', null)).release()
})

test('a space that decides waits itself gets lock() with normalized keys and resolved options', async () => {
  // A stand-in for the Redis reach, through the Space contract
  // (lib/spaces/index.js): every acquire is QUEUED and granted later.
  const calls = []
  const space = {
    timesWaits: true,
    internAll(names) {
      calls.push(['intern', names])
      return names.length === 1 ? 0 : names.map((_, i) => i)
    },
    acquireOne(id, maxPending, skipQueue, waiter, timeout) {
      return this.acquireMany([id], maxPending, skipQueue, waiter, timeout)
    },
    acquireMany(ids, maxPending, skipQueue, waiter, timeout) {
      calls.push(['acquire', ids, maxPending, timeout])
      setImmediate(() => waiter.granted())
      return 1 // QUEUED
    },
    tokens: (waiter, n) => new Array(n).fill(5),
    watch() {},
    releaseIdle(ids) {
      calls.push(['release', ids])
      return 0 // RELEASED
    },
    close: () => {
      calls.push('close')
      return Promise.resolve()
    },
  }
  const fake = { _space: space, _stats: new Stats('redis'), timeout: 250, maxPending: 7 }
  const signal = new AbortController().signal
  const first = await AsyncLock.prototype.lock.call(fake, ['a', 1, 'a'], { signal })
  assert.deepEqual([first.keys, first.tokens], [['a', '1'], [5, 5]])
  const second = await AsyncLock.prototype.lock.call(fake, 'b', { timeout: Infinity })
  assert.deepEqual(second.keys, ['b'])
  assert.equal(await second.release(), true)
  assert.deepEqual(calls, [
    ['intern', ['a', '1']],
    ['acquire', [0, 1], 7, 250],
    ['intern', ['b']],
    ['acquire', [0], 7, 0],
    ['release', 0],
  ])
  // Checks stay in the face: an aborted signal never reaches the space.
  await assert.rejects(AsyncLock.prototype.lock.call(fake, 'c', { signal: AbortSignal.abort() }), { name: 'AbortError' })
  assert.equal(calls.length, 5)
  assert.equal(await AsyncLock.prototype.close.call(fake), undefined)
  assert.equal(calls[5], 'close')
})

test('LockLostError and leaseLost(): what the remote reach uses to tell a holder', async () => {
  assert.equal(AsyncLock.LockLostError, LockLostError)
  let released = 0
  const lease = new Lease({
    keys: ['a', 'b'],
    tokens: [7, 9],
    release: async () => {
      released++
      return true
    },
  })
  assert.equal(lease.token, 9, 'the largest token by default')
  const cause = new Error('PEXPIRE said 0')
  let seen = null
  lease.signal.addEventListener('abort', () => (seen = lease.signal.reason))
  assert.equal(leaseLost(lease, cause, 'a'), true)
  assert.equal(leaseLost(lease, new Error('again')), false, 'lost once')
  assert.ok(seen instanceof LockLostError)
  assert.ok(seen instanceof Error)
  assert.equal(seen.name, 'LockLostError')
  assert.equal(seen.code, 'ELOCKLOST')
  assert.equal(seen.key, 'a')
  assert.equal(seen.token, 7)
  assert.equal(seen.cause, cause)
  assert.equal(seen.message, 'keyed-lock: the lease on a (fencing token 7) was lost')
  assert.match(seen.stack, /^LockLostError: /)
  assert.deepEqual([await lease.release(), await lease.release(), released], [true, false, 1])

  // A reach that finds nothing to release says false; one that throws rejects.
  const gone = new Lease({ keys: ['k'], tokens: [1], release: () => false })
  assert.equal(await gone.release(), false)
  const boom = new Error('connection closed')
  const failing = new Lease({
    keys: ['k'],
    tokens: [1],
    release: () => {
      throw boom
    },
  })
  assert.equal(await failing.release().catch((e) => e), boom)
  assert.equal(await failing.release(), false)
})

test('many distinct keys: multi-key leases stay exclusive across the idle-key sweep', async () => {
  const lock = new AsyncLock()
  // Enough idle keys that interning a request's keys crosses a sweep.
  for (let i = 0; i < 1023; i++) await (await lock.lock('idle' + i)).release()
  const both = await lock.lock(['x', 'y'])
  const onX = lock.lock('x')
  assert.equal(await settled(onX), false, 'x is held by the multi-key lease')
  await both.release()
  await (await onX).release()
  assert.equal(lock.isBusy(), false)
})
