'use strict'
// What a user gets from npm: pack the main package and this platform's
// binary package, install both tarballs into an empty project with no cargo
// on PATH and no registry, then use keyed-lock from CommonJS, ESM and
// TypeScript there. Also pins what the main tarball ships.
//
// Needs the binary built for this platform (keyed-lock.<platform>.node at the
// repository root, from `npm run build` or a CI artifact).

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { platformSuffix } = require('./platform')

const root = path.join(__dirname, '..')
const suffix = platformSuffix()
const binaryName = `keyed-lock.${suffix}.node`
const platformPackage = `keyed-lock-${suffix}`

/** npm's own CLI script, run with this node (no shell, so it works the same on Windows). */
function npmCli() {
  const candidates = [
    process.env.npm_execpath,
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'bin', 'npm-cli.js'),
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  ]
  // An `npm` on PATH that is a link to npm-cli.js (POSIX installs).
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    try {
      candidates.push(fs.realpathSync(path.join(dir, 'npm')))
    } catch {}
  }
  const found = candidates.find((file) => file && /npm-cli\.js$/.test(file) && fs.existsSync(file))
  assert.ok(found, `npm-cli.js not found near ${process.execPath}`)
  return found
}

/** PATH without any directory that holds cargo: proves nothing gets compiled. */
function envWithoutCargo() {
  const env = { ...process.env }
  for (const name of Object.keys(env)) {
    // `npm test` exports its own config (npm_config_*, npm_package_*) to
    // children; the user's install must not inherit our project's settings.
    // The NAPI_RS_* overrides could load a binary from elsewhere.
    if (/^(npm_|NAPI_RS_)/i.test(name) || name === 'NODE_PATH') delete env[name]
  }
  const pathKey = Object.keys(env).find((key) => key.toUpperCase() === 'PATH') || 'PATH'
  const cargo = process.platform === 'win32' ? 'cargo.exe' : 'cargo'
  env[pathKey] = (env[pathKey] || '')
    .split(path.delimiter)
    .filter((dir) => dir && !fs.existsSync(path.join(dir, cargo)))
    .join(path.delimiter)
  return env
}

function run(command, args, options) {
  const child = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options })
  assert.equal(child.status, 0, `${path.basename(command)} ${args.join(' ')} failed:\n${child.stdout}\n${child.stderr}`)
  return child
}

/** `npm pack --json` in `dir`; --ignore-scripts because our `prepare` would compile. */
function pack(dir, extra, env) {
  const child = run(process.execPath, [npmCli(), 'pack', '--json', '--ignore-scripts', ...extra], { cwd: dir, env })
  const [report] = JSON.parse(child.stdout)
  return report
}

/**
 * `npm publish --dry-run` in `dir`: everything publishing checks (manifest,
 * tarball, tag) without uploading. --offline with an empty cache and a
 * loopback registry, so no registry is asked (npm would retry an unreachable
 * one for a minute) and the result does not depend on what the registry
 * holds. Returns the tarball report and npm's warnings, less the one about
 * not being logged in.
 */
function publishDryRun(dir, cache, env) {
  const child = run(
    process.execPath,
    [
      npmCli(),
      'publish',
      '--dry-run',
      '--json',
      '--ignore-scripts',
      '--access',
      'public',
      '--offline',
      '--cache',
      cache,
      '--registry',
      'http://127.0.0.1:9/',
    ],
    { cwd: dir, env },
  )
  const json = JSON.parse(child.stdout)
  // npm 11 keys the report by package name; npm 10 (Node 18-22) prints it bare.
  const report = json.id ? json : Object.values(json)[0]
  const warnings = child.stderr
    .split('\n')
    .filter((line) => /^npm (warn|error)/i.test(line) && !/requires you to be logged in/.test(line))
  return { report, warnings }
}

function describeTarball(t, report) {
  t.diagnostic(`${report.filename}: ${report.size} bytes packed, ${report.unpackedSize} unpacked, ${report.entryCount} files`)
  for (const file of report.files) t.diagnostic(`  ${file.path} (${file.size} bytes)`)
}

