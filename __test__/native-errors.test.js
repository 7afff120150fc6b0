'use strict'
// The contract between the native binding and JS (src/core/error.rs,
// src/core/outcome.rs): every native error carries a KEYED_LOCK_* `code` and a
// message without a "CODE: " prefix, the same mistake has the same code on
// every reach, and the outcome codes JS uses come from the one Rust table.
// These call the binding directly: the faces never make these mistakes.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const native = require('../lib/native')
const { reserveIo, useIo } = require('../lib/spaces/io')

let io
useIo((view) => {
  io = view
})

/** The error `fn` throws. */
function thrown(fn) {
  try {
    fn()
  } catch (err) {
    return err
  }
  assert.fail('expected a throw')
}

function assertCoded(err, code) {
  assert.ok(err instanceof Error, String(err))
  assert.equal(err.code, code)
  assert.doesNotMatch(err.message, /^[A-Z_]+: /, 'no code in the message')
  assert.doesNotMatch(err.message, /KEYED_LOCK_/)
}

/** Releases key `id` through the io buffer with `call` (the isolate or the process hot path). */
function releaseOne(call, owner, id) {
  io[0] = owner
  io[1] = 1
  io[2] = id
  call()
}

test('releasing a key that is not held is KEYED_LOCK_NOT_HELD on the isolate and the process reach alike', () => {
  const table = native.createTable()
  native.tableWords(table, 1)
  const isolate = thrown(() => releaseOne(native.release, table, 0))
  assertCoded(isolate, 'KEYED_LOCK_NOT_HELD')
  native.dropTable(table)

  const member = native.processOpen('native-errors', () => {})
  const id = native.processIntern(member, 'k')
  const processReach = thrown(() => releaseOne(native.processRelease, member, id))
  assertCoded(processReach, 'KEYED_LOCK_NOT_HELD')
  native.processUnpin(member, id)
})

test('a request with no keys is KEYED_LOCK_NO_KEYS on both in-process reaches', () => {
  const table = native.createTable()
  const member = native.processOpen('native-errors', () => {})
  for (const [call, owner] of [
    [native.acquire, table],
    [native.processAcquire, member],
  ]) {
    io[0] = owner
    io[1] = -1
    io[2] = 0
    io[3] = 0
    assertCoded(thrown(call), 'KEYED_LOCK_NO_KEYS')
  }
  native.dropTable(table)
})

test('a broken call is KEYED_LOCK_INTERNAL, not a napi status', () => {
  assertCoded(
    thrown(() => native.waitingOn(123456, 0)),
    'KEYED_LOCK_INTERNAL',
  )
  assertCoded(
    thrown(() => native.processBusy(123456)),
    'KEYED_LOCK_INTERNAL',
  )
})

test('a closed Redis client rejects with KEYED_LOCK_CLOSED', async () => {
  const err = await native.redisRelease(123456, 1).then(
    () => assert.fail('expected a rejection'),
    (e) => e,
  )
  assertCoded(err, 'KEYED_LOCK_CLOSED')
})

test('the io buffer is one per thread: growing it keeps every view current', () => {
  const before = io
  reserveIo(before.length * 4)
  assert.notEqual(io, before, 'a bigger buffer')
  assert.ok(io.length >= before.length * 4)
  // Both reaches now read the new one: a process request written here works.
  const member = native.processOpen('native-errors-io', () => {})
  const id = native.processIntern(member, 'k')
  io[0] = member
  io[1] = -1
  io[2] = 0
  io[3] = 1
  io[4] = id
  native.processAcquire()
  assert.equal(io[0], native.OUTCOME.GRANTED)
  releaseOne(native.processRelease, member, id)
  assert.equal(io[0], 0, 'no grants')
})

test('the outcome codes come from one table', () => {
  assert.deepEqual(
    { ...native.OUTCOME },
    { GRANTED: 0, QUEUED: 1, REJECTED: 2, BUSY: 3, HANDED_OFF: 4, CANCELLED: 5, TIMED_OUT: 6 },
  )
  assert.ok(Object.isFrozen(native.OUTCOME))
})
