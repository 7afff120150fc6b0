'use strict'
// Loads the addon through the loader `napi build` generates, and turns its
// failure into an error that says what to do.
let binding
try {
  binding = require('../binding.js')
} catch (err) {
  const { platform, arch } = process
  const wanted = `keylock-${platform}-${arch}`
  const e = new Error(
    `keylock: no native binary for ${platform}-${arch}. ` +
      `npm looked for the optional package "${wanted}" (or a ${'keylock.' + platform + '-' + arch}*.node file next to binding.js) and found none. ` +
      'Prebuilt binaries exist for linux-x64-gnu, linux-arm64-gnu, darwin-x64, darwin-arm64 and win32-x64-msvc. ' +
      'To build from source: install Rust (https://rustup.rs), then run `npm rebuild keylock` ' +
      'or, in a clone of the repository, `npm install`.',
  )
  e.code = 'KEYLOCK_NO_BINARY'
  e.cause = err
  throw e
}
module.exports = binding
