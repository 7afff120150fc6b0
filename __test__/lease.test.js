'use strict'
// lock.lock(): the lease API on the isolate and process reaches. Most tests
// run on both reaches; each process-reach test uses its own space name.

const nodeTest = require('node:test')
// A lost grant would leave a test waiting forever: fail it instead.
const test = (name, fn) => nodeTest.test(name, { timeout: 20000 }, fn)
const assert = require('node:assert/strict')
const path = require('node:path')
const { getEventListeners } = require('node:events')
const { Worker } = require('node:worker_threads')
const Bluebird = require('bluebird')
const { AsyncLockOracle, KeyLock: AsyncLock, sleep, drain } = require('./helpers')
const { Lease, LockLostError, leaseLost } = require('../lib/lease')

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

/** The message async-lock 1.5.0 gives a waiter that times out on `key`. */
async function oracleTimeout(key) {
  const lock = new AsyncLockOracle()
  lock.acquire(key, (done) => setTimeout(done, 50))
  const err = await lock.acquire(key, () => {}, { timeout: 5 }).catch((e) => e)
  await sleep(60)
  return err.message
}

/** The message async-lock 1.5.0 gives the call refused by maxPending 1 on `key`. */
async function oracleTooMany(key) {
  const lock = new AsyncLockOracle({ maxPending: 1 })
  const held = lock.acquire(key, () => sleep(10))
  const waiting = lock.acquire(key, () => {})
  const err = await lock.acquire(key, () => {}).catch((e) => e)
  await Promise.all([held, waiting])
  return err.message
}

eachScope('a lease holds its key until release(); fields, tokens and keys', async (scope) => {
  const lock = fresh(scope)
  const lease = await lock.lock('k')
  assert.ok(lease instanceof Lease)
  assert.deepEqual(lease.keys, ['k'])
  assert.equal(typeof lease.token, 'number')
  assert.ok(Number.isSafeInteger(lease.token) && lease.token > 0)
  assert.deepEqual(lease.tokens, [lease.token])
  assert.ok(lease.signal instanceof AbortSignal)
  assert.equal(lease.signal.aborted, false)
  assert.equal(lock.isBusy('k'), true)
  assert.throws(() => {
    lease.token = 1
  }, TypeError)
  assert.throws(() => lease.keys.push('x'), TypeError)
  assert.equal(await lease.release(), true)
  assert.equal(lock.isBusy('k'), false)
  // Released is not lost: the signal stays quiet.
  assert.equal(lease.signal.aborted, false)

  // Keys are normalized like acquire()'s: 1 and '1' are one key.
  const num = await lock.lock(1)
  assert.deepEqual(num.keys, ['1'])
  assert.equal(lock.isBusy('1'), true)
  await num.release()
  const sym = Symbol('s')
  const bySymbol = await lock.lock(sym)
  assert.deepEqual(bySymbol.keys, [sym])
  assert.equal(lock.isBusy(sym), true)
  await bySymbol.release()
  assert.equal(lock.isBusy(), false)
})

eachScope('release() is idempotent: true once, then false, and hands the key on exactly once', async (scope) => {
  const lock = fresh(scope)
  const lease = await lock.lock('k')
  const next = lock.lock('k')
  const runs = []
  const after = lock.acquire('k', () => runs.push('after'))
  assert.deepEqual(await Promise.all([lease.release(), lease.release()]), [true, false])
  assert.equal(await lease.release(), false)
  const second = await next
  // The second release() calls did not free the key under the new holder.
  assert.equal(await settled(after), false)
  assert.deepEqual(runs, [])
  assert.equal(await second.release(), true)
  await after
  assert.deepEqual(runs, ['after'])
  assert.equal(lock.isBusy(), false)
})

eachScope('leases and acquire() callers share one FIFO queue', async (scope) => {
  const lock = fresh(scope)
  const order = []
  const first = await lock.lock('k')
  const a1 = lock.acquire('k', async () => {
    order.push('acquire 1')
    await sleep(2)
  })
  const l2 = lock.lock('k').then((lease) => {
    order.push('lease 2')
    return lease
  })
  const a3 = lock.acquire('k', () => order.push('acquire 3'))
  const l4 = lock.lock('k').then((lease) => {
    order.push('lease 4')
    return lease
  })
  assert.equal(lock.queues.k.length, 4)
  await first.release()
  const second = await l2
  // acquire 3 waits while lease 2 is held, however long that is.
  await sleep(10)
  assert.deepEqual(order, ['acquire 1', 'lease 2'])
  await second.release()
  await a1
  await a3
  const fourth = await l4
  assert.deepEqual(order, ['acquire 1', 'lease 2', 'acquire 3', 'lease 4'])
  await fourth.release()
  assert.equal(lock.isBusy(), false)
})

