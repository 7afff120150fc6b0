'use strict'
// The "double-score" race: many concurrent read-modify-write updates of one
// record in an async key-value store. Without a lock, updates that read the
// same old value overwrite each other and are lost; under a keyed lock every
// update lands. Run with `npm run demo`.

const AsyncLock = require('..')
const lock = require('../alock')

/** An in-memory store whose reads and writes take a little while, like a database. */
class SlowStore {
  constructor() {
    this.data = new Map()
  }
  async get(key) {
    await tick()
    return this.data.get(key)
  }
  async set(key, value) {
    await tick()
    this.data.set(key, value)
  }
}

let seed = 42
// A seeded jitter so every run shows the same race.
const tick = () => new Promise((resolve) => setTimeout(resolve, (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 3))

const UPDATES = 200

async function addPoint(store, player) {
  const record = await store.get(player)
  await store.set(player, { ...record, score: record.score + 1 })
}

async function run(title, update) {
  const store = new SlowStore()
  await store.set('alice', { name: 'alice', score: 0 })
  const started = process.hrtime.bigint()
  await Promise.all(Array.from({ length: UPDATES }, () => update(store)))
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  const { score } = store.data.get('alice')
  const lost = UPDATES - score
  console.log(
    `${title.padEnd(36)} score ${String(score).padStart(3)} of ${UPDATES}  ` +
      `${lost === 0 ? 'no update lost' : `${lost} updates LOST`}  (${ms.toFixed(0)} ms)`,
  )
  return lost
}

async function main() {
  console.log(`${UPDATES} concurrent "+1" updates of alice's score in a slow async store\n`)
  const keyedLock = new AsyncLock()
  const lostWithout = await run('no lock', (store) => addPoint(store, 'alice'))
  const lostPromise = await run("keyed-lock (async-lock API, promise)", (store) =>
    keyedLock.acquire('alice', () => addPoint(store, 'alice')),
  )
  const lostCallback = await run('keyed-lock (async-lock API, callback)', (store) =>
    new Promise((resolve, reject) =>
      keyedLock.acquire(
        'alice',
        (done) => addPoint(store, 'alice').then(() => done(), done),
        (err) => (err ? reject(err) : resolve()),
      ),
    ),
  )
  const lostAlock = await run('keyed-lock/alock (alock API)', (store) =>
    new Promise((resolve, reject) =>
      lock('alice', (done) =>
        addPoint(store, 'alice').then(
          () => (done(), resolve()),
          (err) => (done(), reject(err)),
        ),
      ),
    ),
  )
  console.log()
  if (lostPromise + lostCallback + lostAlock !== 0) {
    console.error('BUG: an update was lost under the lock')
    process.exitCode = 1
  } else {
    console.log(`Without a lock ${lostWithout} of ${UPDATES} updates were lost; with keyed-lock, none.`)
  }
  acrossProcesses()
}

/**
 * The same race between processes, through Redis (examples/redis.js starts
 * its own throwaway redis-server), when redis-server is installed.
 */
function acrossProcesses() {
  const { spawnSync } = require('node:child_process')
  const path = require('node:path')
  console.log()
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.log('Across processes (Redis): skipped, redis-server is not installed; see examples/redis.js.')
    return
  }
  console.log('Across processes, through Redis (examples/redis.js):')
  const r = spawnSync(process.execPath, [path.join(__dirname, 'redis.js')], { stdio: 'inherit' })
  if (r.status !== 0) process.exitCode = 1
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
