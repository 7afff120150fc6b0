'use strict'
// `npm install` in a clone: build the addon from source (release profile).
// Skipped when a prebuilt binary for this platform is already loadable
// (an installed keylock-<platform> package), so users without Rust are fine.
const { spawnSync } = require('child_process')
const path = require('path')

const root = path.join(__dirname, '..')
const fromSource = require('fs').existsSync(path.join(root, 'src', 'lib.rs'))
if (!fromSource) process.exit(0)

const hasCargo = spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status === 0
if (!hasCargo) {
  try {
    require(path.join(root, 'binding.js'))
    console.log('keylock: no cargo on PATH; using the prebuilt binary that is installed')
    process.exit(0)
  } catch {
    console.error('keylock: building from source needs Rust (cargo). Install it from https://rustup.rs and run npm install again.')
    process.exit(1)
  }
}
console.log('keylock: building the native addon (cargo, release profile)…')
const napi = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
const r = spawnSync(
  process.execPath,
  [napi, 'build', '--platform', '--release', '--js', 'binding.js', '--dts', 'binding.d.ts'],
  { cwd: root, stdio: 'inherit' },
)
process.exit(r.status === null ? 1 : r.status)
