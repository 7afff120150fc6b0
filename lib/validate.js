'use strict'
const { invalidArg, oneHolderOption, badKey, ttlOutOfRange, TTL_MIN_MS, TTL_MAX_MS } = require('./errors')

/**
 * A time option (`timeout`, `maxOccupationTime`, `maxExecutionTime`).
 * async-lock's rule is kept: any falsy value means "never". A number-like
 * string ('5000') is read as a number, as setTimeout would. What async-lock
 * would have turned into a 1 ms timer without a word ('soon', -1, {}) is a
 * TypeError naming the option.
 */
function timeOption(name, value) {
  if (!value) return 0
  if (typeof value === 'number') {
    if (value > 0) return value
  } else if (typeof value === 'string' && value.trim() !== '') {
    const n = Number(value)
    if (n >= 0) return n
  }
  throw invalidArg(`option "${name}"`, 'a non-negative number of milliseconds (0 or unset: no limit)', value)
}

/** async-lock's constructor rule, kept as is: anything but Infinity or an integer >= 0 gives `fallback`. */
function maxPendingOption(value, fallback) {
  if (value === Infinity || (Number.isInteger(value) && value >= 0)) return value
  return fallback
}

/**
 * How keys are compared: as object property names, like async-lock and
 * alock do (1 and '1' are one key, every plain object is '[object Object]').
 * Symbols stay symbols (compared by identity, as property keys are).
 */
function normalizeKey(key) {
  if (typeof key === 'string' || typeof key === 'symbol') return key
  try {
    return String(key)
  } catch (err) {
    throw badKey(err)
  }
}

/**
 * A Redis lease ttl already read as a number of milliseconds: what is not a
 * duration at all (not a number, NaN, <= 0, infinite) is a TypeError naming
 * the option; a duration outside the bounds in lib/errors.js
 * (TTL_MIN_MS..TTL_MAX_MS, after rounding up to a whole millisecond, Redis's
 * PX unit) is a RangeError naming it. `expected` is for the TypeError.
 */
function ttlOption(name, value, expected = `a number of milliseconds from ${TTL_MIN_MS} to ${TTL_MAX_MS}`) {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) throw invalidArg(name, expected, value)
  const ms = Math.ceil(value)
  if (!(ms >= TTL_MIN_MS && ms <= TTL_MAX_MS)) throw ttlOutOfRange(name, value)
  return ms
}

module.exports = { timeOption, maxPendingOption, normalizeKey, ttlOption }

// Counted keys (docs/semaphores.md). The limit a key's words can hold.
const MAX_PERMITS = 0x7fffffff

/** The constructor's `permits`: a positive integer, Infinity (unbounded readers) → the largest count. */
function permitsOption(value) {
  if (value === undefined) return 1
  if (value === Infinity) return MAX_PERMITS
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_PERMITS) {
    throw invalidArg('option "permits"', `a positive integer up to ${MAX_PERMITS}, or Infinity`, value)
  }
  return value
}

/**
 * One call's weights from its `weight` and `mode` options, for a request of
 * `n` keys on a lock of `permits`: undefined (1 on every key: the default),
 * a number, or an array of one weight per key. Throws a TypeError naming the
 * option before anything is queued.
 */
function callWeight(opts, permits, n) {
  if (!opts) return undefined
  const { weight, mode } = opts
  if (mode !== undefined) {
    if (mode !== 'shared' && mode !== 'exclusive') throw invalidArg('option "mode"', "'shared' or 'exclusive'", mode)
    if (mode === 'shared' && permits === 1) {
      throw invalidArg('option "mode"', "'exclusive' or unset on a lock without permits (a shared holder needs permits > 1)", mode)
    }
    if (mode === 'exclusive') {
      if (weight !== undefined) throw invalidArg('option "weight"', "unset with mode 'exclusive' (an exclusive call takes every permit)", weight)
      return permits === 1 ? undefined : permits
    }
  }
  if (weight === undefined) return undefined
  const one = (w) => {
    if (typeof w !== 'number' || !Number.isInteger(w) || w < 1 || w > permits) {
      throw invalidArg('option "weight"', `an integer from 1 to the lock's permits (${permits})`, w)
    }
    return w
  }
  if (Array.isArray(weight)) {
    if (weight.length !== n) throw invalidArg('option "weight"', `a number or an array of ${n} weights (one per key)`, weight)
    const out = weight.map(one)
    return n === 1 ? out[0] : out
  }
  return one(weight)
}

/** What `permits`, `weight` and `mode` may be on a face with one holder per key: exactly that. */
const ONE_HOLDER = [
  ['permits', 1, '1'],
  ['weight', 1, '1'],
  ['mode', 'exclusive', "'exclusive'"],
]

/**
 * Refuses, before anything is locked, `permits`, `weight` or `mode` in
 * `opts` on a face that admits one holder per key (`face` names it), unless
 * the value says just that. Anything but a plain object passes: the faces
 * check their own argument shapes.
 */
function oneHolderOnly(face, opts) {
  if (opts === null || typeof opts !== 'object') return
  for (const [name, allowed, shown] of ONE_HOLDER) {
    const value = opts[name]
    if (value !== undefined && value !== allowed) throw oneHolderOption(face, name, shown, value)
  }
}

module.exports.MAX_PERMITS = MAX_PERMITS
module.exports.oneHolderOnly = oneHolderOnly
module.exports.permitsOption = permitsOption
module.exports.callWeight = callWeight
