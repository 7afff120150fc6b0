'use strict'
// Shared by locky.test.js and exclusive-lock.test.js (not a *.test.js file).

const { RedisClient } = require('../lib/redis/client')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** The Redis key that holds the lease of lock name `name` (keyed-lock's `P:{N}` layout). */
function leaseKey(name, prefix = 'keyed-lock') {
  const keyOf = RedisClient.prototype.keyOf
  return typeof keyOf === 'function' ? keyOf.call({ prefix }, name) : `${prefix}:{${name}}`
}

/**
 * The next `name` event's arguments. Unlike events.once it does not reject
 * on 'error', so a test can wait for 'released' after an 'error'.
 */
function nextEvent(emitter, name, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.removeListener(name, onEvent)
      reject(new Error(`no '${name}' event within ${timeoutMs} ms`))
    }, timeoutMs)
    function onEvent(...args) {
      clearTimeout(timer)
      resolve(args)
    }
    emitter.once(name, onEvent)
  })
}

/** Records every event emitted through `emitter.emit`, in order. */
function recordEvents(emitter) {
  const events = []
  const emit = emitter.emit
  emitter.emit = function (...args) {
    events.push(args)
    return emit.apply(this, args)
  }
  return events
}

/**
 * Replaces methods of the shared Redis clients the facades open from now
 * on: `overrides.extend = (real, ...args) => …`. The upstream suites broke
 * their ioredis connection's pexpire/del/multi the same way; keyed-lock's
 * facades talk through keyed-lock's client, so that is the seam to break.
 * Returns the function that restores the real client.
 */
function patchRedisClient(overrides) {
  const mod = require('../lib/redis/client')
  const Real = mod.RedisClient
  mod.RedisClient = {
    open(url, opts) {
      const client = Real.open(url, opts)
      return new Proxy(client, {
        get(target, prop) {
          if (Object.hasOwn(overrides, prop)) return (...args) => overrides[prop](target, ...args)
          const value = target[prop]
          return typeof value === 'function' ? value.bind(target) : value
        },
      })
    },
  }
  return () => {
    mod.RedisClient = Real
  }
}

/** Fails the current test on any unhandled rejection while `fn` runs (and `settleMs` after). */
async function noUnhandledRejections(fn, settleMs = 50) {
  const seen = []
  const onRejection = (reason) => seen.push(reason)
  process.on('unhandledRejection', onRejection)
  try {
    const result = await fn()
    await sleep(settleMs)
    if (seen.length !== 0) throw new Error(`unhandled rejection: ${seen[0] && seen[0].stack}`)
    return result
  } finally {
    process.removeListener('unhandledRejection', onRejection)
  }
}

let counter = 0
const uniqueName = (label = 'lock') => `${label}-${process.pid}-${Date.now().toString(36)}-${++counter}`

module.exports = { sleep, leaseKey, nextEvent, recordEvents, patchRedisClient, noUnhandledRejections, uniqueName }
