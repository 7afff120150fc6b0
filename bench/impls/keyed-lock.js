'use strict'
// keyed-lock as a user gets it: the package entry point, isolate reach.
const AsyncLock = require('../..')

module.exports = { name: 'keyed-lock', create: (opts) => new AsyncLock(opts) }
