'use strict'
// What every bench report says about where it ran: results from a shared,
// noisy machine are read as ratios, but the reader should know which one.
const os = require('node:os')

/** `{ date, cpu, cores, node }` for a report's header. */
function machine() {
  const cpus = os.cpus()
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpu: cpus[0] ? cpus[0].model.trim() : 'unknown cpu',
    cores: cpus.length,
    node: process.version,
  }
}

module.exports = { machine }
