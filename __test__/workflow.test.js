'use strict'
// The release workflow cannot run here, so its shape is checked instead:
// it builds every napi.targets entry, uploads one artifact per target, tests
// each binary on its own OS, and publishes only from a version tag.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const yaml = require('js-yaml')

const root = path.join(__dirname, '..')
const workflow = yaml.load(fs.readFileSync(path.join(root, '.github', 'workflows', 'release.yml'), 'utf8'))
const manifest = require('../package.json')
const targets = manifest.napi.targets

/** GitHub's filter glob, enough of it for tag patterns: `*` is any run of non-slash characters. */
const globToRegExp = (glob) =>
  new RegExp('^' + glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*') + '$')

const runs = (job) => job.steps.filter((step) => step.run).map((step) => step.run)
const uses = (job, action) => job.steps.filter((step) => step.uses && step.uses.startsWith(action + '@'))

test('a version tag triggers the workflow, other tags do not', () => {
  const tags = workflow.on.push.tags
  assert.ok(Array.isArray(tags) && tags.length > 0)
  const matches = (tag) => tags.some((glob) => globToRegExp(glob).test(tag))
  assert.equal(matches('v0.1.0'), true)
  assert.equal(matches(`v${manifest.version}`), true)
  assert.equal(matches('v1.2.3-rc.1'), true)
  assert.equal(matches('nightly'), false)
})

test('the build matrix covers exactly the napi.targets, one artifact each', () => {
  const build = workflow.jobs.build
  const entries = build.strategy.matrix.settings
  assert.deepEqual(entries.map((entry) => entry.target).sort(), [...targets].sort())
  for (const entry of entries) {
    // The build script keeps its --js/--dts flags, so the loader stays the committed one.
    assert.match(entry.build, new RegExp(`^npm run build -- --target ${entry.target}( |$)`), entry.build)
    if (entry.target.includes('linux')) {
      // Linux binaries are built against an old glibc (napi cross toolchain)
      // or with zig, as the template does, so they load on older distros.
      assert.match(entry.build, /--use-napi-cross|(^| )(-x|--cross-compile)( |$)/, entry.build)
    }
    const expectedHost = entry.target.includes('apple') ? /^macos/ : entry.target.includes('windows') ? /^windows/ : /^ubuntu/
    assert.match(entry.host, expectedHost, entry.target)
  }
  const [upload] = uses(build, 'actions/upload-artifact')
  assert.ok(upload, 'no upload-artifact step')
  assert.equal(upload.with.name, 'bindings-${{ matrix.settings.target }}')
  assert.equal(workflow.env.APP_NAME, manifest.napi.binaryName)
  assert.match(String(upload.with.path), /\$\{\{ env\.APP_NAME \}\}\.\*\.node/)
  assert.ok(runs(build).some((run) => run.includes('git diff --exit-code -- binding.js binding.d.ts')))
})

test('each binary is tested with npm test on its own OS and architecture', () => {
  const testJob = workflow.jobs.test
  assert.deepEqual(testJob.needs, ['build'])
  const entries = testJob.strategy.matrix.settings
  const wanted = [
    ['x86_64-unknown-linux-gnu', /^ubuntu/, 'x64'],
    ['aarch64-apple-darwin', /^macos/, 'arm64'],
    ['x86_64-apple-darwin', /^macos/, 'x64'],
    ['x86_64-pc-windows-msvc', /^windows/, 'x64'],
  ]
  for (const [target, host, architecture] of wanted) {
    const entry = entries.find((e) => e.target === target)
    assert.ok(entry, `${target} is not tested`)
    assert.match(entry.host, host)
    assert.equal(entry.architecture, architecture)
  }
  for (const entry of entries) assert.ok(targets.includes(entry.target), `${entry.target} is not built`)
  // The oldest Node that "engines" admits is in the matrix.
  const oldest = manifest.engines.node.match(/\d+/)[0]
  assert.ok(testJob.strategy.matrix.node.includes(oldest), `node ${oldest} is not tested`)

  const [download] = uses(testJob, 'actions/download-artifact')
  assert.equal(download.with.name, 'bindings-${{ matrix.settings.target }}')
  assert.equal(download.with.path, '.')
  const commands = runs(testJob)
  // Without --ignore-scripts, `prepare` would compile from source and the
  // downloaded binary would not be the one tested.
  const install = commands.find((run) => /^npm (install|ci)\b/.test(run))
  assert.match(install, /--ignore-scripts/)
  assert.ok(commands.includes('npm test'))
  assert.ok(
    testJob.steps.indexOf(download) < testJob.steps.findIndex((step) => step.run === 'npm test'),
    'tests run before the binary is downloaded',
  )
})

test('the Node versions the README states are the ones the test job runs, 18, 20 and 22 among them', () => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
  const platforms = /^## Platforms\n+(Node\.js [^\n]*)/m.exec(readme)
  assert.ok(platforms, 'the README has no "## Platforms" section opening with "Node.js …"')
  const claimed = [...platforms[1].split('(')[0].matchAll(/\d+/g)].map((m) => m[0])
  const tested = workflow.jobs.test.strategy.matrix.node.map(String)
  assert.deepEqual([...tested].sort(), [...claimed].sort(), `README claims ${claimed}, the workflow tests ${tested}`)
  for (const version of ['18', '20', '22']) assert.ok(tested.includes(version), `node ${version} is not tested`)
  assert.equal(manifest.engines.node, `>= ${Math.min(...claimed.map(Number))}`)
  for (const dir of fs.readdirSync(path.join(root, 'npm'))) {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'npm', dir, 'package.json'), 'utf8'))
    assert.deepEqual(pkg.engines, manifest.engines, pkg.name)
  }

  // On every version: the smoke test (load + a lock through each entry
  // point) with the downloaded binary, then the suite.
  const steps = workflow.jobs.test.steps
  const download = steps.findIndex((step) => step.uses && step.uses.startsWith('actions/download-artifact@'))
  const smoke = steps.findIndex((step) => step.run === 'node scripts/smoke.js')
  const suite = steps.findIndex((step) => step.run === 'npm test')
  assert.ok(download < smoke && smoke < suite, 'smoke test missing, or not between the download and npm test')
  const setup = steps.find((step) => step.uses && step.uses.startsWith('actions/setup-node@'))
  assert.equal(setup.with['node-version'], '${{ matrix.node }}')
})

