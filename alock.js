'use strict'
// The alock 0.0.2 face: `lock(key, callback(done))`, one lock space per
// module instance, FIFO, the callback run synchronously when the key is
// free and inside the holder's done() otherwise. Unlike alock: done() only
// ever releases its own hold, any number of waiters is fine (no
// EventEmitter, so no MaxListenersExceededWarning), and keys named like
// Object.prototype members are ordinary keys.

const { openSpace, releaseKeys, GRANTED, QUEUED } = require('./lib/spaces')
const { invalidArg, internalError } = require('./lib/errors')
const { normalizeKey, oneHolderOnly } = require('./lib/validate')

const UNLIMITED = -1

class Hold {
  constructor(space, id, callback) {
    this.space = space
    this.id = id
    this.callback = callback
    this.ticket = -1
    this.released = false
  }

  granted() {
    this.callback(() => this.release())
  }

  release() {
    if (this.released) return
    this.released = true
    releaseKeys(this.space, this.id, this)
  }
}

function createLock(space) {
  // alock's lock(key, callback) has no options; a third argument that asks
  // for a semaphore or a shared hold is refused rather than dropped.
  return function lock(key, callback, options) {
    if (typeof callback !== 'function') throw invalidArg('callback', 'a function', callback)
    if (options !== undefined) oneHolderOnly('alock', options)
    const id = space.intern(normalizeKey(key))
    const hold = new Hold(space, id, callback)
    const outcome = space.acquireOne(id, UNLIMITED, false, hold, 0)
    if (outcome === GRANTED) hold.granted()
    else if (outcome !== QUEUED) throw internalError('an unlimited queue refused a waiter')
  }
}

const lock = createLock(openSpace({}))

// `require('keyed-lock/alock').shared`: the same `lock(key, callback)` over one
// lock space shared by every worker thread of the process. Opened on first
// use, so a thread that never touches it pays nothing.
let shared = null
Object.defineProperty(lock, 'shared', {
  enumerable: true,
  get() {
    if (shared === null) shared = createLock(openSpace({ scope: 'process', name: 'keyed-lock/alock' }))
    return shared
  },
})

module.exports = lock