test('the main tarball ships the faces, their types, lib/ and the generated loader, nothing else', (t) => {
  const report = pack(root, ['--dry-run'])
  const files = report.files.map((file) => file.path)
  describeTarball(t, report)
  for (const file of files) {
    assert.doesNotMatch(file, /^(src|target|__test__|support|bench|examples|scripts|tests|npm|docs|node_modules)\//, file)
    assert.doesNotMatch(file, /\.(node|tgz|rs)$/, file)
  }
  for (const needed of [
    'package.json',
    'index.js',
    'index.mjs',
    'index.d.ts',
    'alock.js',
    'alock.mjs',
    'alock.d.ts',
    'binding.js',
    'binding.d.ts',
    'lib/native.js',
    'lib/redis/client.js',
    'lib/redis/url.js',
    'lib/lease.js',
    'locky.js',
    'locky.mjs',
    'locky.d.ts',
    'exclusive-lock.js',
    'exclusive-lock.mjs',
    'exclusive-lock.d.ts',
    'LICENSE',
    'CHANGELOG.md',
  ]) {
    assert.ok(files.includes(needed), `${needed} is missing from the tarball`)
  }
  const manifest = require('../package.json')
  for (const script of ['preinstall', 'install', 'postinstall']) {
    assert.equal(manifest.scripts[script], undefined, `a "${script}" script would run on users' machines`)
  }
})

test('installed from the tarballs with no cargo and no registry, keyed-lock works from CJS, ESM and TypeScript', (t) => {
  const built = path.join(root, binaryName)
  assert.ok(fs.existsSync(built), `${binaryName} is missing: run \`npm run build\` first`)
  const npmDir = path.join(root, 'npm', suffix)
  assert.ok(fs.existsSync(path.join(npmDir, 'package.json')), `npm/${suffix} is not one of the napi.targets packages`)

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'keyed-lock-pack-'))
  t.after(() => fs.rmSync(work, { recursive: true, force: true }))
  const env = envWithoutCargo()
  const cargo = spawnSync('cargo', ['--version'], { env, encoding: 'utf8' })
  assert.ok(cargo.error || cargo.status !== 0, `cargo is still on PATH: ${cargo.stdout}`)

  // Main package.
  const main = pack(root, ['--pack-destination', work], env)
  describeTarball(t, main)

  // Platform package: a temp copy of npm/<platform> plus the built binary,
  // the way `napi artifacts` fills it in CI (the binary is never committed).
  const platformDir = path.join(work, 'platform')
  fs.cpSync(npmDir, platformDir, { recursive: true })
  fs.copyFileSync(built, path.join(platformDir, binaryName))
  const platform = pack(platformDir, ['--pack-destination', work], env)
  describeTarball(t, platform)
  assert.equal(platform.name, platformPackage)
  assert.ok(
    platform.files.some((file) => file.path === binaryName),
    `${binaryName} is missing from ${platform.filename}`,
  )
  assert.equal(require('../package.json').optionalDependencies[platformPackage], platform.version)

  // An empty project; one install of both tarballs, offline with an empty
  // cache, so the optionalDependency can only be met by the local tarball.
  const project = path.join(work, 'project')
  fs.mkdirSync(project)
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  const install = run(
    process.execPath,
    [
      npmCli(),
      'install',
      '--offline',
      '--no-audit',
      '--no-fund',
      '--cache',
      path.join(work, 'npm-cache'),
      path.join(work, main.filename),
      path.join(work, platform.filename),
    ],
    { cwd: project, env },
  )
  t.diagnostic(`npm install: ${install.stdout.trim()}`)
  for (const line of install.stderr.trim().split('\n')) if (line) t.diagnostic(`npm install (stderr): ${line}`)
  const installed = path.join(project, 'node_modules', 'keyed-lock')
  // Nothing was compiled and no install script was needed: the package has
  // no sources or build script to run, and no binary of its own.
  assert.deepEqual(
    fs.readdirSync(installed).filter((file) => /^(src|scripts|target)$|\.node$/.test(file)),
    [],
  )

  // CommonJS: the async-lock face takes a lock, the binary comes from the
  // platform package, and keyed-lock/alock works.
  fs.writeFileSync(
    path.join(project, 'check.js'),
    `'use strict'
const assert = require('node:assert/strict')
const AsyncLock = require('keyed-lock')
const lock = require('keyed-lock/alock')
// The Redis faces load (they share the native binary) and construct without
// connecting; their locking is tested against a real Redis elsewhere.
const Locky = require('keyed-lock/locky')
const ExclusiveLock = require('keyed-lock/exclusive-lock')
assert.equal(Locky.Locky, Locky)
assert.equal(ExclusiveLock.ExclusiveLock, ExclusiveLock)
assert.equal(new ExclusiveLock({ name: 'pack test', cache_connection: 'redis://127.0.0.1:6379' }).key, 'exclusive-lock:pack-test')
const binary = require.resolve(${JSON.stringify(platformPackage)})
assert.ok(binary.startsWith(${JSON.stringify(path.join(project, 'node_modules', platformPackage))}), binary)
const asyncLock = new AsyncLock()
const order = []
asyncLock.acquire('key', async () => { order.push('first'); await new Promise((r) => setTimeout(r, 5)) })
const second = asyncLock.acquire('key', async () => { order.push('second'); return 'value' })
assert.equal(asyncLock.isBusy('key'), true)
let inside = false
lock('k', (done) => { inside = true; done() })
assert.equal(inside, true)
// The process-wide reach ships too (its wake-ups are native).
const shared = new AsyncLock({ scope: 'process', name: 'pack-test' })
Promise.all([second, shared.acquire('k', async () => 'shared'), new Promise((r) => lock.shared('s', (done) => { done(); r('alock.shared') }))])
  .then(([value, fromShared, fromAlockShared]) => {
    assert.deepEqual(order, ['first', 'second'])
    assert.equal(asyncLock.isBusy(), false)
    assert.equal(fromShared, 'shared')
    assert.equal(fromAlockShared, 'alock.shared')
    console.log('cjs ok: ' + value + ' from ' + require('node:path').relative(__dirname, binary))
  })
`,
  )
  const cjs = run(process.execPath, ['check.js'], { cwd: project, env })
  t.diagnostic(cjs.stdout.trim())
  assert.match(cjs.stdout, /cjs ok: value/)

  // ESM: default imports work and are the very same objects require gives,
  // so alock's one lock space is shared between the two module systems.
  fs.writeFileSync(
    path.join(project, 'check.mjs'),
    `import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import AsyncLock from 'keyed-lock'
import lock from 'keyed-lock/alock'
import Locky, { Locky as NamedLocky } from 'keyed-lock/locky'
import ExclusiveLock, { ExclusiveLock as NamedExclusiveLock } from 'keyed-lock/exclusive-lock'
const require = createRequire(import.meta.url)
assert.equal(AsyncLock, require('keyed-lock'))
assert.equal(lock, require('keyed-lock/alock'))
assert.equal(Locky, require('keyed-lock/locky'))
assert.equal(NamedLocky, Locky)
assert.equal(ExclusiveLock, require('keyed-lock/exclusive-lock'))
assert.equal(NamedExclusiveLock, ExclusiveLock)
const value = await new AsyncLock().acquire(['a', 'b'], async () => 'esm value')
let release
require('keyed-lock/alock')('shared', (done) => { release = done })
let ran = false
lock('shared', (done) => { ran = true; done() })
assert.equal(ran, false, 'the ESM alock did not see the CommonJS hold')
release()
assert.equal(ran, true)
console.log('esm ok: ' + value)
`,
  )
  const esm = run(process.execPath, ['check.mjs'], { cwd: project, env })
  t.diagnostic(esm.stdout.trim())
  assert.match(esm.stdout, /esm ok: esm value/)

  // TypeScript against the installed declarations, through the exports map.
  fs.writeFileSync(
    path.join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: 'node16',
        moduleResolution: 'node16',
        target: 'es2020',
        lib: ['es2020'],
        types: [],
      },
      files: ['check-types.ts', 'check-types.mts'],
    }),
  )
  fs.writeFileSync(
    path.join(project, 'check-types.ts'),
    `import AsyncLock = require('keyed-lock')
import lock = require('keyed-lock/alock')
const options: AsyncLock.AsyncLockOptions = { timeout: 100, maxPending: Infinity }
const value: Promise<string> = new AsyncLock(options).acquire('k', async () => 'v')
lock('k', (done) => done())
void value
`,
  )
  fs.writeFileSync(
    path.join(project, 'check-types.mts'),
    `import AsyncLock from 'keyed-lock'
import lock from 'keyed-lock/alock'
const value: Promise<number> = new AsyncLock().acquire(['a', 1], () => 1)
lock('k', (done) => done())
void value
`,
  )
  run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', project], { cwd: project, env })

  // The Redis faces are EventEmitters, so their declarations use Node's
  // types, as a Node project has them (@types/node, taken from this
  // repository's devDependencies: the project cannot download it).
  fs.writeFileSync(
    path.join(project, 'tsconfig.redis.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: 'node16',
        moduleResolution: 'node16',
        target: 'es2020',
        lib: ['es2020'],
        typeRoots: [path.join(root, 'node_modules', '@types')],
        types: ['node'],
      },
      files: ['check-redis-types.ts', 'check-redis-types.mts'],
    }),
  )
  fs.writeFileSync(
    path.join(project, 'check-redis-types.ts'),
    `import Locky = require('keyed-lock/locky')
import ExclusiveLock = require('keyed-lock/exclusive-lock')
const locky: Locky = new Locky({ redis: 'redis://127.0.0.1:6379', ttl: 1000 })
const exclusive: ExclusiveLock = new ExclusiveLock({ name: 'n', cache_connection: 'redis://127.0.0.1:6379' })
const acquired: Promise<boolean> = exclusive.acquire()
void locky, acquired
`,
  )
  fs.writeFileSync(
    path.join(project, 'check-redis-types.mts'),
    `import Locky, { Locky as NamedLocky } from 'keyed-lock/locky'
import ExclusiveLock, { ExclusiveLock as NamedExclusiveLock } from 'keyed-lock/exclusive-lock'
const locky: NamedLocky = new Locky({ ttl: null })
const exclusive: NamedExclusiveLock = new ExclusiveLock({ name: 'n', cache_connection: 'redis://127.0.0.1:6379' })
void locky, exclusive
`,
  )
  run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(project, 'tsconfig.redis.json')], {
    cwd: project,
    env,
  })

  // The setup of many @types/async-lock users: classic resolution (no
  // "exports"), esModuleInterop off, `import * as`. It must find the
  // installed index.d.ts and alock.d.ts through "types" and the file layout.
  fs.writeFileSync(
    path.join(project, 'tsconfig.legacy.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: 'commonjs',
        moduleResolution: 'node10',
        esModuleInterop: false,
        target: 'es2019',
        lib: ['es2019'],
        types: [],
      },
      files: ['check-legacy.ts'],
    }),
  )
  fs.writeFileSync(
    path.join(project, 'check-legacy.ts'),
    `import * as AsyncLock from 'keyed-lock'
import lock = require('keyed-lock/alock')
const value: Promise<string> = new AsyncLock({ Promise: null }).acquire('k', async () => 'v')
lock('k', (done) => done())
void value
`,
  )
  run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(project, 'tsconfig.legacy.json')], {
    cwd: project,
    env,
  })

  // And the types really are the installed ones: a wrong call is rejected.
  fs.writeFileSync(path.join(project, 'check-types.ts'), `import AsyncLock = require('keyed-lock')\nnew AsyncLock({ timeout: 'soon' })\n`)
  const wrong = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', project], {
    cwd: project,
    env,
    encoding: 'utf8',
  })
  assert.notEqual(wrong.status, 0, 'tsc accepted a string timeout')
  assert.match(wrong.stdout, /check-types\.ts.*TS2322/)
})

