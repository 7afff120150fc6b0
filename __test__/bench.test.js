'use strict'
// Smoke test of the benchmark harness: a quick run completes, keyed-lock and
// the floor produce a number in every cell (no failure), and the results
// land in the directory asked for, not over the committed ones. Speed is
// never asserted (STYLE.md rule 10).
const { test } = require('node:test')
const assert = require('node:assert')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

test('bench/run.js --quick runs W1, W3, W5x, W6p for every implementation', { timeout: 120000 }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'keyed-lock-bench-'))
  try {
    const stdout = execFileSync(
      process.execPath,
      [path.join(__dirname, '..', 'bench', 'run.js'), '--quick', '--only', 'W1,W3,W5x,W6p', '--out', out],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 110000 },
    )
    assert.match(stdout, /\| W1 \|/)
    const table = fs.readFileSync(path.join(out, 'table.md'), 'utf8')
    assert.match(table, /\| workload \| n \| keyed-lock \| async-lock \| async-mutex \| floor \|/)
    assert.ok(fs.readFileSync(path.join(out, 'chart.svg'), 'utf8').startsWith('<svg'))
    const { raw, crossings } = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8'))
    assert.deepStrictEqual(Object.keys(raw), ['W1', 'W3', 'W5x', 'W6p'])
    for (const w of ['W1', 'W3', 'W5x', 'W6p']) {
      for (const impl of ['keyed-lock', 'floor']) {
        for (const run of raw[w][impl]) {
          assert.ok(run.ok, `${w} / ${impl} failed: ${run.failure} ${run.detail}`)
          assert.ok(run.samples.length > 0 && run.samples.every(Number.isFinite), `${w} / ${impl} has non-numeric samples`)
        }
      }
    }
    assert.ok(crossings.ok, 'crossings ran')
    for (const name of ['noop() via #[napi]', 'noopRaw() raw callback', 'acquire()+release() contended pair']) {
      assert.ok(Number.isFinite(crossings.ns[name]), `crossings measured ${name}`)
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true })
  }
})

test('bench/run.js --instructions counts instructions per operation under callgrind', { timeout: 300000 }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'keyed-lock-bench-'))
  try {
    // One implementation, one workload, quick sizes: valgrind's start-up alone is ~10 s.
    execFileSync(
      process.execPath,
      [path.join(__dirname, '..', 'bench', 'run.js'), '--instructions', '--quick', '--only', 'W6p', '--impls', 'floor', '--out', out],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 290000 },
    )
    const table = fs.readFileSync(path.join(out, 'instructions.md'), 'utf8')
    assert.match(table, /\| workload \| n1 → n2 \| floor \| keyed-lock ÷ floor \|/)
    const { results } = JSON.parse(fs.readFileSync(path.join(out, 'instructions.json'), 'utf8'))
    const r = results.W6p.floor
    assert.ok(r.ok, `W6p / floor failed: ${r.failure} ${r.detail}`)
    assert.ok(r.perOp > 0 && r.pairs.every(Number.isFinite), `instructions per op: ${r.perOp}`)
    assert.deepStrictEqual(fs.readdirSync(out).sort(), ['instructions.json', 'instructions.md'], 'no callgrind files left behind')
  } finally {
    fs.rmSync(out, { recursive: true, force: true })
  }
})
