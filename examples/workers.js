'use strict'
// N worker threads append "lines" to one file. Each line is written as
// several separate appendFile calls, so without a lock the pieces of
// different workers interleave and lines come out corrupt. Run once without
// a lock and once with `new AsyncLock({ scope: 'process', name })`, which
// every worker shares; prints how many lines were corrupt each time.
//
//   node examples/workers.js [workers=4] [lines per worker=50]

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Worker, isMainThread, workerData } = require('node:worker_threads')
const AsyncLock = require('..')

const PIECES = 4

if (!isMainThread) {
  const { file, id, lines, locked } = workerData
  const lock = new AsyncLock({ scope: 'process', name: 'examples/workers' })
  const writeLine = async (n) => {
    // One line: "w<id> <n> piece0 piece1 piece2 piece3\n", in PIECES + 1 writes.
    await fs.promises.appendFile(file, `w${id} ${n}`)
    for (let p = 0; p < PIECES; p++) await fs.promises.appendFile(file, ` piece${p}`)
    await fs.promises.appendFile(file, '\n')
  }
  ;(async () => {
    for (let n = 0; n < lines; n++) {
      if (locked) await lock.acquire('file', () => writeLine(n))
      else await writeLine(n)
    }
  })()
} else {
  const workers = Number(process.argv[2]) || 4
  const lines = Number(process.argv[3]) || 50
  const whole = /^w\d+ \d+ piece0 piece1 piece2 piece3$/

  const run = async (locked) => {
    const file = path.join(os.tmpdir(), `keyed-lock-workers-${process.pid}-${locked ? 'locked' : 'unlocked'}.txt`)
    fs.writeFileSync(file, '')
    await Promise.all(
      Array.from({ length: workers }, (_, id) => {
        const w = new Worker(__filename, { workerData: { file, id, lines, locked } })
        return new Promise((resolve, reject) => w.once('exit', resolve).once('error', reject))
      }),
    )
    const got = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '')
    fs.unlinkSync(file)
    return { corrupt: got.filter((l) => !whole.test(l)).length, total: got.length }
  }

  ;(async () => {
    const without = await run(false)
    const withLock = await run(true)
    console.log(`${workers} workers x ${lines} lines, each line written in ${PIECES + 2} appendFile calls`)
    console.log(`without a lock:            ${without.corrupt} corrupt of ${without.total} lines`)
    console.log(`with scope 'process' lock: ${withLock.corrupt} corrupt of ${withLock.total} lines`)
    if (withLock.corrupt !== 0 || withLock.total !== workers * lines) process.exitCode = 1
  })()
}
