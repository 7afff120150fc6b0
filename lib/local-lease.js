'use strict'
// lock.lock() on the two in-process reaches (isolate and process): a lease
// waits in the very queues acquire() uses, through the same Space interface,
// so FIFO, all-or-nothing multi-key and maxPending are the core's. A lease
// is never lost here: nothing but release() gives its keys up (the lock's
// maxOccupationTime and maxExecutionTime are about acquire()'s fn, which a
// lease does not have), so its signal never aborts.

const { deliver, internAll, GRANTED, QUEUED } = require('./engine')
const { SharedSpace } = require('./shared')
const { messages } = require('./errors')
const { Lease, abortReason } = require('./lease')

// ---------------------------------------------------------------------------
// Fencing tokens: microseconds of the monotonic clock (process.hrtime), which
// every thread of the process reads alike, so no shared counter is needed
// and tokens stay exact JS numbers (2^53 µs is 285 years of uptime).

const hrtime = process.hrtime.bigint
const micros = () => Number(hrtime() / 1000n)

let lastIsolateToken = 0

/**
 * Isolate reach: a space is used by this thread alone, so tokens that
 * strictly increase on this thread strictly increase per key.
 */
function isolateToken() {
  const now = micros()
  lastIsolateToken = now > lastIsolateToken ? now : lastIsolateToken + 1
  return lastIsolateToken
}

/**
 * Process reach: a key's next grant may be on another thread, which cannot
 * see this thread's last token. So the token is the clock's microsecond
 * and the lease is handed out only once the clock has moved past it. Any
 * release of this lease (by release() or by the thread ending) comes after
 * that, and the key's next grant, on whatever thread, reads the clock after
 * the release (the space's mutex orders them): its token is larger. Costs a
 * spin of under a microsecond per grant; assumes the OS's monotonic clock
 * agrees across CPUs, as CLOCK_MONOTONIC, mach_absolute_time and QPC do.
 */
function processToken() {
  const token = micros()
  while (micros() <= token) {
    // spin: see above
  }
  return token
}

// ---------------------------------------------------------------------------

const pendingForNative = (n) => (n === Infinity ? -1 : Math.min(n, 0x7fffffff))

/** Gives keys back and starts whoever they go to. */
function releaseKeys(space, ids) {
  const granted = typeof ids === 'number' ? space.releaseOne(ids) : space.releaseMany(ids)
  if (granted.length !== 0) deliver(granted)
  return true
}

function makeLease(space, names, ids) {
  const token = space instanceof SharedSpace ? processToken() : isolateToken()
  const tokens = new Array(names.length).fill(token)
  return new Lease({ keys: names, tokens, token, release: () => releaseKeys(space, ids) })
}

/** One lock() call waiting in the queue; the engine's waiter interface (ticket, granted()). */
class LeaseRequest {
  constructor(space, names, ids, signal, resolve, reject) {
    this.space = space
    this.names = names
    this.ids = ids
    this.signal = signal
    this.resolve = resolve
    this.reject = reject
    this.ticket = -1
    this.timer = null
    /** the promise is settled: granted, timed out or aborted */
    this.settled = false
  }

  granted() {
    if (this.settled) {
      // The grant raced a timeout or abort that already rejected the caller
      // (it was on its way from another thread, or parked in a delivery
      // further up the stack): nobody will release it, so pass it on now.
      releaseKeys(this.space, this.ids)
      return
    }
    this.settled = true
    this.stopWaiting()
    this.resolve(makeLease(this.space, this.names, this.ids))
  }

  /** The signal's 'abort' listener (an EventListener object: no closure per request). */
  handleEvent() {
    this.leave(abortReason(this.signal))
  }

  /** Rejects with `reason` (an error, or a function of the key still awaited) and leaves the queue. */
  leave(reason) {
    if (this.settled) return
    this.settled = true
    this.stopWaiting()
    let granted = null
    let blocking = this.names[0]
    if (this.ticket !== -1) {
      granted = this.space.cancel(this)
      if (granted !== null) blocking = this.names[Math.max(0, this.space.blockingIndex)]
    }
    // granted === null: the keys were granted but granted() has not run yet;
    // it will see `settled` and pass them on.
    this.reject(typeof reason === 'function' ? reason(blocking) : reason)
    if (granted !== null && granted.length !== 0) deliver(granted)
  }

  stopWaiting() {
    if (this.timer !== null) {
      clearTimeout(this.timer)
      this.timer = null
    }
    if (this.signal !== undefined) this.signal.removeEventListener('abort', this)
  }
}

const timedOut = (key) => new Error(messages.timedOut(key))

function onTimeout(request) {
  request.timer = null
  request.leave(timedOut)
}

/**
 * Takes a lease on `names` (normalized, distinct, non-empty) in `space`, an
 * engine Space or a SharedSpace. `timeout` 0 waits forever; `signal` has not
 * aborted. Always a native Promise.
 */
function lockLocal(space, names, timeout, maxPending, signal) {
  return new Promise((resolve, reject) => {
    const ids = internAll(space, names)
    const request = new LeaseRequest(space, names, ids, signal, resolve, reject)
    const max = pendingForNative(maxPending)
    const outcome =
      typeof ids === 'number' ? space.acquireOne(ids, max, false, request) : space.acquireMany(ids, max, false, request)
    if (outcome === GRANTED) {
      request.settled = true
      resolve(makeLease(space, names, ids))
    } else if (outcome === QUEUED) {
      if (timeout) request.timer = setTimeout(onTimeout, timeout, request)
      if (signal !== undefined) signal.addEventListener('abort', request, { once: true })
    } else {
      const full = typeof ids === 'number' ? names[0] : names[space.rejectedIndex]
      reject(new Error(messages.tooManyPending(full)))
    }
  })
}

module.exports = { lockLocal }
