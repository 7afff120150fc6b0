'use strict'
// The one io buffer of this thread (src/binding/mod.rs, "The io buffer"):
// the isolate and the process reach write their requests to it and read the
// answers from it, around no-argument native calls. Growing it replaces it,
// so every user keeps a view that `useIo` refreshes.

const native = require('./native')

let view = new Int32Array(native.ioBuffer(0))
const users = []

/** Calls `set(view)` now, and again whenever the buffer is replaced. */
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

module.exports = { useIo, reserveIo }
