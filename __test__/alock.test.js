'use strict'
// The alock face (require('keyed-lock/alock')), checklist 7.1 items 1-13.
// alock is not on npm; `alockOracle` below re-creates jdan/alock 0.0.2 from
// its description (seeds.md 1.2: a module-global object of EventEmitters)
// so each fixed behaviour can be shown failing on the original.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const EventEmitter = require('node:events')
const lock = require('../alock')

/** jdan/alock 0.0.2, as described in seeds.md 1.2 (the oracle, not our code). */
function makeAlockOracle() {
  const locks = {}
  function unlock(key) {
    return function () {
      locks[key].released = true
      locks[key].emit('free')
    }
  }
  return function alock(key, cb) {
    if (locks[key] && !locks[key].released) {
      locks[key].on('free', () => alock(key, cb))
    } else {
      locks[key] = new EventEmitter()
      cb(unlock(key))
    }
  }
}

test('1-2: one function, returns undefined; a free key calls back synchronously with done (length 0)', () => {
  assert.equal(typeof lock, 'function')
  assert.equal(require('../alock'), lock, 'one lock space per module instance')
  const log = []
  const ret = lock('a12', (done) => {
    log.push('cb ' + done.length)
    assert.equal(done(), undefined)
  })
  log.push('returned ' + ret)
  assert.deepEqual(log, ['cb 0', 'returned undefined'])
})

test('3-4: a waiter runs inside the holder\'s done(), FIFO, including waiters added during hand-offs', () => {
  const log = []
  const releases = {}
  lock('k34', (done) => (releases.A = done))
  for (const name of ['B', 'C', 'D']) {
    lock('k34', (done) => {
      log.push(name)
      releases[name] = done
      if (name === 'B') lock('k34', (d) => (log.push('E'), (releases.E = d)))
    })
  }
  assert.deepEqual(log, [])
  releases.A()
  log.push('after A')
  releases.B()
  releases.C()
  releases.D()
  releases.E()
  assert.deepEqual(log, ['B', 'after A', 'C', 'D', 'E'])
})

test('5-6: done ignores its arguments; a second done() is ignored (alock releases someone else)', () => {
  const run = (alock) => {
    const log = []
    let a
    alock('k56', (done) => (a = done))
    alock('k56', () => log.push('B entered'))
    alock('k56', () => log.push('C entered'))
    a(new Error('ignored'), 'x')
    a()
    return log
  }
  assert.deepEqual(run(makeAlockOracle()), ['B entered', 'C entered'], 'alock: the 2nd done lets C in while B holds')
  assert.deepEqual(run(lock), ['B entered'])
})

test('7: keys compare as property names: 1 = "1", ["a","b"] = "a,b", undefined = "undefined", objects are one key', () => {
  const pairs = [[1, '1'], [['a', 'b'], 'a,b'], [undefined, 'undefined'], [{ x: 1 }, { y: 2 }]]
  for (const [first, second] of pairs) {
    const log = []
    let release
    lock(first, (done) => (release = done))
    lock(second, (done) => (log.push('second'), done()))
    assert.deepEqual(log, [], `${String(first)} and ${String(second)} must be one key`)
    release()
    assert.deepEqual(log, ['second'])
  }
})

test('8: Object.prototype member names are ordinary keys (alock throws a TypeError)', () => {
  const oracle = makeAlockOracle()
  for (const key of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
    assert.throws(() => oracle(key, (done) => done()), TypeError)
    const log = []
    let release
    lock(key, (done) => (release = done))
    lock(key, (done) => (log.push(key), done()))
    assert.deepEqual(log, [])
    release()
    assert.deepEqual(log, [key])
  }
})