test('npm test passes no directory to node --test (Node 22 and 24 would load it as a module)', () => {
  // From Node 21 the arguments of --test are globs and a directory matches
  // itself (nodejs/node#64555): `node --test __test__/` fails on 22 and 24.
  const command = manifest.scripts.test
  for (const [, args] of command.matchAll(/node --test((?: [^&|]+)?)/g)) {
    for (const arg of args.trim().split(/\s+/).filter(Boolean)) {
      if (arg.startsWith('-')) continue
      const target = path.join(root, arg)
      assert.ok(!fs.existsSync(target) || !fs.statSync(target).isDirectory(), `npm test passes the directory ${arg} to node --test`)
    }
  }
  assert.match(command, /^node scripts\/test\.js( |$)/)
})

test('publishing happens only on a version tag, after the tests, with provenance', () => {
  const publish = workflow.jobs.publish
  assert.match(publish.if, /startsWith\(github\.ref, 'refs\/tags\/v'\)/)
  assert.ok(publish.needs.includes('test'))
  assert.equal(publish.permissions['id-token'], 'write')
  const commands = runs(publish)
  const step = (pattern) => commands.findIndex((run) => pattern.test(run))
  const artifacts = step(/napi artifacts/)
  const prepublish = step(/napi prepublish -t npm/)
  const main = step(/^npm publish .*--provenance/)
  assert.ok(artifacts !== -1 && prepublish !== -1 && main !== -1, commands.join('\n'))
  assert.ok(artifacts < prepublish && prepublish < main, 'platform packages must be published before keyed-lock')
  assert.match(commands[main], /--access public/)
  assert.match(commands[main], /--ignore-scripts/)
})

test('every action is pinned to a version', () => {
  for (const [name, job] of Object.entries(workflow.jobs)) {
    for (const step of job.steps) {
      if (step.uses) assert.match(step.uses, /^[\w.-]+\/[\w.-]+@[\w.-]+$/, `${name}: ${step.uses}`)
    }
  }
})
