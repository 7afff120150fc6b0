'use strict'
// Every message a user can see, in one place. The async-lock strings are
// reproduced to the character (they are what existing code matches on).

const keyText = (key) => (typeof key === 'symbol' ? key.toString() : String(key))

const messages = {
  noFunction: 'You must pass a function to execute',
  timedOut: (key) => 'async-lock timed out in queue ' + keyText(key),
  tooManyPending: (key) => 'Too many pending tasks in queue ' + keyText(key),
  occupationExceeded: (key) => 'Maximum occupation time is exceeded in queue ' + keyText(key),
  executionExceeded: (key) => 'Maximum execution time is exceeded ' + keyText(key),
  lockLost: (key, token) => `keylock: the lease on ${keyText(key)} (fencing token ${token}) was lost`,
  domainMissing:
    'Domain-reentrant locks require `process.domain` to exist. Please flip `opts.domainReentrant = false`, ' +
    'use a NodeJS version that still implements Domain, or install a browser polyfill.',
}

const describe = (value) => {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'symbol') return value.toString()
  if (typeof value === 'function') return 'a function'
  if (value === null) return 'null'
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object'
  return String(value)
}

/** A TypeError that names the argument or option it is about. */
function invalidArg(name, expected, value) {
  const err = new TypeError(`keylock: ${name} must be ${expected}; got ${describe(value)}`)
  err.code = 'ERR_INVALID_ARG_VALUE'
  return err
}

function badKey(cause) {
  const err = new TypeError(
    'keylock: key must be a string, a number, a symbol, or a value whose String() form is a string; ' +
      `converting it threw: ${cause && cause.message}`,
  )
  err.code = 'ERR_INVALID_ARG_VALUE'
  err.cause = cause
  return err
}

module.exports = { messages, invalidArg, badKey, keyText }