test('npm publish --dry-run passes for the main package and every platform package', (t) => {
  const manifest = require('../package.json')
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'keyed-lock-publish-'))
  t.after(() => fs.rmSync(work, { recursive: true, force: true }))
  const env = envWithoutCargo()
  const cache = path.join(work, 'npm-cache')

  const main = publishDryRun(root, cache, env)
  describeTarball(t, main.report)
  assert.equal(main.report.name, manifest.name)
  assert.equal(main.report.version, manifest.version)
  // A warning here is npm rewriting our package.json on the way out (for
  // example "auto-corrected some errors"): fix package.json instead.
  assert.deepEqual(main.warnings, [], `${manifest.name}: npm warned`)

  // Each npm/<platform> package as `napi prepublish` publishes it in CI:
  // the folder plus its binary. This platform's is the one built here; the
  // others are stand-ins with the right name (only the packaging is tested).
  for (const platform of fs.readdirSync(path.join(root, 'npm'))) {
    const dir = path.join(work, platform)
    fs.cpSync(path.join(root, 'npm', platform), dir, { recursive: true })
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
    const built = path.join(root, pkg.main)
    if (fs.existsSync(built)) fs.copyFileSync(built, path.join(dir, pkg.main))
    else fs.writeFileSync(path.join(dir, pkg.main), 'stand-in binary\n')
    const { report, warnings } = publishDryRun(dir, cache, env)
    describeTarball(t, report)
    assert.equal(report.name, pkg.name)
    assert.equal(report.version, manifest.version)
    assert.deepEqual(report.files.map((file) => file.path).sort(), ['README.md', pkg.main, 'package.json'].sort())
    assert.deepEqual(warnings, [], `${pkg.name}: npm warned`)
  }
})

