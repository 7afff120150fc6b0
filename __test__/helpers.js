'use strict'
// Shared by the *.test.js files (node --test only runs files named *.test.js).

const AsyncLockOracle = require('async-lock')
const KeyedLock = require('..')

const impls = [
  ['async-lock', AsyncLockOracle],
  ['keyed-lock', KeyedLock],
]

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const immediate = () => new Promise((resolve) => setImmediate(resolve))

/**
 * Mocks setTimeout/clearTimeout for test `t` (restored when it ends), in
 * the form this Node takes: `{ apis }` since Node 20.11, an array on 18.19
 * and 20.4-20.10.
 */
function mockTimers(t) {
  try {
    t.mock.timers.enable({ apis: ['setTimeout'] })
  } catch (err) {
    if (!(err instanceof TypeError)) throw err
    t.mock.timers.enable(['setTimeout'])
  }
}

let virtualMs = 0
/** The virtual clock's time in ms, inside virtualTime() (Date is not mocked on every supported Node). */
const now = () => virtualMs

/**
 * Runs `scenario()` on a virtual clock: setTimeout is a node:test mock timer
 * for test `t`, and the clock moves 1 ms at a time, only once everything the
 * last step started has run out (immediates and microtasks). Sleeps and
 * timers in the scenario, in keyed-lock and in async-lock then fire in the same
 * order whatever the machine's load, and now() differences are exact.
 * Resolves or rejects as the scenario does; `limit` virtual ms catches a
 * scenario that never ends.
 */
async function virtualTime(t, scenario, limit = 60_000) {
  mockTimers(t)
  virtualMs = 0
  let settled = false
  const run = Promise.resolve().then(scenario)
  run.then(
    () => (settled = true),
    () => (settled = true),
  )
  await drain(5)
  try {
    while (!settled) {
      if (virtualMs >= limit) throw new Error(`the scenario did not end within ${limit} virtual ms`)
      // First, so that what tick() fires reads the new time.
      virtualMs++
      t.mock.timers.tick(1)
      await drain(5)
    }
  } finally {
    t.mock.timers.reset()
  }
  return run
}

/** Lets every immediate/microtask chain of a scenario run out. */
async function drain(rounds = 20) {
  for (let i = 0; i < rounds; i++) await immediate()
}

/** mulberry32: small, seeded, good enough to pick test programs. */
function prng(seed) {
  let a = seed >>> 0
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const errText = (err) => (err ? (err instanceof Error ? err.message : String(err)) : String(err))

/** Polls `check` (real time, for servers and processes) until it returns a truthy value; throws naming `what` after `timeoutMs`. */
async function waitFor(what, check, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

module.exports = { waitFor, AsyncLockOracle, KeyedLock, impls, sleep, immediate, drain, mockTimers, virtualTime, now, prng, errText }
