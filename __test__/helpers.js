'use strict'
// Shared by the *.test.js files (node --test only runs files named *.test.js).

const AsyncLockOracle = require('async-lock')
const KeyLock = require('..')

const impls = [
  ['async-lock', AsyncLockOracle],
  ['keylock', KeyLock],
]

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const immediate = () => new Promise((resolve) => setImmediate(resolve))

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

module.exports = { AsyncLockOracle, KeyLock, impls, sleep, immediate, drain, prng, errText }