test('package metadata: repository (which npm publish --provenance checks), homepage, bugs, keywords', () => {
  const manifest = require('../package.json')
  // Provenance ties a tarball to the repository that built it: npm refuses a
  // --provenance publish whose package.json names no repository, or another one.
  assert.equal(manifest.repository.type, 'git')
  const match = /^git\+https:\/\/github\.com\/([\w.-]+\/[\w.-]+)\.git$/.exec(manifest.repository.url)
  assert.ok(match, `repository.url ${manifest.repository.url} is not npm's normalized GitHub form`)
  const web = `https://github.com/${match[1]}`
  assert.equal(manifest.homepage, `${web}#readme`)
  assert.equal(manifest.bugs.url, `${web}/issues`)
  assert.ok(Array.isArray(manifest.keywords) && manifest.keywords.length > 0)
  for (const keyword of ['lock', 'mutex', 'async-lock', 'redis']) assert.ok(manifest.keywords.includes(keyword), keyword)
  for (const platform of fs.readdirSync(path.join(root, 'npm'))) {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'npm', platform, 'package.json'), 'utf8'))
    assert.deepEqual(pkg.repository, { ...manifest.repository, directory: `npm/${platform}` }, pkg.name)
    assert.equal(pkg.license, manifest.license, pkg.name)
    assert.deepEqual(pkg.engines, manifest.engines, pkg.name)
  }
})

