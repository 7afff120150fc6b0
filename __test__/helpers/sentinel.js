'use strict'
// Redis Sentinel processes for the Sentinel tests: redis-server in sentinel
// mode on loopback ports, watching a master the test started, with shortened
// timeouts (a failover in about 2 s); stopped by pid.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { freePort, respCommand } = require('../../support/redis-harness')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const running = new Set()

process.on('exit', () => {
  for (const s of running) s.kill()
})

/**
 * A sentinel watching `mymaster` at 127.0.0.1:`masterPort`. `conf`: more
 * lines for its configuration file (TLS settings).
 */
async function startSentinel(masterPort, { conf = [] } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyed-lock-sentinel-'))
  const port = await freePort()
  const file = path.join(dir, 'sentinel.conf')
  fs.writeFileSync(
    file,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `logfile ${path.join(dir, 'log')}`,
      ...conf,
      `sentinel monitor mymaster 127.0.0.1 ${masterPort} 2`,
      'sentinel down-after-milliseconds mymaster 1000',
      'sentinel failover-timeout mymaster 3000',
      'sentinel parallel-syncs mymaster 1',
      '',
    ].join('\n'),
  )
  const child = spawn('redis-server', [file, '--sentinel'], { stdio: 'ignore' })
  child.unref()
  const exited = new Promise((resolve) => child.on('exit', resolve))
  const url = `redis://127.0.0.1:${port}`
  const sentinel = {
    port,
    url,
    command: (...args) => respCommand(url, ...args),
    kill() {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL')
    },
    async stop() {
      running.delete(sentinel)
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, 'SIGTERM')
        await exited
      }
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
  running.add(sentinel)
  const deadline = Date.now() + 5000
  for (;;) {
    const pong = await Promise.race([sentinel.command('PING').catch(() => null), sleep(300).then(() => null)])
    if (pong === 'PONG') return sentinel
    if (Date.now() > deadline) throw new Error(`sentinel on ${port} did not start:\n${fs.readFileSync(path.join(dir, 'log'), 'utf8').slice(-2000)}`)
    await sleep(50)
  }
}

/** Polls `check` every 100 ms until it is true; throws naming `what` after `ms`. */
async function until(what, check, ms = 20000) {
  const deadline = Date.now() + ms
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

/** A flat [field, value, ...] reply as an object. */
const fields = (flat) => {
  const out = {}
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]] = flat[i + 1]
  return out
}

/** Until all of `trio` see each other and one replica of mymaster. */
async function untilSentinelsReady(trio) {
  await until('the sentinels to find each other and the replica', async () => {
    for (const s of trio) {
      const m = fields(await s.command('SENTINEL', 'MASTER', 'mymaster'))
      if (Number(m['num-other-sentinels']) !== trio.length - 1 || Number(m['num-slaves']) !== 1) return false
    }
    return true
  })
}

module.exports = { startSentinel, until, fields, untilSentinelsReady, sleep }