test('9: a non-function callback is a TypeError naming callback, thrown before the key is locked', () => {
  const oracle = makeAlockOracle()
  assert.throws(() => oracle('k9', 'nope'), TypeError)
  const log = []
  oracle('k9', () => log.push('alock: never runs, the key is dead'))
  assert.deepEqual(log, [])
  for (const bad of [undefined, null, 'nope', {}]) {
    assert.throws(() => lock('k9', bad), (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_VALUE' && /callback/.test(e.message))
  }
  lock('k9', (done) => (log.push('keyed-lock: key still usable'), done()))
  assert.deepEqual(log, ['keyed-lock: key still usable'])
})

test('10: a callback that throws on a free key propagates out of lock(); the key stays held until done (kept)', () => {
  let release
  assert.throws(() => lock('k10', (done) => {
    release = done
    throw new Error('boom')
  }), /boom/)
  const log = []
  lock('k10', (done) => (log.push('waiter'), done()))
  assert.deepEqual(log, [], 'still held')
  release()
  assert.deepEqual(log, ['waiter'])
})

test('11: a waiter that throws when handed the lock: the error reaches the releaser, later waiters still run (alock strands them)', () => {
  const run = (alock) => {
    const log = []
    let a
    alock('k11', (done) => (a = done))
    alock('k11', (done) => {
      done()
      throw new Error('waiter threw')
    })
    alock('k11', (done) => (log.push('third ran'), done()))
    try {
      a()
    } catch (e) {
      log.push('releaser got: ' + e.message)
    }
    return log
  }
  assert.deepEqual(run(makeAlockOracle()), ['releaser got: waiter threw'])
  assert.deepEqual(run(lock), ['third ran', 'releaser got: waiter threw'])
})

test('12: 11+ waiters on one holder give no MaxListenersExceededWarning (alock warns)', async () => {
  const script = (path) => `const lock = require(${JSON.stringify(path)})
    let release
    lock('k', (done) => (release = done))
    let ran = 0
    for (let i = 0; i < 50; i++) lock('k', (done) => (ran++, done()))
    release()
    console.log('ran ' + ran)`
  const out = execFileSync(process.execPath, ['-e', script(require.resolve('../alock'))], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  assert.equal(out, 'ran 50\n')
  const warned = []
  const onWarning = (w) => warned.push(w.name)
  process.on('warning', onWarning)
  try {
    const oracle = makeAlockOracle()
    let release
    oracle('k12', (done) => (release = done))
    for (let i = 0; i < 11; i++) oracle('k12', (done) => done())
    release()
    let held
    lock('k12', (done) => (held = done))
    for (let i = 0; i < 50; i++) lock('k12', (done) => done())
    held()
    // Warnings are emitted on a later tick.
    await new Promise((resolve) => setImmediate(resolve))
  } finally {
    process.off('warning', onWarning)
  }
  assert.deepEqual(warned, ['MaxListenersExceededWarning'], 'only the oracle warns')
})

test('13: no re-entrancy and no timeout: a nested lock of the same key waits for the outer done()', () => {
  const log = []
  lock('k13', (outer) => {
    lock('k13', (inner) => (log.push('inner'), inner()))
    log.push('outer still holds')
    outer()
  })
  assert.deepEqual(log, ['outer still holds', 'inner'])
})

test('keyed-lock: permits, weight or mode asking for more than one holder is a TypeError naming it, before anything is locked', () => {
  for (const [options, name] of [
    [{ weight: 2 }, 'weight'],
    [{ mode: 'shared' }, 'mode'],
    [{ permits: 3 }, 'permits'],
    [{ permits: Infinity, mode: 'shared' }, 'permits'],
  ]) {
    let ran = false
    assert.throws(
      () => lock('alock:one-holder', () => (ran = true), options),
      (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG_VALUE' && err.message.includes(`option "${name}"`),
      JSON.stringify(options),
    )
    assert.equal(ran, false, 'the callback never ran')
  }
  // Nothing was left locked or queued: the key is free at once.
  const order = []
  lock('alock:one-holder', (done) => {
    order.push('free')
    // The values that say "one holder" are what this face is: accepted.
    lock('alock:one-holder', (inner) => {
      order.push('second')
      inner()
    }, { permits: 1, weight: 1, mode: 'exclusive' })
    assert.deepEqual(order, ['free'], 'the second waits for the first, as any alock waiter')
    done()
  })
  assert.deepEqual(order, ['free', 'second'])
  assert.throws(() => lock.shared('alock:one-holder', () => {}, { mode: 'shared' }), /option "mode"/)
})
