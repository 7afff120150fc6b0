'use strict'
// Orchestrates the benchmark: every (workload, implementation) measurement
// runs in a fresh child process, implementations interleaved round by
// round with the order rotated each round, so drift on a noisy machine hits
// all of them alike. Writes results/latest.json (raw samples),
// results/table.md and results/chart.svg, prints the table.
//
//   node bench/run.js [--rounds N] [--only W1,W3] [--impls keylock,floor]
//                     [--quick] [--out DIR] [--crossings | --no-crossings]
//                     [--time-limit SECONDS per process, default 60]

const { execFile } = require('child_process')
const fs = require('fs')
const { machine } = require('./machine')
const path = require('path')
const { workloads } = require('./workloads')
const { renderChart } = require('./chart')

const ALL_IMPLS = ['keylock', 'async-lock', 'async-mutex', 'floor']
let TIME_LIMIT_MS = 60000

function parseArgs(argv) {
  const args = { rounds: 5, only: null, impls: ALL_IMPLS, quick: false, out: path.join(__dirname, 'results'), crossings: 'also' }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--rounds') args.rounds = Number(argv[++i])
    else if (a === '--only') args.only = argv[++i].split(',')
    else if (a === '--impls') args.impls = argv[++i].split(',')
    else if (a === '--quick') args.quick = true
    else if (a === '--out') args.out = path.resolve(argv[++i])
    else if (a === '--crossings') args.crossings = 'only'
    else if (a === '--no-crossings') args.crossings = 'no'
    else if (a === '--time-limit') TIME_LIMIT_MS = Number(argv[++i]) * 1000
    else throw new Error(`unknown option ${a}`)
  }
  if (args.quick && !argv.includes('--rounds')) args.rounds = 1
  for (const impl of args.impls) if (!ALL_IMPLS.includes(impl)) throw new Error(`unknown implementation ${impl}`)
  return args
}

function runChild(script, argv) {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--expose-gc', path.join(__dirname, script), ...argv],
      { timeout: TIME_LIMIT_MS, killSignal: 'SIGKILL', maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        let last = null
        try {
          const line = stdout.trim().split('\n').pop()
          if (line) last = JSON.parse(line)
        } catch {}
        if (err && err.killed) {
          const timeout = { ok: false, failure: 'timeout', detail: `over ${TIME_LIMIT_MS / 1000} s` }
          // W7 printed its memory figures before a drain that ran out of time.
          return resolve(last && last.partial ? { ...last, ...timeout, partial: true } : timeout)
        }
        if (last) return resolve(last)
        resolve({ ok: false, failure: 'crash', detail: (stderr || String(err)).trim().split('\n').slice(-3).join(' ').slice(0, 300) })
      },
    )
  })
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/**
 * One cell: the median over rounds of per-process medians, and the range
 * over rounds. A failure in any round is the cell's value: never averaged away.
 */
function summarize(w, runs) {
  // W7's cell is its heap figure, measured before the drain; a drain that
  // timed out is reported in the W7 detail table instead.
  const failures = runs.filter((r) => !r.ok && !(w.memory && r.partial))
  if (failures.length > 0) {
    const kinds = [...new Set(failures.map((f) => f.failure))].join('/')
    return { failed: true, label: `FAIL ${kinds} (${failures.length}/${runs.length})`, detail: failures[0].detail }
  }
  // Lower is better for every figure we summarize: ns per op, bytes per waiter.
  const perRound = runs.map((r) => (w.memory ? r.heapPerWaiter : median(r.samples)))
  return { failed: false, value: median(perRound), min: Math.min(...perRound), max: Math.max(...perRound), perRound }
}

const fmtRate = (nsPerOp) => {
  const ops = 1e9 / nsPerOp
  return ops >= 1e6 ? (ops / 1e6).toFixed(2) + 'M' : (ops / 1e3).toFixed(ops >= 1e5 ? 0 : 1) + 'k'
}
const fmtRatio = (r) => (r >= 10 ? r.toFixed(0) : r.toFixed(2)) + '×'

function cellText(w, s) {
  if (!s) return '–'
  if (s.failed) return `**${s.label}**`
  if (w.memory) return `${s.value.toFixed(0)} B (${s.min.toFixed(0)}–${s.max.toFixed(0)})`
  return `${fmtRate(s.value)}/s (${fmtRate(s.max)}–${fmtRate(s.min)})`
}

