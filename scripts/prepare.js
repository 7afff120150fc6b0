'use strict'
// `npm install` in a clone: build the addon from source (release profile).
// Skipped when a prebuilt binary for this platform is already loadable
// (an installed keyed-lock-<platform> package), so users without Rust are fine.
const { spawnSync } = require('child_process')
const path = require('path')

const root = path.join(__dirname, '..')
const fromSource = require('fs').existsSync(path.join(root, 'src', 'lib.rs'))
if (!fromSource) process.exit(0)

ensureRedisServer()

/**
 * The Redis tests start throwaway redis-server processes, and a fresh
 * machine has none: a clone's `npm install` fetches it with apt-get when it
 * can (root on Debian/Ubuntu), so `npm test` works with nothing else typed.
 * Elsewhere it says what to install; it never fails the install.
 */
function ensureRedisServer() {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0) return
  const canApt =
    process.platform === 'linux' &&
    typeof process.getuid === 'function' &&
    process.getuid() === 0 &&
    spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0
  if (!canApt) {
    console.warn(
      'keyed-lock: the Redis tests need redis-server on PATH (apt-get install redis-server, brew install redis, …); ' +
        'npm test fails its Redis tests without it.',
    )
    return
  }
  console.log('keyed-lock: installing redis-server for the Redis tests (apt-get)…')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const update = spawnSync('apt-get', ['update'], { stdio: 'inherit', env })
  const install = update.status === 0 && spawnSync('apt-get', ['install', '-y', 'redis-server'], { stdio: 'inherit', env })
  if (!install || install.status !== 0) console.warn('keyed-lock: apt-get could not install redis-server; the Redis tests need it.')
}

const hasCargo = spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status === 0
if (!hasCargo) {
  try {
    require(path.join(root, 'binding.js'))
    console.log('keyed-lock: no cargo on PATH; using the prebuilt binary that is installed')
    process.exit(0)
  } catch {
    console.error('keyed-lock: building from source needs Rust (cargo). Install it from https://rustup.rs and run npm install again.')
    process.exit(1)
  }
}
console.log('keyed-lock: building the native addon (cargo, release profile)…')
const napi = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
const r = spawnSync(
  process.execPath,
  [napi, 'build', '--platform', '--release', '--js', 'binding.js', '--dts', 'binding.d.ts'],
  { cwd: root, stdio: 'inherit' },
)
process.exit(r.status === null ? 1 : r.status)
