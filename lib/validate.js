'use strict'
const { invalidArg, badKey } = require('./errors')

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

module.exports = { timeOption, maxPendingOption, normalizeKey }