eachScope('multi-key: all or nothing, keys deduplicated in order, one token for every key', async (scope) => {
  const lock = fresh(scope)
  let releaseB
  const holdingB = lock.acquire('b', () => new Promise((resolve) => (releaseB = resolve)))
  const both = lock.lock(['a', 'b', 1, 'a', '1'])
  assert.equal(await settled(both), false, 'waits for b')
  releaseB()
  await holdingB
  const lease = await both
  assert.deepEqual(lease.keys, ['a', 'b', '1'])
  assert.equal(lease.tokens.length, 3)
  for (const token of lease.tokens) assert.equal(token, lease.token)
  for (const key of ['a', 'b', '1']) assert.equal(lock.isBusy(key), true)
  const single = lock.lock('b')
  assert.equal(await settled(single), false)
  await lease.release()
  const b = await single
  assert.ok(b.token > lease.token)
  await b.release()
  assert.equal(lock.isBusy(), false)
})

eachScope('multi-key leases in opposite key orders from many callers all complete, never overlapping', async (scope) => {
  const lock = fresh(scope)
  const inside = new Set()
  const callers = []
  for (let c = 0; c < 20; c++) {
    const keys = c % 2 === 0 ? ['x', 'y', 'z'] : ['z', 'y', 'x']
    callers.push(
      (async () => {
        for (let i = 0; i < 10; i++) {
          const lease = await lock.lock(keys)
          for (const key of keys) {
            assert.equal(inside.has(key), false, `two holders of ${key}`)
            inside.add(key)
          }
          await new Promise((resolve) => setImmediate(resolve))
          for (const key of keys) inside.delete(key)
          await lease.release()
        }
      })(),
    )
  }
  await Promise.all(callers)
  assert.equal(lock.isBusy(), false)
})

eachScope('timeout: async-lock\'s message; the waiter leaves the queue; the lock\'s timeout is the default', async (scope) => {
  const lock = fresh(scope)
  const holder = await lock.lock('k')
  const err = await lock.lock('k', { timeout: 5 }).catch((e) => e)
  assert.ok(err instanceof Error)
  assert.equal(err.message, await oracleTimeout('k'))
  assert.equal(lock.queues.k.length, 0, 'the timed-out waiter left the queue')
  // Numbers are named as async-lock names them.
  const one = await lock.lock(1)
  assert.equal((await lock.lock(1, { timeout: 5 }).catch((e) => e)).message, await oracleTimeout(1))
  await one.release()
  // Multi-key: the message names the key the request was still waiting for.
  const multi = await lock.lock(['free', 'k'], { timeout: 5 }).catch((e) => e)
  assert.equal(multi.message, 'async-lock timed out in queue k')
  assert.equal(lock.isBusy('free'), false)

  const withDefault = fresh(scope, { timeout: 5 })
  const held = await withDefault.lock('k')
  assert.equal((await withDefault.lock('k').catch((e) => e)).message, 'async-lock timed out in queue k')
  assert.equal((await withDefault.lock('k', { timeout: 0 }).catch((e) => e)).message, 'async-lock timed out in queue k')
  // Infinity waits forever even where the lock has a default timeout.
  const patient = withDefault.lock('k', { timeout: Infinity })
  await sleep(20)
  assert.equal(await settled(patient), false)
  await held.release()
  await (await patient).release()

  // A free key is granted at once whatever the timeout; a later release is not affected.
  await holder.release()
  const quick = await lock.lock('k', { timeout: 1 })
  await sleep(10)
  assert.equal(lock.isBusy('k'), true)
  await quick.release()
  assert.equal(lock.isBusy(), false)
})

eachScope('maxPending: async-lock\'s message, at once, nothing queued', async (scope) => {
  const lock = fresh(scope, { maxPending: 1 })
  const holder = await lock.lock('k')
  const waiting = lock.acquire('k', () => 'ran')
  const err = await lock.lock('k').catch((e) => e)
  assert.equal(err.message, await oracleTooMany('k'))
  assert.equal(lock.queues.k.length, 1)
  // Multi-key: the first full key is named.
  assert.equal((await lock.lock(['free', 'k']).catch((e) => e)).message, 'Too many pending tasks in queue k')
  await holder.release()
  assert.equal(await waiting, 'ran')
  assert.equal(lock.isBusy(), false)
})

