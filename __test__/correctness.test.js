'use strict'
// Where async-lock 1.5.0 is wrong and keyed-lock is right. Each test proves the
// keyed-lock property; where cheap, it also measures async-lock on the same
// program and reports (t.diagnostic) rather than asserting its exact failure.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync, spawnSync } = require('node:child_process')
const { AsyncLockOracle, KeyedLock, sleep, immediate, mockTimers, virtualTime, now, prng } = require('./helpers')

/** Queues `n` callback-mode tasks that call done() synchronously behind one holder. */
function syncChain(AsyncLock, n) {
  const lock = new AsyncLock({ maxPending: Infinity })
  let ran = 0
  let settled = 0
  let release
  lock.acquire('k', (done) => (release = done), () => {})
  for (let i = 0; i < n; i++) {
    lock.acquire('k', (done) => {
      ran++
      done()
    }, () => settled++)
  }
  const started = process.hrtime.bigint()
  try {
    release()
  } catch (e) {
    // async-lock can let a RangeError out of the outermost done().
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  return { ran, settled, ms, busy: lock.isBusy() }
}

test('1,000,000 queued callback-mode tasks that call done() synchronously all run, none lost', (t) => {
  const n = 1_000_000
  const ours = syncChain(KeyedLock, n)
  t.diagnostic(`keyed-lock: ${n} hand-offs in ${ours.ms.toFixed(0)} ms`)
  assert.deepEqual({ ran: ours.ran, settled: ours.settled, busy: ours.busy }, { ran: n, settled: n, busy: false })
  // async-lock nests every hand-off in the previous done(): the stack
  // overflows, the overflow is swallowed by its try/catch, and the rest of
  // the queue never runs.
  const oracle = syncChain(AsyncLockOracle, 20_000)
  t.diagnostic(`async-lock: of 20000 queued tasks ${oracle.ran} ran, ${oracle.settled} settled, busy afterwards: ${oracle.busy}`)
  assert.ok(oracle.ran < 20_000, 'async-lock was expected to lose tasks')
})

test('opposite-order multi-key requests from many callers all complete', async () => {
  const lock = new KeyedLock()
  const rnd = prng(7)
  const keys = ['a', 'b', 'c', 'd']
  let completed = 0
  const callers = []
  for (let c = 0; c < 50; c++) {
    callers.push((async () => {
      for (let i = 0; i < 20; i++) {
        // Random order and size, so every pair of key orders meets.
        const mine = keys.filter(() => rnd() < 0.6).sort(() => rnd() - 0.5)
        if (mine.length === 0) mine.push('a')
        await lock.acquire(mine, () => (rnd() < 0.5 ? immediate() : undefined))
        completed++
      }
    })())
  }
  let timer
  const watchdog = new Promise((resolve) => (timer = setTimeout(resolve, 20_000, 'stalled')))
  const outcome = await Promise.race([Promise.all(callers).then(() => 'done'), watchdog])
  clearTimeout(timer)
  assert.equal(outcome, 'done', `completed ${completed} of 1000`)
  assert.equal(completed, 1000)
  assert.equal(lock.isBusy(), false)
})

async function overlapRun(AsyncLock, callers, perCaller) {
  const lock = new AsyncLock({ maxPending: Infinity })
  const inUse = new Array(16).fill(0)
  let overlaps = 0
  let completed = 0
  const rnd = prng(42)
  const work = []
  for (let c = 0; c < callers; c++) {
    work.push((async () => {
      for (let i = 0; i < perCaller; i++) {
        const set = new Set()
        while (set.size < 5) set.add(Math.floor(rnd() * 16))
        // Sorted, so async-lock's one-key-at-a-time order cannot deadlock.
        const mine = [...set].sort((x, y) => x - y)
        const mode = rnd()
        await lock.acquire(mine.map((k) => 'k' + k), async () => {
          for (const k of mine) if (++inUse[k] > 1) overlaps++
          if (mode < 0.4) await immediate()
          else if (mode < 0.8) await null
          for (const k of mine) inUse[k]--
        })
        completed++
      }
    })())
  }
  await Promise.all(work)
  return { overlaps, completed, busy: lock.isBusy() }
}

test('10,000 sorted 5-of-16-key acquisitions from 100 callers: no key is ever used by two at once', async (t) => {
  const ours = await overlapRun(KeyedLock, 100, 100)
  assert.deepEqual(ours, { overlaps: 0, completed: 10_000, busy: false })
  const oracle = await overlapRun(AsyncLockOracle, 100, 100)
  t.diagnostic(`async-lock on the same program: ${oracle.overlaps} overlaps, ${oracle.completed} completed`)
})

test('maxExecutionTime: each lease passes the key on exactly once, so holders never overlap', async (t) => {
  // Every task gets a 50 ms lease and takes 0-110 ms. When a task starts,
  // the previous holder must have finished or used up its lease; a late
  // finish must not let anyone else in (async-lock's second release does).
  // On a virtual clock (helpers.js virtualTime), so the 50 ms window is
  // exact: no slack for a loaded machine's late timers is needed.
  const lock = new KeyedLock({ maxExecutionTime: 50 })
  const rnd = prng(3)
  let previous = null
  const violations = []
  let errors = 0
  let ok = 0
  await virtualTime(t, async () => {
    const tasks = []
    for (let i = 0; i < 12; i++) {
      const ms = Math.floor(rnd() * 110)
      tasks.push(lock.acquire('k', async () => {
        const me = { i, start: now(), finished: false }
        if (previous !== null && !previous.finished && me.start - previous.start < 50) violations.push([previous.i, i])
        previous = me
        await sleep(ms)
        me.finished = true
      }).then(() => ok++, (e) => {
        assert.equal(e.message, 'Maximum execution time is exceeded k')
        errors++
      }))
    }
    await Promise.all(tasks)
    // Every late finish has happened (a task takes at most 110 ms).
    await sleep(150)
  })
  assert.deepEqual(violations, [])
  assert.equal(ok + errors, 12)
  assert.ok(errors > 0, 'some tasks must have outlived their lease')
  assert.ok(ok > 0, 'some tasks must have finished within their lease')
  assert.equal(lock.isBusy(), false, 'late finishes released nothing twice and left nothing held')
})

async function reacquireInCallback(AsyncLock) {
  const lock = new AsyncLock()
  let running = 0
  let peak = 0
  const body = (done) => {
    running++
    peak = Math.max(peak, running)
    setTimeout(() => {
      running--
      done()
    }, 10)
  }
  await new Promise((resolve) => {
    lock.acquire('k', (done) => done(), () => {
      // The completion callback runs inside done(): both re-acquire here.
      lock.acquire('k', body, () => {})
      lock.acquire('k', body, resolve)
    })
  })
  await sleep(30)
  return { peak, busy: lock.isBusy() }
}

test('a completion callback that re-acquires the same key twice cannot let two holders run', async (t) => {
  assert.deepEqual(await virtualTime(t, () => reacquireInCallback(KeyedLock)), { peak: 1, busy: false })
  const oracle = await virtualTime(t, () => reacquireInCallback(AsyncLockOracle))
  t.diagnostic(`async-lock: peak concurrency ${oracle.peak}`)
  assert.equal(oracle.peak, 2, 'async-lock starts the second waiter while the first runs')
})

test('a user cb that throws does not strand the queue', async () => {
  const lock = new KeyedLock()
  const ran = []
  let release
  lock.acquire('k', (done) => (release = done), () => {
    throw new Error('user cb')
  })
  for (let i = 0; i < 5; i++) lock.acquire('k', (done) => setImmediate(() => (ran.push(i), done())), () => {})
  assert.throws(() => release(), /user cb/)
  for (let i = 0; i < 20 && lock.isBusy(); i++) await immediate()
  assert.deepEqual(ran, [0, 1, 2, 3, 4])
  assert.equal(lock.isBusy(), false)
})

function symbolTimeout(modulePath) {
  const script = `const AsyncLock = require(${JSON.stringify(modulePath)})
    const lock = new AsyncLock({ timeout: 5 })
    const key = Symbol('job')
    lock.acquire(key, () => new Promise((r) => setTimeout(r, 30)))
    lock.acquire(key, () => {}).catch((e) => console.log('caught: ' + e.message))
    setTimeout(() => console.log('survived'), 60)`
  return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 })
}