/**
 * napi-rs's platform-arch-abi for a target triple, for the triples we build
 * ('x86_64-unknown-linux-gnu' → 'linux-x64-gnu'). Written out here because
 * @napi-rs/cli itself does not load on Node 18, which the tests must run on.
 */
function napiPlatform(triple) {
  const [cpu, , system, abi] = triple.split('-')
  const arch = { x86_64: 'x64', aarch64: 'arm64' }[cpu]
  const platform = { linux: 'linux', darwin: 'darwin', windows: 'win32' }[system]
  assert.ok(arch && platform, `teach napiPlatform about ${triple}`)
  return platform === 'darwin' ? `${platform}-${arch}` : `${platform}-${arch}-${abi}`
}

test('npm/ holds one package per napi.targets entry, pinned in optionalDependencies and required by the loader', () => {
  // napi-rs names both the package and the binary after binaryName and the
  // target's platform-arch-abi.
  const manifest = require('../package.json')
  const loader = fs.readFileSync(path.join(root, 'binding.js'), 'utf8')
  const expected = manifest.napi.targets.map(napiPlatform).sort()
  assert.deepEqual(fs.readdirSync(path.join(root, 'npm')).sort(), expected)
  for (const platform of expected) {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'npm', platform, 'package.json'), 'utf8'))
    const name = `${manifest.napi.binaryName}-${platform}`
    const binary = `${manifest.napi.binaryName}.${platform}.node`
    assert.equal(pkg.name, name)
    assert.equal(pkg.version, manifest.version)
    assert.equal(pkg.main, binary)
    assert.deepEqual(pkg.files, [binary])
    assert.ok(Array.isArray(pkg.os) && Array.isArray(pkg.cpu), `${name} must declare os and cpu so npm skips it elsewhere`)
    assert.equal(manifest.optionalDependencies[name], manifest.version, `${name} is not pinned to ${manifest.version}`)
    assert.ok(loader.includes(`require('${name}')`), `binding.js never requires ${name}`)
    assert.ok(loader.includes(`require('./${binary}')`), `binding.js never requires ./${binary}`)
  }
  assert.deepEqual(Object.keys(manifest.optionalDependencies).sort(), expected.map((p) => `${manifest.napi.binaryName}-${p}`).sort())
})