eachScope('an aborted signal rejects with its reason at once and queues nothing', async (scope) => {
  const lock = fresh(scope)
  const reason = new Error('stop')
  assert.equal(await lock.lock('free', { signal: AbortSignal.abort(reason) }).catch((e) => e), reason)
  assert.equal(lock.isBusy('free'), false, 'not even a free key is taken')
  const holder = await lock.lock('k')
  assert.equal(await lock.lock('k', { signal: AbortSignal.abort(reason) }).catch((e) => e), reason)
  assert.equal(lock.queues.k.length, 0)
  // Without a reason: the AbortError every Node API gives.
  const plain = await lock.lock('k', { signal: AbortSignal.abort() }).catch((e) => e)
  assert.equal(plain.name, 'AbortError')
  await holder.release()
  assert.equal(lock.isBusy(), false)
})

eachScope('aborting while waiting: rejects with the reason, leaves the queue, the next waiter is served', async (scope) => {
  const lock = fresh(scope)
  const holder = await lock.lock('k')
  const controller = new AbortController()
  const aborted = lock.lock('k', { signal: controller.signal, timeout: 10000 })
  const next = lock.lock('k')
  assert.equal(lock.queues.k.length, 2)
  assert.equal(getEventListeners(controller.signal, 'abort').length, 1)
  const reason = new Error('user gave up')
  controller.abort(reason)
  assert.equal(lock.queues.k.length, 1, 'left the queue synchronously')
  assert.equal(await aborted.catch((e) => e), reason)
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0)
  await holder.release()
  const second = await next
  assert.deepEqual(second.keys, ['k'])
  await second.release()
  assert.equal(lock.isBusy(), false)

  // A multi-key waiter that aborts unblocks the waiter behind it on a free key.
  const b = await lock.lock('b')
  const c2 = new AbortController()
  const multi = lock.lock(['a', 'b'], { signal: c2.signal })
  const onA = lock.lock('a')
  assert.equal(await settled(onA), false, 'FIFO: behind the multi-key request on a')
  c2.abort()
  assert.equal((await multi.catch((e) => e)).name, 'AbortError')
  await (await onA).release()
  await b.release()
  assert.equal(lock.isBusy(), false)
})

eachScope('a granted lease ignores its signal and timeout from then on; listeners are removed', async (scope) => {
  const lock = fresh(scope)
  const controller = new AbortController()
  const free = await lock.lock('k', { signal: controller.signal, timeout: 5 })
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0, 'a free key adds no listener')
  const waiting = lock.lock('k', { signal: controller.signal, timeout: 1000 })
  await free.release()
  const lease = await waiting
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0)
  controller.abort()
  await sleep(10)
  assert.equal(lease.signal.aborted, false)
  assert.equal(lock.isBusy('k'), true)
  assert.equal(await lease.release(), true)
})

eachScope('tokens strictly increase per key, across leases, multi-key leases and re-created locks', async (scope) => {
  let lock = fresh(scope)
  const name = scope === 'process' ? lock._space.name : null
  let last = 0
  for (let i = 0; i < 300; i++) {
    if (name !== null && i % 100 === 99) lock = new AsyncLock({ scope, name })
    const keys = i % 3 === 0 ? ['k', 'other'] : 'k'
    const lease = await lock.lock(keys)
    assert.ok(lease.token > last, `token ${lease.token} after ${last}`)
    assert.ok(Number.isSafeInteger(lease.token))
    last = lease.token
    // Releasing and re-taking in the same tick is the tightest case.
    if (i % 2 === 0) await lease.release()
    else lease.release()
  }
  // Queued hand-offs too: grants come straight out of release().
  const holder = await lock.lock('k')
  const queued = Array.from({ length: 50 }, () => lock.lock('k'))
  let prev = holder.token
  let current = holder
  for (const next of queued) {
    current.release()
    current = await next
    assert.ok(current.token > prev)
    prev = current.token
  }
  await current.release()
})

