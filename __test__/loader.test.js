'use strict'
// What a user sees when the native binary for their platform is missing or
// broken: one error with a stable code that names the platform, the package
// the loader looked for and how to build from source, never a bare
// "Cannot find module". Each case copies the JS of the package into an empty
// temp dir (no .node file, no node_modules) and requires it in a child.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { platformSuffix } = require('./platform')

const root = path.join(__dirname, '..')

/** A copy of the package's JS (what the tarball ships) without any binary. */
function packageWithoutBinary() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyed-lock-loader-'))
  for (const file of ['package.json', 'index.js', 'alock.js', 'binding.js']) {
    fs.copyFileSync(path.join(root, file), path.join(dir, file))
  }
  fs.cpSync(path.join(root, 'lib'), path.join(dir, 'lib'), { recursive: true })
  return dir
}

/** Requires `entry` in a clean child and returns what it threw. */
function requireInChild(dir, entry) {
  const env = { ...process.env }
  // The generated loader honours these; a developer's shell must not make
  // the binary loadable (or change the error) behind the test's back.
  for (const name of ['NAPI_RS_NATIVE_LIBRARY_PATH', 'NAPI_RS_FORCE_WASI', 'NAPI_RS_WASI_FLAVOR', 'NODE_PATH']) {
    delete env[name]
  }
  const script = `
    try {
      require(${JSON.stringify(path.join(dir, entry))})
      console.log(JSON.stringify({ loaded: true }))
    } catch (e) {
      console.log(JSON.stringify({ loaded: false, name: e.name, code: e.code, message: e.message, hasCause: e.cause !== undefined }))
    }`
  const child = spawnSync(process.execPath, ['-e', script], { cwd: dir, env, encoding: 'utf8' })
  assert.equal(child.status, 0, child.stderr)
  return JSON.parse(child.stdout.trim().split('\n').pop())
}

function assertHelpfulError(result) {
  const suffix = platformSuffix()
  assert.equal(result.loaded, false, 'the package loaded without a binary')
  assert.equal(result.code, 'KEYED_LOCK_NO_BINARY')
  assert.equal(result.hasCause, true, 'the loader error is kept as cause')
  assert.doesNotMatch(result.message, /^Cannot find/)
  assert.ok(result.message.includes(`${process.platform}-${process.arch}`), result.message)
  assert.ok(result.message.includes(`"keyed-lock-${suffix}"`), result.message)
  assert.ok(result.message.includes(`keyed-lock.${suffix}.node`), result.message)
  assert.match(result.message, /build from source/)
  assert.match(result.message, /rustup\.rs/)
  assert.match(result.message, /npm install/)
}

test('without any binary, require("keyed-lock") says what it looked for and how to build', () => {
  const dir = packageWithoutBinary()
  try {
    const result = requireInChild(dir, 'index.js')
    assertHelpfulError(result)
    // This platform has a prebuilt package, so the advice is to reinstall it.
    assert.match(result.message, /--omit=optional/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('without any binary, require("keyed-lock/alock") fails the same way', () => {
  const dir = packageWithoutBinary()
  try {
    assertHelpfulError(requireInChild(dir, 'alock.js'))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('a binary that exists but cannot be loaded gives the same error, with the loader reason', () => {
  const dir = packageWithoutBinary()
  try {
    const file = `keyed-lock.${platformSuffix()}.node`
    fs.writeFileSync(path.join(dir, file), 'not a shared library')
    const result = requireInChild(dir, 'index.js')
    assertHelpfulError(result)
    // The dlopen failure is listed, so the user can tell "broken" from "absent".
    assert.match(result.message, /Load attempts:/)
    assert.ok(result.message.includes(file), result.message)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