test('a Symbol key that times out gives an error, the process survives (child process)', () => {
  const ours = symbolTimeout(require.resolve('..'))
  assert.equal(ours.status, 0, ours.stderr)
  assert.match(ours.stdout, /^caught: async-lock timed out in queue Symbol\(job\)$/m)
  assert.match(ours.stdout, /^survived$/m)
  const oracle = symbolTimeout(require.resolve('async-lock'))
  assert.notEqual(oracle.status, 0, 'async-lock was expected to crash')
  assert.match(oracle.stderr, /Cannot convert a Symbol value to a string/)
})

test('bad options and keys are TypeErrors that name what is wrong, thrown before anything is locked', () => {
  const named = (what) => (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_VALUE' && e.message.includes(what)
  for (const name of ['timeout', 'maxOccupationTime', 'maxExecutionTime']) {
    for (const value of ['soon', -1, {}, [], ' ']) {
      assert.throws(() => new KeyedLock({ [name]: value }), named(`"${name}"`), `${name} = ${JSON.stringify(value)}`)
    }
  }
  assert.throws(() => new KeyedLock({ Promise: 'yes' }), named('"Promise"'))
  assert.throws(() => new KeyedLock({ Promise: {} }), named('"Promise"'))
  assert.throws(() => new KeyedLock({ Promise: require('q') }), named('"Promise"'))
  const lock = new KeyedLock()
  lock.acquire('held', (done) => setImmediate(done), () => {})
  assert.throws(() => lock.acquire('held', () => {}, { timeout: 'soon' }), named('"timeout"'))
  assert.throws(() => lock.acquire(Object.create(null), () => {}), named('key'))
  assert.deepEqual(Object.keys(lock.queues), ['held'])
  assert.equal(lock.queues.held.length, 0, 'a refused call must not be queued')
})

test('a timed-out multi-key head never swallows a grant: the waiter behind it on a free key runs at once', async (t) => {
  // On a virtual clock: "at once" is exactly the 30 ms timeout, not a
  // wall-clock guess.
  const log = []
  await virtualTime(t, async () => {
    const lock = new KeyedLock()
    const t0 = now()
    lock.acquire('a', () => sleep(400))
    // Heads the queue of 'b' (free) while it waits for 'a'.
    lock.acquire(['a', 'b'], () => log.push('ab ran'), { timeout: 30 }).catch((e) => log.push(e.message))
    const behind = lock.acquire('b', () => log.push(`b ran at ${now() - t0} ms`))
    await behind
    await immediate()
  })
  // 'b' starts inside the timeout's handling, before the rejection reaches the catch.
  assert.deepEqual(log, ['b ran at 30 ms', 'async-lock timed out in queue a'])
  // Same for a queued task whose occupation time runs out.
  await virtualTime(t, async () => {
    const lock2 = new KeyedLock()
    lock2.acquire('a', () => sleep(400))
    lock2.acquire(['a', 'b'], () => {}, { maxOccupationTime: 30 }).catch((e) => log.push(e.message))
    const t1 = now()
    await lock2.acquire('b', () => log.push(`b ran at ${now() - t1} ms`))
    await immediate()
  })
  assert.deepEqual(log.slice(2), ['b ran at 30 ms', 'Maximum occupation time is exceeded in queue a'])
})

test('a waiter timing out in the same turn as its grant: nobody is stranded and nothing runs twice', async (t) => {
  // Both orders, on mock timers: the holder's release and the waiter's
  // timeout fire in one tick() (one turn), the release first or the timeout
  // first. Real timers only ever tried whichever order the load gave.
  mockTimers(t)
  for (const releaseFirst of [true, false]) {
    const lock = new KeyedLock()
    const ran = []
    let release
    lock.acquire('k', (done) => (release = done), () => {})
    // A timer armed before the waiter's fires before it at the same deadline.
    if (releaseFirst) setTimeout(() => release(), 10)
    const racer = lock.acquire('k', () => ran.push('racer'), { timeout: 10 }).then(() => 'granted', () => 'timed out')
    if (!releaseFirst) setTimeout(() => release(), 10)
    const last = lock.acquire('k', () => ran.push('last'))
    t.mock.timers.tick(10)
    const outcome = await racer
    await last
    assert.equal(outcome, releaseFirst ? 'granted' : 'timed out')
    assert.deepEqual(ran, releaseFirst ? ['racer', 'last'] : ['last'])
    assert.equal(lock.isBusy(), false)
  }
})

test('timers keep the process alive, as async-lock does (kept)', () => {
  const script = `const AsyncLock = require(${JSON.stringify(require.resolve('..'))})
    const lock = new AsyncLock({ timeout: 50 })
    lock.acquire('k', (done) => {})
    lock.acquire('k', () => {}).catch((e) => console.log(e.message))`
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 })
  assert.equal(out, 'async-lock timed out in queue k\n')
})

