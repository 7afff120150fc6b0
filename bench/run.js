'use strict'
// Orchestrates the benchmark: every (workload, implementation) measurement
// runs in a fresh child process, implementations interleaved round by
// round with the order rotated each round, so drift on a noisy machine hits
// all of them alike. Writes results/latest.json (raw samples),
// results/table.md and results/chart.svg, prints the table.
//
//   node bench/run.js [--rounds N] [--only W1,W3] [--impls keyed-lock,floor]
//                     [--quick] [--out DIR] [--crossings | --no-crossings]
//                     [--time-limit SECONDS per process, default 60]
//   node bench/run.js --instructions [--only ...] [--impls ...] [--quick] [--out DIR] [--jobs 2]
//                     instructions per operation under callgrind (load-independent)

const { execFile } = require('child_process')
const fs = require('fs')
const { machine } = require('./machine')
const path = require('path')
const { workloads } = require('./workloads')
const { renderChart } = require('./chart')

const ALL_IMPLS = ['keyed-lock', 'async-lock', 'async-mutex', 'floor']
const INSTR_IMPLS = ['keyed-lock', 'async-lock', 'floor']
const INSTR_WORKLOADS = ['W1', 'W2', 'W3', 'W3a', 'W6t', 'W6p', 'S1', 'S2']
/** The implementations a workload runs against: all, or those its row names (async-lock has no semaphore). */
const runsOn = (w, impl) => !w.impls || w.impls.includes(impl)
/** What a row's × figures are taken against: async-lock, or the row's own baseline. */
const baselineOf = (w) => w.baseline || 'async-lock'
let TIME_LIMIT_MS = 60000