function buildTable(args, cells, meta) {
  const impls = args.impls
  const lines = []
  lines.push(`keylock benchmark — ${meta.date}, ${meta.cpu} × ${meta.cores}, Node ${meta.node}, ${meta.rounds} round(s)${args.quick ? ', QUICK sizes' : ''}`)
  lines.push('')
  lines.push('Each cell: median over rounds of per-process medians (min–max over rounds), then × vs async-lock (>1 = faster, or fewer bytes for W7). Last column: keylock time (bytes for W7) ÷ floor; ≤ 1.3 is the target.')
  lines.push('')
  lines.push(`| workload | n | ${impls.join(' | ')} | keylock ÷ floor |`)
  lines.push(`|---|---:|${impls.map(() => '---').join('|')}|---:|`)
  for (const w of meta.workloads) {
    const row = cells[w.name]
    const base = row['async-lock']
    const parts = impls.map((impl) => {
      const s = row[impl]
      let text = cellText(w, s)
      if (s && !s.failed && base && !base.failed && impl !== 'async-lock') text += ' ' + fmtRatio(base.value / s.value)
      return text
    })
    const k = row.keylock
    const f = row.floor
    const vsFloor = k && f && !k.failed && !f.failed ? (k.value / f.value).toFixed(2) : '–'
    const unit = w.memory ? ' (heap B/waiter)' : ''
    lines.push(`| ${w.name}${unit} | ${meta.sizes[w.name]} | ${parts.join(' | ')} | ${vsFloor} |`)
  }
  if (meta.w7) {
    lines.push('')
    lines.push('W7 detail (medians over rounds): heap B/waiter after full GC · RSS growth B/waiter (includes native memory) · peak RSS · drain ns/op')
    lines.push('')
    lines.push('| impl | heap B/waiter | RSS B/waiter | peak RSS MB | drain ns/op |')
    lines.push('|---|---:|---:|---:|---:|')
    for (const impl of impls) {
      const runs = meta.w7[impl]
      if (!runs) continue
      const broken = runs.find((r) => !r.ok && !r.partial)
      if (broken) {
        lines.push(`| ${impl} | **FAIL ${broken.failure}** | | | |`)
        continue
      }
      const m = (k) => median(runs.map((r) => r[k]))
      const drained = runs.every((r) => r.ok)
      const peak = drained ? (m('peakRss') / 2 ** 20).toFixed(0) : '–'
      const drain = drained ? m('drainNsPerOp').toFixed(0) : `**FAIL ${runs.find((r) => !r.ok).failure}** (drain)`
      lines.push(`| ${impl} | ${m('heapPerWaiter').toFixed(0)} | ${m('rssPerWaiter').toFixed(0)} | ${peak} | ${drain} |`)
    }
  }
  const failures = []
  for (const w of meta.workloads) {
    for (const impl of impls) {
      const s = cells[w.name][impl]
      if (s && s.failed) failures.push(`- ${w.name} / ${impl}: ${s.label} — ${s.detail}`)
    }
  }
  if (failures.length) lines.push('', 'Failures:', '', ...failures)
  return lines.join('\n') + '\n'
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  fs.mkdirSync(args.out, { recursive: true })
  let crossings = null
  if (args.crossings !== 'no') {
    crossings = await runChild('crossings.js', args.quick ? ['--quick'] : [])
    if (args.crossings === 'only') {
      console.log(JSON.stringify(crossings, null, 2))
      return
    }
  }
  const chosen = workloads.filter((w) => !args.only || args.only.includes(w.name))
  const raw = {}
  for (const w of chosen) {
    raw[w.name] = {}
    for (const impl of args.impls) raw[w.name][impl] = []
  }
  for (let round = 0; round < args.rounds; round++) {
    for (const w of chosen) {
      const order = args.impls.map((_, i) => args.impls[(i + round) % args.impls.length])
      for (const impl of order) {
        const t0 = Date.now()
        const result = await runChild('worker.js', [impl, w.name, args.quick ? '1' : '0'])
        raw[w.name][impl].push(result)
        process.stderr.write(`round ${round + 1}/${args.rounds} ${w.name} ${impl}: ${result.ok ? 'ok' : 'FAIL ' + result.failure} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`)
      }
    }
  }
  const cells = {}
  const sizes = {}
  for (const w of chosen) {
    cells[w.name] = {}
    sizes[w.name] = args.quick ? w.quick : w.n
    for (const impl of args.impls) cells[w.name][impl] = summarize(w, raw[w.name][impl])
  }
  const meta = {
    ...machine(),
    rounds: args.rounds,
    workloads: chosen,
    sizes,
    w7: raw.W7 || null,
  }
  let table = buildTable(args, cells, meta)
  if (crossings && crossings.ok) {
    table += '\nCrossings (ns per call, median of runs; bench/crossings.js):\n\n| call | ns |\n|---|---:|\n'
    for (const [name, ns] of Object.entries(crossings.ns)) table += `| ${name} | ${ns.toFixed(1)} |\n`
  } else if (crossings) {
    table += `\nCrossings: **FAIL ${crossings.failure}** ${crossings.detail}\n`
  }
  fs.writeFileSync(path.join(args.out, 'table.md'), table)
  fs.writeFileSync(path.join(args.out, 'chart.svg'), renderChart(meta, cells, args.impls))
  fs.writeFileSync(
    path.join(args.out, 'latest.json'),
    JSON.stringify({ meta: { ...meta, workloads: chosen.map((w) => w.name) }, raw, crossings }, null, 1),
  )
  console.log(table)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