test('idle keys are swept, busy keys never: many distinct keys keep exclusion and bounded key state', async () => {
  // Idle keys keep their interned id until a sweep (lib/spaces/isolate.js), which
  // runs when new keys arrive. Each wave's 1,000 keys stay held while the
  // next wave's new keys force sweeps; only then does a second caller ask
  // for each held key. A sweep that dropped a busy key would hand that
  // caller a fresh id, and it would run beside the holder.
  const lock = new KeyedLock({ maxPending: Infinity })
  const inUse = new Set()
  let violations = 0
  const body = (key, gate) => async () => {
    if (inUse.has(key)) violations++
    inUse.add(key)
    await gate
    inUse.delete(key)
  }
  const all = []
  let previous = null
  for (let wave = 0; wave < 30; wave++) {
    let open
    const gate = new Promise((resolve) => (open = resolve))
    const keys = Array.from({ length: 1000 }, (_, i) => `w${wave}:${i}`)
    for (const key of keys) all.push(lock.acquire(key, body(key, gate)))
    if (previous !== null) {
      for (const key of previous.keys) all.push(lock.acquire(key, body(key, null)))
      previous.open()
    }
    previous = { keys, open }
    await immediate()
  }
  previous.open()
  await Promise.all(all)
  assert.equal(violations, 0)
  assert.equal(lock.isBusy(), false)
  assert.deepEqual(Object.keys(lock.queues), [])
  // White-box: interned ids stay proportional to keys in use (about two
  // waves at once), not to the 30,000 keys ever used.
  assert.ok(lock._space.ids.size <= 5000, `interned keys: ${lock._space.ids.size}`)
})

test('a multi-key acquire that crosses the idle-key sweep keeps all its keys (both reaches)', async () => {
  // 1023 idle keys put the next intern at the sweep threshold: interning
  // ['x', 'y'] one by one used to sweep 'x' (idle until acquired) and give
  // its id to 'y', so a later acquire('x') ran while [x, y] was held.
  for (const opts of [{}, { scope: 'process', name: 'sweep-multi-' + process.pid }]) {
    const lock = new KeyedLock(opts)
    for (let i = 0; i < 1023; i++) await lock.acquire('k' + i, () => {})
    let release
    const held = lock.acquire(['x', 'y'], () => new Promise((resolve) => (release = resolve)))
    let overlapped = false
    const other = lock.acquire('x', () => {
      overlapped = release !== null
    })
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(overlapped, false, `acquire('x') ran while [x, y] was held (${JSON.stringify(opts)})`)
    const r = release
    release = null
    r()
    await held
    await other
  }
})
