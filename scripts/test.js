'use strict'
// `npm test`'s runner: node --test over every __test__/**/*.test.js.
//
// Not `node --test __test__/`: from Node 21 the arguments are glob patterns,
// and a bare directory matches itself and is then loaded as a test file
// (MODULE_NOT_FOUND on Node 22 and 24, nodejs/node#64555), while Node 18 and
// 20 take no globs at all. Listing the files here works on every Node the
// release workflow tests, and on Windows, where npm's shell expands nothing.
// Its own arguments go to node --test before the files
// (`node scripts/test.js --test-name-pattern=FIFO`).
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')

function testFiles(dir) {
  const found = []
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) found.push(...testFiles(file))
    else if (entry.isFile() && entry.name.endsWith('.test.js')) found.push(path.relative(root, file))
  }
  return found.sort()
}

const files = testFiles(path.join(root, '__test__'))
if (files.length === 0) {
  console.error('scripts/test.js: no __test__/**/*.test.js file found')
  process.exit(1)
}
const child = spawnSync(process.execPath, ['--test', ...process.argv.slice(2), ...files], { cwd: root, stdio: 'inherit' })
process.exit(child.status === null ? 1 : child.status)
