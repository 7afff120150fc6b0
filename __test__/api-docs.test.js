'use strict'
// docs/api.md is generated from the .d.ts files (scripts/api-docs.js,
// `npm run docs:api`): it must match them, and every public declaration
// must carry the TSDoc comment the reference is made of.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const { render, OUTPUT } = require('../scripts/api-docs')

const manifest = require('../package.json')

test('docs/api.md is what `npm run docs:api` generates from the .d.ts files', () => {
  const { markdown } = render()
  const committed = fs.readFileSync(OUTPUT, 'utf8')
  assert.ok(committed === markdown, 'docs/api.md is stale: run `npm run docs:api` and commit it')
  assert.equal(manifest.scripts['docs:api'], 'node scripts/api-docs.js')
})

test('every public declaration and option in the .d.ts files has a TSDoc comment', () => {
  const { undocumented } = render()
  assert.deepEqual(undocumented, [], 'add a TSDoc comment (its guarantee, its default, its errors) to each')
})

test('the reference covers every entry point of the exports map and the main API', () => {
  const { markdown } = render()
  for (const subpath of Object.keys(manifest.exports).filter((p) => p !== './package.json')) {
    const specifier = subpath === '.' ? manifest.name : `${manifest.name}/${subpath.slice(2)}`
    assert.ok(markdown.includes(`## \`require('${specifier}')\``), `${specifier} has no section`)
  }
  for (const name of ['AsyncLock.acquire', 'AsyncLock.lock', 'AsyncLock.Lease.release', 'AsyncLock.AsyncLockOptions.timeout', 'lock.shared', 'Locky.extend', 'ExclusiveLock.acquire']) {
    assert.ok(markdown.includes(`\`${name}\``), `${name} is missing`)
  }
  // Tags become Markdown, not raw TSDoc.
  assert.doesNotMatch(markdown, /^\s*@(param|throws|example)\b/m)
})
