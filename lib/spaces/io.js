'use strict'
// The one io buffer of this thread (src/binding/mod.rs, "The io buffer") and
// the request layout the two in-process reaches write to it: owner (table or
// member), max pending (-1 = none), skip queue, key count, keys. The
// no-argument native calls (acquire(), release(), cancel() and their process
// twins) read the request from there and write their answer back in place,
// which is what keeps a crossing at tens of nanoseconds.

const native = require('../native')

let view = new Int32Array(native.ioBuffer(0))
const users = []

/** Calls `set(view)` now, and again whenever the buffer is replaced (growing it replaces it). */
function useIo(set) {
  users.push(set)
  set(view)
}

/** Makes the buffer hold at least `slots` values (a request of n keys needs 4 + n). */
function reserveIo(slots) {
  if (slots <= view.length) return
  view = new Int32Array(native.ioBuffer(slots))
  for (const set of users) set(view)
}

/** Writes an acquire request for several keys; `io` must hold 4 + ids.length slots. */
function writeRequest(io, owner, maxPending, skipQueue, ids) {
  io[0] = owner
  io[1] = maxPending
  io[2] = skipQueue ? 1 : 0
  io[3] = ids.length
  for (let i = 0; i < ids.length; i++) io[4 + i] = ids[i]
}

/** writeRequest for one key, without an array on the hot path. */
function writeRequestOne(io, owner, maxPending, skipQueue, id) {
  io[0] = owner
  io[1] = maxPending
  io[2] = skipQueue ? 1 : 0
  io[3] = 1
  io[4] = id
}

/** Interned keys a space keeps before its first sweep of idle ones. */
const MIN_SWEEP = 1024

// Fencing tokens on the in-process reaches: microseconds of the monotonic
// clock (process.hrtime), which every thread of the process reads alike, so
// no shared counter is needed and tokens stay exact JS numbers (2^53 µs is
// 285 years of uptime).
const hrtime = process.hrtime.bigint
const micros = () => Number(hrtime() / 1000n)

module.exports = { useIo, reserveIo, writeRequest, writeRequestOne, MIN_SWEEP, micros }
