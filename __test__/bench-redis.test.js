'use strict'
// Smoke test of bench/redis.js: a quick run against a throwaway Redis
// completes, every library it ran has a number in both tables, no row
// failed and no client ever held the key while another did. Speed is never
// asserted (STYLE.md rule 10).
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

test('bench/redis.js --quick runs every library without a failure or a violation', { timeout: 120000 }, async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'keyed-lock-bench-redis-'))
  try {
    const { code, stdout, stderr } = await new Promise((resolve) => {
      execFile(
        process.execPath,
        [path.join(__dirname, '..', 'bench', 'redis.js'), '--quick', '--seconds', '0.5', '--out', out],
        { encoding: 'utf8', timeout: 110000, killSignal: 'SIGKILL' },
        (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }),
      )
    })
    assert.equal(code, 0, `exit ${code}\n${stdout}\n${stderr}`)
    const report = fs.readFileSync(path.join(out, 'redis.md'), 'utf8')
    assert.doesNotMatch(report, /FAIL/)
    const { uncontended, contended, semaphore } = JSON.parse(fs.readFileSync(path.join(out, 'redis.json'), 'utf8'))
    // (c): counted keys, keyed-lock's permits against redis-semaphore's Semaphore.
    for (const lib of ['keyed-lock', 'redis-semaphore']) assert.ok(semaphore[lib], `${lib} missing from (c)`)
    for (const lib of ['floor', 'redlock', 'redlock-rd10', 'redis-semaphore']) assert.ok(uncontended[lib], `${lib} missing from (a)`)
    for (const lib of ['redlock', 'redlock-rd10', 'redis-semaphore']) assert.ok(contended[lib], `${lib} missing from (b)`)
    // keyed-lock runs once its Redis reach has landed; before that the bench says it skipped it.
    if (!uncontended['keyed-lock']) assert.match(stdout, /keyed-lock redis reach not built yet/)
    for (const runs of [...Object.values(uncontended), ...Object.values(contended), ...Object.values(semaphore)]) {
      for (const run of runs) {
        assert.ok(run.ok, run.failure)
        assert.ok(run.stats.count > 0)
        assert.equal(run.stats.violations ?? 0, 0)
      }
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true })
  }
})