test('tokens strictly increase per key across the main thread and 2 workers on one process space', async () => {
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
  const done = workers.map((w) => new Promise((resolve, reject) => w.once('message', resolve).once('error', reject)))
  const lock = new AsyncLock({ scope: 'process', name: space })
  await Promise.all([body(lock, Atomics, cells, log, n, 'main')(), ...done])
  await Promise.all(workers.map((w) => w.terminate()))
  assert.equal(Atomics.load(cells, 0), 3 * n)
  assert.equal(Atomics.load(cells, 2), 0, 'two holders at once')
  for (let i = 1; i < 3 * n; i++) assert.ok(log[i] > log[i - 1], `grant ${i}: token ${log[i]} after ${log[i - 1]}`)
})

test('a grant from another thread racing an abort is passed on, not swallowed', async () => {
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
  await new Promise((resolve) => worker.once('message', resolve))
  const lock = new AsyncLock({ scope: 'process', name: space })
  const controller = new AbortController()
  const racing = lock.lock('k', { signal: controller.signal })
  const behind = lock.acquire('k', () => 'behind ran')
  worker.postMessage('release')
  // Block this thread until the worker has released: the core has granted
  // `racing`, but the wake-up cannot run before this thread's loop does.
  assert.equal(Atomics.wait(flag, 0, 0, 10000), 'ok')
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

test('a timeout in the same turn as the grant: one outcome, nothing stranded [isolate]', async () => {
  for (let round = 0; round < 20; round++) {
    const lock = new AsyncLock()
    const holder = await lock.lock('k')
    const racing = lock.lock('k', { timeout: 3 }).then(
      (lease) => lease,
      (err) => err,
    )
    const behind = lock.lock('k')
    await new Promise((resolve) => setTimeout(resolve, 3))
    holder.release()
    const outcome = await racing
    if (outcome instanceof Lease) await outcome.release()
    else assert.equal(outcome.message, 'async-lock timed out in queue k')
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

eachScope('a lease ignores maxOccupationTime and maxExecutionTime: only release() ends it', async (scope) => {
  const lock = fresh(scope, { maxOccupationTime: 5, maxExecutionTime: 5 })
  const lease = await lock.lock('k')
  const waiting = lock.lock('k')
  await sleep(30)
  assert.equal(lease.signal.aborted, false)
  assert.equal(await settled(waiting), false)
  await lease.release()
  await (await waiting).release()
})

test('the returned promise is native, whatever the Promise option', async () => {
  const lock = new AsyncLock({ Promise: Bluebird })
  const pending = lock.lock('k')
  assert.equal(Object.getPrototypeOf(pending), Promise.prototype)
  const lease = await pending
  assert.equal(Object.getPrototypeOf(lease.release()), Promise.prototype)
  assert.equal(Object.getPrototypeOf(lock.close()), Promise.prototype)
})

test('bad arguments reject with a TypeError naming them, before anything is locked', async () => {
  const lock = new AsyncLock()
  const cases = [
    [[undefined], /keylock: key must be/],
    [[null], /keylock: key must be/],
    [[{}], /keylock: key must be/],
    [[true], /keylock: key must be/],
    [[[]], /keylock: key must be .*; got an array/],
    [[['a', {}]], /keylock: key\[1\] must be/],
    [[['a', ['b']]], /keylock: key\[1\] must be/],
    [['k', 5], /keylock: options must be an object; got 5/],
    [['k', 'fast'], /keylock: options must be an object/],
    [['k', { timeout: -1 }], /keylock: options\.timeout must be/],
    [['k', { timeout: '5' }], /keylock: options\.timeout must be .*; got "5"/],
    [['k', { timeout: NaN }], /keylock: options\.timeout must be/],
    [['k', { timeout: 2 ** 31 }], /keylock: options\.timeout must be/],
    [['k', { signal: {} }], /keylock: options\.signal must be an AbortSignal; got an object/],
    [['k', { signal: null }], /keylock: options\.signal must be an AbortSignal; got null/],
    [['k', { signal: new AbortController() }], /keylock: options\.signal must be an AbortSignal/],
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

eachScope('close() resolves at once and the lock stays usable', async (scope) => {
  const lock = fresh(scope)
  const lease = await lock.lock('k')
  assert.equal(await lock.close(), undefined)
  assert.equal(lock.isBusy('k'), true, 'close() takes nothing from a holder')
  await lease.release()
  await (await lock.lock('k')).release()
  assert.equal(await lock.acquire('k', () => 'still works'), 'still works')
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
  const fake = { _space: space, timeout: 250, maxPending: 7 }
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
  assert.equal(seen.message, 'keylock: the lease on a (fencing token 7) was lost')
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
