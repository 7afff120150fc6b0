'use strict'
// keylock as a user gets it: the package entry point, isolate reach.
const AsyncLock = require('../..')

module.exports = { name: 'keylock', create: (opts) => new AsyncLock(opts) }
