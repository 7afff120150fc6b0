'use strict'
// The reference every ratio is taken against.
const AsyncLock = require('async-lock')

module.exports = { name: 'async-lock', create: (opts) => new AsyncLock(opts) }
