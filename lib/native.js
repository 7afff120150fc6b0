'use strict'
// Loads the addon through the loader `napi build` generates (../binding.js),
// and turns its failure into one error that says what was looked for and
// what to do, instead of a bare "Cannot find module".
//
// Besides what binding.d.ts declares, the addon exports raw N-API callbacks
// (src/binding/hot.rs), absent from the generated types because napi-rs does
// not generate them: acquire(), release(), cancel() (isolate reach) and
// processAcquire(), processRelease(), processReleaseIdle(), processCancel()
// (process reach), which take no arguments and exchange data through the
// thread's one io buffer (lib/spaces/io.js; layouts in src/binding/mod.rs);
// semAcquireIo(), semReleaseIo(), semCancelIo(), semTakeGrants() (counted
// keys, lib/spaces/counted.js), the same through the thread's counted io
// buffer (layouts in src/binding/semaphore.rs); and noopRaw(), which
// bench/crossings.js times.
//
// OUTCOME is the outcome table of src/core/outcome.rs ({ GRANTED: 0, ... }),
// read once here so that no JS file spells the codes itself.
let binding
try {
  binding = require('../binding.js')
} catch (err) {
  throw noBinaryError(err)
}
binding.OUTCOME = Object.freeze(binding.outcomeCodes())
module.exports = binding

/**
 * The platform part of the names binding.js tries for this process, e.g.
 * 'linux-x64-gnu' for keyed-lock.linux-x64-gnu.node and the package
 * keyed-lock-linux-x64-gnu. It mirrors the generated loader's choice (libc on
 * Linux, toolchain on Windows) so the message names what it really looked for.
 */
function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const libc = isMusl() ? 'musl' : 'gnu'
    if (arch === 'arm') return `linux-arm-${libc}eabihf`
    return `linux-${arch}-${libc}`
  }
  if (platform === 'win32') {
    const vars = (process.config && process.config.variables) || {}
    const gnu = arch === 'x64' && (vars.shlib_suffix === 'dll.a' || vars.node_target_type === 'shared_library')
    return `win32-${arch}-${gnu ? 'gnu' : 'msvc'}`
  }
  return `${platform}-${arch}`
}

function isMusl() {
  try {
    const report = process.report && process.report.getReport()
    // A glibc build of Node reports the glibc it runs on; a musl one does not.
    return !(report && report.header && report.header.glibcVersionRuntime)
  } catch {
    return false
  }
}

/** The per-platform packages this version publishes, from our package.json. */
function publishedPackages() {
  try {
    return Object.keys(require('../package.json').optionalDependencies || {})
  } catch {
    return []
  }
}

/** First line of each error in the loader's `cause` chain, oldest first. */
function attempts(err) {
  const lines = []
  for (let e = err && err.cause; e && lines.length < 20; e = e.cause) {
    lines.unshift(String((e && e.message) || e).split('\n')[0])
  }
  return lines
}

function noBinaryError(err) {
  const { platform, arch } = process
  const suffix = platformSuffix()
  const wanted = `keyed-lock-${suffix}`
  const file = `keyed-lock.${suffix}.node`
  const published = publishedPackages()
  const available = published.includes(wanted)
  const lines = [
    `keyed-lock: could not load its native binary for ${platform}-${arch} (${suffix}).`,
    available
      ? `It looked for the optional dependency "${wanted}" and for ${file} next to binding.js. ` +
        'npm skips optional dependencies when installing with --omit=optional or --no-optional, ' +
        'or with a package-lock.json made on another platform (https://github.com/npm/cli/issues/4828): ' +
        'reinstall with optional dependencies, after deleting node_modules and package-lock.json if needed.'
      : `It looked for "${wanted}" and for ${file} next to binding.js, but no prebuilt binary is published for ` +
        `this platform (prebuilt: ${published.map((name) => name.replace('keyed-lock-', '')).join(', ') || 'none'}).`,
    'To build from source: install Rust (https://rustup.rs), clone the keyed-lock repository and run `npm install` ' +
      `in the clone (its prepare script builds ${file} with cargo); then install that directory ` +
      '(`npm install /path/to/keyed-lock`) or set NAPI_RS_NATIVE_LIBRARY_PATH to the built .node file.',
  ]
  const tried = attempts(err)
  if (tried.length !== 0) lines.push('Load attempts:', ...tried.map((line) => `  - ${line}`))
  else if (err && err.message) lines.push(`Loader error: ${String(err.message).split('\n')[0]}`)
  const e = new Error(lines.join('\n'))
  e.code = 'KEYED_LOCK_NO_BINARY'
  e.cause = err
  return e
}
