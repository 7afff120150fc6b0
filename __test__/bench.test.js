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

test('bench/run.js --quick runs W1, W3, W5x, W6p for every implementation, and S1, S2 for the semaphores', { timeout: 120000 }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'keyed-lock-bench-'))
  try {
    const stdout = execFileSync(
      process.execPath,
      [path.join(__dirname, '..', 'bench', 'run.js'), '--quick', '--only', 'W1,W3,W5x,W6p,S1,S2', '--out', out],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 110000 },
    )
    assert.match(stdout, /\| W1 \|/)
    const table = fs.readFileSync(path.join(out, 'table.md'), 'utf8')
    assert.match(table, /\| workload \| n \| keyed-lock \| async-lock \| async-mutex \| floor \|/)
    assert.ok(fs.readFileSync(path.join(out, 'chart.svg'), 'utf8').startsWith('<svg'))
    const { raw, crossings } = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8'))
    assert.deepStrictEqual(Object.keys(raw), ['W1', 'W3', 'W5x', 'W6p', 'S1', 'S2'])
    for (const w of ['W1', 'W3', 'W5x', 'W6p', 'S1', 'S2']) {
      const impls = w.startsWith('S') ? ['keyed-lock', 'async-mutex', 'floor'] : ['keyed-lock', 'floor']
      for (const impl of impls) {
        for (const run of raw[w][impl]) {
          assert.ok(run.ok, `${w} / ${impl} failed: ${run.failure} ${run.detail}`)
          assert.ok(run.samples.length > 0 && run.samples.every(Number.isFinite), `${w} / ${impl} has non-numeric samples`)
        }
      }
    }
    // async-lock has no semaphore: the S rows never run it (it would run them
    // as a mutex), and their ratios are against async-mutex's Semaphore.
    assert.deepStrictEqual(Object.keys(raw.S1).sort(), ['async-mutex', 'floor', 'keyed-lock'])
    for (const w of ['S1', 'S2']) {
      const row = table.split('\n').find((line) => line.startsWith(`| ${w} |`))
      const cells = row.split(' | ')
      // | S1 | n | keyed-lock | async-lock | async-mutex | floor | keyed-lock ÷ floor |
      assert.match(cells[2], /\/s .* \d+(\.\d+)?×$/, `${w}: keyed-lock × vs async-mutex`)
      assert.strictEqual(cells[3], 'n/a', `${w}: async-lock`)
      assert.match(cells[4], /^\*\*.*\*\*$/, `${w}: async-mutex is the row's baseline`)
      assert.match(cells[5], /\d+(\.\d+)?×$/, `${w}: floor × vs async-mutex`)
      assert.match(cells[6], /^\d+\.\d+ \|$/, `${w}: keyed-lock ÷ floor`)
    }
    assert.ok(crossings.ok, 'crossings ran')
    for (const name of ['noop() via #[napi]', 'noopRaw() raw callback', 'acquire()+release() contended pair']) {
      assert.ok(Number.isFinite(crossings.ns[name]), `crossings measured ${name}`)
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true })
  }
})

test('bench/run.js --instructions counts instructions per operation under callgrind, W and S rows', { timeout: 300000 }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'keyed-lock-bench-'))
  try {
    // One implementation, one workload, quick sizes: valgrind's start-up alone is ~10 s.
    execFileSync(
      process.execPath,
      [path.join(__dirname, '..', 'bench', 'run.js'), '--instructions', '--quick', '--only', 'W6p,S2', '--impls', 'floor', '--out', out],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 290000 },
    )
    const table = fs.readFileSync(path.join(out, 'instructions.md'), 'utf8')
    assert.match(table, /\| workload \| n1 → n2 \| floor \| keyed-lock ÷ floor \|/)
    const { results } = JSON.parse(fs.readFileSync(path.join(out, 'instructions.json'), 'utf8'))
    for (const w of ['W6p', 'S2']) {
      const r = results[w].floor
      assert.ok(r.ok, `${w} / floor failed: ${r.failure} ${r.detail}`)
      assert.ok(r.perOp > 0 && r.pairs.every(Number.isFinite), `${w}: instructions per op: ${r.perOp}`)
    }
    assert.match(table, /\| S2 \| 500 → 1000 \| \d+ \(/)
    assert.deepStrictEqual(fs.readdirSync(out).sort(), ['instructions.json', 'instructions.md'], 'no callgrind files left behind')
  } finally {
    fs.rmSync(out, { recursive: true, force: true })
  }
})
