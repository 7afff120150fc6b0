'use strict'
// One instruction-count measurement, run by `run.js --instructions` under
// `valgrind --tool=callgrind --dump-before=*CPUUsage*`:
//   node bench/instr-worker.js <impl> <workload> <n1> <n2> <pairs>
// Warms up at n2, then runs the workload at n1 and at
// n2, `pairs` times over, calling process.cpuUsage() around each run: every
// call makes callgrind dump and reset its counters, so dump 2 + 2k holds
// the instructions of pair k's run at n1 and dump 3 + 2k its run at n2, and
// (I(n2) - I(n1)) / (n2 - n1) is the cost per operation with startup and
// per-run fixed costs cancelled. Several pairs, because a major GC lands in
// one run or another.
// Nothing else in the process may call process.cpuUsage(). Prints one JSON
// line: ok, or the failure (signature mismatch, crash).

const { workloads } = require('./workloads')

const [implName, workloadName, n1Arg, n2Arg, pairsArg] = process.argv.slice(2)
const impl = require('./impls/' + implName)
const w = workloads.find((x) => x.name === workloadName)
const sizes = [Number(n1Arg), Number(n2Arg)]
const lockOpts = w.lockOpts || { maxPending: Infinity }
// A row that names its implementations (the S rows: async-lock has no
// semaphore, and would run them as a mutex) runs on no other.
if (w.impls && !w.impls.includes(implName)) {
  process.stdout.write(JSON.stringify({ ok: false, failure: 'n/a', detail: `${workloadName} does not run on ${implName}` }) + '\n')
  process.exit(0)
}

function fail(kind, detail) {
  process.stdout.write(JSON.stringify({ ok: false, failure: kind, detail: String(detail).slice(0, 300) }) + '\n')
  process.exit(0)
}
process.on('uncaughtException', (err) => fail('crash', (err && err.stack) || err))
process.on('unhandledRejection', (err) => fail('crash', (err && err.stack) || err))

const gc = () => global.gc({ type: 'minor' })

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)

async function once(size, data) {
  const lock = impl.create(lockOpts)
  const signature = await w.run(lock, size, data)
  if (!same(signature, w.expect(size))) fail('mismatch', `got ${JSON.stringify(signature)}, want ${JSON.stringify(w.expect(size))}`)
}

async function main() {
  const data = sizes.map((n) => (w.prepare ? w.prepare(n) : undefined))
  for (let i = 0; i < 3; i++) await once(sizes[1], data[1])
  // Each run starts from a young-generation GC done before its dump, with a
  // young generation (64 MB semi-spaces, set by run.js) big enough that no
  // collection lands inside it: what is counted is the lock's own work and
  // its allocations, not where V8 happens to collect (which swung the
  // figures by more than the work itself). run.js also passes
  // --single-threaded, so no background GC or compiler thread's work spills
  // into the next run's dump.
  // Never a full GC between runs: it frees the maps of the run's dead
  // objects (every lock, task and closure of a run is dead by its end), and
  // V8 then throws away all optimized code that checked them ("weak
  // objects"), so every run re-tiered from the interpreter and the
  // optimizing compiler's work, landing in the n2 run more than in the n1
  // one, was counted as per-operation work (about 30,000 of keyed-lock's
  // 42,000 instructions per W3 waiter). A scavenge keeps old-space maps.
  gc()
  process.cpuUsage() // dump 1: startup and warm-up
  for (let k = 0; k < Number(pairsArg); k++) {
    await once(sizes[0], data[0])
    gc()
    process.cpuUsage() // the run at n1
    await once(sizes[1], data[1])
    gc()
    process.cpuUsage() // the run at n2
  }
  process.stdout.write(JSON.stringify({ ok: true, sizes }) + '\n')
}

main().catch((err) => fail('crash', (err && err.stack) || err))