function parseArgs(argv) {
  const args = { rounds: 5, only: null, impls: null, quick: false, out: path.join(__dirname, 'results'), crossings: 'also', instructions: false }
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
    else if (a === '--instructions') args.instructions = true
    else if (a === '--jobs') INSTR_JOBS = Number(argv[++i])
    else throw new Error(`unknown option ${a}`)
  }
  args.implsGiven = args.impls !== null
  if (args.impls === null) args.impls = args.instructions ? INSTR_IMPLS : ALL_IMPLS
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
  lines.push(`keyed-lock benchmark — ${meta.date}, ${meta.cpu} × ${meta.cores}, Node ${meta.node}, ${meta.rounds} round(s)${args.quick ? ', QUICK sizes' : ''}`)
  lines.push('')
  lines.push('Each cell: median over rounds of per-process medians (min–max over rounds), then × vs async-lock (>1 = faster, or fewer bytes for W7). Last column: keyed-lock time (bytes for W7) ÷ floor; ≤ 1.3 is the target.')
  if (meta.workloads.some((w) => w.baseline)) {
    lines.push('')
    lines.push(
      'S rows (semaphores, `permits: 8`): async-lock has none, so their × figures are vs async-mutex\'s `Semaphore` (in **bold**, the row\'s baseline), and the floor is the semaphore floor (`impls/floor-semaphore.js`).',
    )
  }
  lines.push('')
  lines.push(`| workload | n | ${impls.join(' | ')} | keyed-lock ÷ floor |`)
  lines.push(`|---|---:|${impls.map(() => '---').join('|')}|---:|`)
  for (const w of meta.workloads) {
    const row = cells[w.name]
    const baseline = baselineOf(w)
    const base = row[baseline]
    const parts = impls.map((impl) => {
      if (!runsOn(w, impl)) return 'n/a'
      const s = row[impl]
      let text = cellText(w, s)
      if (impl === baseline && w.baseline) text = `**${text}**`
      if (s && !s.failed && base && !base.failed && impl !== baseline) text += ' ' + fmtRatio(base.value / s.value)
      return text
    })
    const k = row['keyed-lock']
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

/**
 * Instruction-count mode. Each (workload, implementation) runs once under
 * callgrind (instr-worker.js), at two sizes inside one process; callgrind
 * dumps its counters at each size's start and end, so the per-operation
 * figure is (I(n2) - I(n1)) / (n2 - n1): startup, warm-up and each run's
 * fixed costs cancel. GC is left out (see instr-worker.js). Instructions executed do not depend on the machine's
 * load, so one run judges a change; they are not time (a cache miss costs
 * no more than an add here). Every thread counts: V8's GC and compiler
 * threads too, as they would in wall-clock time.
 */
let INSTR_JOBS = 2
const INSTR_PAIRS = 3

function runCallgrind(impl, w, sizes, out) {
  const prefix = path.join(out, `callgrind.${impl}.${w.name}`)
  return new Promise((resolve) => {
    execFile(
      'valgrind',
      [
        '--tool=callgrind',
        `--callgrind-out-file=${prefix}.out`,
        '--dump-before=*CPUUsage*',
        '--dump-line=no',
        process.execPath,
        '--expose-gc',
        '--single-threaded',
        '--min-semi-space-size=64',
        '--max-semi-space-size=64',
        path.join(__dirname, 'instr-worker.js'),
        impl,
        w.name,
        String(sizes[0]),
        String(sizes[1]),
        String(INSTR_PAIRS),
      ],
      { timeout: TIME_LIMIT_MS * 5, killSignal: 'SIGKILL', maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const totals = []
        // Numbered dumps: 1 is startup and warm-up, then each pair's runs at
        // n1 and n2; the exit's dump is the unnumbered file.
        for (let i = 1; i <= 1 + 2 * INSTR_PAIRS; i++) {
          const file = `${prefix}.out.${i}`
          if (!fs.existsSync(file)) continue
          const m = /^totals: (\d+)/m.exec(fs.readFileSync(file, 'utf8'))
          totals.push(m ? Number(m[1]) : NaN)
        }
        for (const f of fs.readdirSync(out)) if (f.startsWith(path.basename(prefix) + '.out')) fs.rmSync(path.join(out, f))
        let last = null
        try {
          last = JSON.parse(stdout.trim().split('\n').pop())
        } catch {}
        if (err && err.killed) return resolve({ ok: false, failure: 'timeout', detail: `over ${(TIME_LIMIT_MS * 5) / 1000} s` })
        if (!last) return resolve({ ok: false, failure: 'crash', detail: (stderr || String(err)).trim().split('\n').slice(-3).join(' ').slice(0, 300) })
        if (!last.ok) return resolve(last)
        if (totals.length !== 1 + 2 * INSTR_PAIRS || !totals.every(Number.isFinite)) {
          return resolve({ ok: false, failure: 'callgrind', detail: `expected ${1 + 2 * INSTR_PAIRS} dumps, got ${totals.length}` })
        }
        resolve({ ok: true, sizes, totals, ...perOperation(totals, sizes) })
      },
    )
  })
}

/**
 * What a run adds to the work proper is never negative (a GC cycle, a
 * compilation landing in it), so each size's figure is its least run over
 * the pairs: (min I(n2) − min I(n1)) ÷ (n2 − n1). The pairs' own
 * differences give the spread.
 */
function perOperation(totals, sizes) {
  const at1 = []
  const at2 = []
  for (let k = 0; k < INSTR_PAIRS; k++) {
    at1.push(totals[1 + 2 * k])
    at2.push(totals[2 + 2 * k])
  }
  const extra = sizes[1] - sizes[0]
  const pairs = at1.map((t, k) => (at2[k] - t) / extra)
  return { pairs, perOp: (Math.min(...at2) - Math.min(...at1)) / extra, min: Math.min(...pairs), max: Math.max(...pairs) }
}

/** A row's implementations in --instructions mode; by default an S row adds its baseline (async-mutex). */
function instrImpls(args, w) {
  const impls = args.impls.filter((impl) => runsOn(w, impl))
  if (!args.implsGiven && w.baseline && !impls.includes(w.baseline)) impls.splice(1, 0, w.baseline)
  return impls
}

async function instructions(args) {
  const chosen = workloads.filter((w) => (args.only ? args.only.includes(w.name) : INSTR_WORKLOADS.includes(w.name)))
  const scratch = fs.mkdtempSync(path.join(require('os').tmpdir(), 'keyed-lock-callgrind-'))
  const jobs = []
  for (const w of chosen) {
    // Sizes: the quick size (at most 10k) and half of it; halved again with --quick.
    const n2 = Math.min(w.quick, 10000) / (args.quick ? 2 : 1)
    for (const impl of instrImpls(args, w)) jobs.push({ w, impl, sizes: [n2 / 2, n2] })
  }
  const results = {}
  let next = 0
  const t0 = Date.now()
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++]
      const r = await runCallgrind(job.impl, job.w, job.sizes, scratch)
      ;(results[job.w.name] ||= {})[job.impl] = r
      const what = r.ok ? `${r.perOp.toFixed(0)} instructions/op` : `FAIL ${r.failure} ${r.detail}`
      process.stderr.write(`${job.w.name} ${job.impl}: ${what} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`)
    }
  }
  await Promise.all(Array.from({ length: INSTR_JOBS }, worker))
  fs.rmSync(scratch, { recursive: true, force: true })
  const m = machine()
  const lines = []
  lines.push(`keyed-lock instruction counts — ${m.date}, Node ${m.node}, valgrind --tool=callgrind${args.quick ? ', QUICK sizes' : ''}`)
  lines.push('')
  const columns = ALL_IMPLS.filter((impl) => chosen.some((w) => instrImpls(args, w).includes(impl)))
  lines.push(`Instructions per operation, (I(n2) − I(n1)) ÷ (n2 − n1) within one process (startup and fixed costs cancel), all threads: each size's least of ${INSTR_PAIRS} runs (GC and compilation only ever add), then in brackets the range of the ${INSTR_PAIRS} pairs' own differences; then × vs async-lock (>1 = fewer). Last column: keyed-lock ÷ floor.`)
  if (chosen.some((w) => w.baseline)) {
    lines.push('')
    lines.push("S rows (semaphores): × vs async-mutex's `Semaphore` (in **bold**; async-lock has none), and the floor is the semaphore floor.")
  }
  lines.push('')
  lines.push(`| workload | n1 → n2 | ${columns.join(' | ')} | keyed-lock ÷ floor |`)
  lines.push(`|---|---:|${columns.map(() => '---:').join('|')}|---:|`)
  const failures = []
  for (const w of chosen) {
    const row = results[w.name] || {}
    const baseline = baselineOf(w)
    const base = row[baseline]
    const cells = columns.map((impl) => {
      const r = row[impl]
      if (!r) return runsOn(w, impl) ? '–' : 'n/a'
      if (!r.ok) {
        failures.push(`- ${w.name} / ${impl}: ${r.failure} — ${r.detail}`)
        return `**FAIL ${r.failure}**`
      }
      let text = `${r.perOp.toFixed(0)} (${r.min.toFixed(0)}–${r.max.toFixed(0)})`
      if (impl === baseline && w.baseline) text = `**${text}**`
      if (impl !== baseline && base && base.ok) text += ' ' + fmtRatio(base.perOp / r.perOp)
      return text
    })
    const k = row['keyed-lock']
    const f = row.floor
    const vsFloor = k && f && k.ok && f.ok ? (k.perOp / f.perOp).toFixed(2) : '–'
    const job = jobs.find((j) => j.w === w)
    lines.push(`| ${w.name} | ${job.sizes[0]} → ${job.sizes[1]} | ${cells.join(' | ')} | ${vsFloor} |`)
  }
  if (failures.length) lines.push('', 'Failures:', '', ...failures)
  const table = lines.join('\n') + '\n'
  fs.writeFileSync(path.join(args.out, 'instructions.md'), table)
  fs.writeFileSync(path.join(args.out, 'instructions.json'), JSON.stringify({ meta: m, results }, null, 1))
  console.log(table)
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  fs.mkdirSync(args.out, { recursive: true })
  if (args.instructions) return instructions(args)
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
    for (const impl of args.impls) if (runsOn(w, impl)) raw[w.name][impl] = []
  }
  for (let round = 0; round < args.rounds; round++) {
    for (const w of chosen) {
      const impls = args.impls.filter((impl) => runsOn(w, impl))
      const order = impls.map((_, i) => impls[(i + round) % impls.length])
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
    for (const impl of args.impls) if (runsOn(w, impl)) cells[w.name][impl] = summarize(w, raw[w.name][impl])
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
