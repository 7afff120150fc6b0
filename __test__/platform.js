'use strict'
// Which napi-rs platform this process is, worked out independently of
// lib/native.js so the tests check the loader instead of trusting it.

/** The suffix napi-rs gives this platform's binary and package, e.g. 'linux-x64-gnu'. */
function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    // A glibc build of Node reports the glibc it runs on; a musl one does not.
    const glibc = process.report.getReport().header.glibcVersionRuntime
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

module.exports = { platformSuffix }
