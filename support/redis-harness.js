'use strict'
// Throwaway redis-server processes for tests, benches and examples, plus a
// tiny RESP2 client to poke at them. It lives outside __test__/ because bench/
// and examples/ use it too; package.json's files list leaves it out of the package.
//
//   const { startRedis } = require('../support/redis-harness')  // from __test__/, bench/, examples/
//   const server = await startRedis()            // or { unix: true }, { args: [...] }
//   after(() => server.stop())
//   await server.command('SET', 'k', 'v')
//
// Every server lives in its own temporary directory (data, log, socket) and
// is only ever signalled by the pid this module spawned: the harness never
// touches a Redis it did not start, and listens on 127.0.0.1 or a unix
// socket only.

const net = require('node:net')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')

const READY_TIMEOUT_MS = 5000
const STOP_TIMEOUT_MS = 5000
const START_ATTEMPTS = 5

// ---------------------------------------------------------------- RESP2 ----

function encodeCommand(args) {
  const parts = [`*${args.length}\r\n`]
  for (const arg of args) {
    const buf = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg))
    parts.push(`$${buf.length}\r\n`, buf, '\r\n')
  }
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))))
}

// Thrown for a reply that is not complete in the buffer yet; parsing
// restarts from the reply's first byte once more data arrives (replies in
// tests are small, so re-parsing beats keeping parser state).
const INCOMPLETE = Symbol('incomplete')

/** Parses one reply at `offset`: `{ value, next }`, or INCOMPLETE. Error replies become Error values. */
function parseReply(buf, offset) {
  if (offset >= buf.length) throw INCOMPLETE
  const lineEnd = buf.indexOf('\r\n', offset)
  if (lineEnd < 0) throw INCOMPLETE
  const type = String.fromCharCode(buf[offset])
  const line = buf.toString('utf8', offset + 1, lineEnd)
  const next = lineEnd + 2
  switch (type) {
    case '+':
      return { value: line, next }
    case '-':
      return { value: redisError(line), next }
    case ':':
      return { value: Number(line), next }
    case '$': {
      const len = Number(line)
      if (len < 0) return { value: null, next }
      if (buf.length < next + len + 2) throw INCOMPLETE
      return { value: buf.toString('utf8', next, next + len), next: next + len + 2 }
    }
    case '*': {
      const count = Number(line)
      if (count < 0) return { value: null, next }
      const items = []
      let at = next
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, at)
        items.push(item.value)
        at = item.next
      }
      return { value: items, next: at }
    }
    default:
      throw new Error(`RESP: unexpected reply type ${JSON.stringify(type)}`)
  }
}

function redisError(message) {
  const err = new Error(message)
  err.code = message.split(' ')[0]
  return err
}

/**
 * One connection, commands pipelined in order. The socket is unref'd while
 * idle so a cached connection never keeps a test process alive.
 */
class RespConnection {
  constructor(target) {
    this.pending = []
    this.buffer = Buffer.alloc(0)
    this.closed = false
    this.socket = net.createConnection(target)
    this.socket.setNoDelay(true)
    this.socket.unref()
    this.socket.on('data', (chunk) => this.onData(chunk))
    this.socket.on('error', (err) => this.fail(err))
    this.socket.on('close', () => this.fail(new Error('redis connection closed')))
  }

  send(args) {
    if (this.closed) return Promise.reject(new Error('redis connection closed'))
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject, command: String(args[0]) })
      this.socket.ref()
      this.socket.write(encodeCommand(args))
    })
  }

  onData(chunk) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk
    let offset = 0
    while (this.pending.length) {
      let reply
      try {
        reply = parseReply(this.buffer, offset)
      } catch (err) {
        if (err === INCOMPLETE) break
        this.fail(err)
        return
      }
      offset = reply.next
      const waiter = this.pending.shift()
      if (reply.value instanceof Error) waiter.reject(reply.value)
      else waiter.resolve(reply.value)
    }
    this.buffer = this.buffer.subarray(offset)
    if (!this.pending.length) this.socket.unref()
  }

  fail(err) {
    if (this.closed) return
    this.closed = true
    this.socket.destroy()
    for (const waiter of this.pending.splice(0)) {
      const failure = new Error(`${waiter.command}: ${err.message}`)
      failure.code = err.code
      waiter.reject(failure)
    }
    if (this.onClose) this.onClose()
  }

  close() {
    this.fail(new Error('redis connection closed by the client'))
  }
}

/** `redis://host:port`, `redis+unix:///path`, `unix:///path` → a net.connect target. */
function connectTarget(url) {
  const u = new URL(url)
  if (u.protocol === 'redis+unix:' || u.protocol === 'unix:') return { path: decodeURIComponent(u.pathname) }
  if (u.protocol === 'redis:') return { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379) }
  throw new Error(`redis-harness: unsupported URL ${url}`)
}

const cachedConnections = new Map()

function cachedConnection(url) {
  let conn = cachedConnections.get(url)
  if (!conn || conn.closed) {
    conn = new RespConnection(connectTarget(url))
    conn.onClose = () => {
      if (cachedConnections.get(url) === conn) cachedConnections.delete(url)
    }
    cachedConnections.set(url, conn)
  }
  return conn
}

/**
 * Sends one command to the Redis at `url` over a cached connection (re-opened
 * after the server dies) and resolves with its reply; an error reply rejects
 * with the server's message.
 */
function respCommand(url, ...args) {
  return cachedConnection(url).send(args)
}

function closeConnections(url) {
  const conn = cachedConnections.get(url)
  if (conn) conn.close()
}

// ------------------------------------------------------------- servers ----

const running = new Set()

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.unref()
    probe.on('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function withTimeout(promise, ms) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no reply within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function logTail(logPath, lines = 15) {
  try {
    return fs.readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log written)'
  }
}

class RedisServer {
  constructor({ dir, unix, port, extraArgs }) {
    this.dir = dir
    this.logPath = path.join(dir, 'log')
    this.port = unix ? null : port
    this.socketPath = unix ? path.join(dir, 'r.sock') : null
    this.url = unix ? `redis+unix://${this.socketPath}` : `redis://127.0.0.1:${port}`
    this.unixUrl2 = unix ? `unix://${this.socketPath}` : null
    this.args = [
      ...(unix ? ['--port', '0', '--unixsocket', this.socketPath, '--unixsocketperm', '700'] : ['--port', String(port), '--bind', '127.0.0.1']),
      '--save', '',
      '--appendonly', 'no',
      '--dir', dir,
      '--logfile', this.logPath,
      ...extraArgs,
    ]
    this.child = null
    this.exited = null
    this.stopped = false
  }

  get pid() {
    return this.child ? this.child.pid : undefined
  }

  get alive() {
    return this.child !== null && this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  spawnProcess() {
    const child = spawn('redis-server', this.args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.stderr.unref?.()
    // A test process must be able to exit while a server still runs; the
    // exit hook below kills what is left.
    child.unref()
    this.exited = new Promise((resolve) => {
      child.on('error', (err) => resolve({ code: null, signal: null, error: err }))
      child.on('exit', (code, signal) => resolve({ code, signal, stderr }))
    })
    this.child = child
    running.add(this)
  }

  /**
   * Waits for this process to say it is ready, then for PING → PONG. The log
   * line comes first so that, if our process lost the port race, we never
   * PING whatever else holds the port.
   */
  async waitReady() {
    const deadline = Date.now() + READY_TIMEOUT_MS
    let exit = null
    this.exited.then((e) => (exit = e))
    let logged = false
    while (Date.now() < deadline) {
      if (exit) return { ok: false, exit }
      if (!logged) {
        try {
          logged = /ready to accept connections/i.test(fs.readFileSync(this.logPath, 'utf8'))
        } catch {}
      }
      if (logged) {
        if ((await withTimeout(this.command('PING'), 500).catch(() => null)) === 'PONG') return { ok: true }
      }
      await sleep(10)
    }
    return { ok: false, exit }
  }

  /**
   * Sends one command over the server's cached connection. Resolves with the
   * reply (string, number, null, nested arrays); an error reply rejects with
   * the server's message. No timeout: while the server is paused the
   * promise waits, so race it if the test needs to.
   */
  command(...args) {
    return respCommand(this.url, ...args)
  }

  /** SIGSTOP: the server stops answering but keeps its sockets and data. */
  pause() {
    process.kill(this.pid, 'SIGSTOP')
    this.paused = true
  }

  /** SIGCONT: answers again; keys whose TTL ran out meanwhile expire on access. */
  resume() {
    process.kill(this.pid, 'SIGCONT')
    this.paused = false
  }

  /** SIGKILL, no shutdown: a crash. Resolves once the process is gone. */
  kill9() {
    if (this.alive) process.kill(this.pid, 'SIGKILL')
    this.paused = false
    closeConnections(this.url)
    return this.exited.then(() => undefined)
  }

  /**
   * The same command line again, on the same port or socket, after killing
   * the current process if it still runs. Without persistence it comes back
   * empty.
   */
  async restart() {
    if (this.stopped) throw new Error('redis-harness: restart() after stop()')
    if (this.alive) await this.kill9()
    closeConnections(this.url)
    // Truncate so the readiness check does not read the previous run's line.
    fs.writeFileSync(this.logPath, '')
    this.spawnProcess()
    const ready = await this.waitReady()
    if (!ready.ok) {
      await this.kill9()
      throw new Error(`redis-harness: restart of ${this.url} did not come up:\n${logTail(this.logPath)}`)
    }
  }

  /** SIGTERM by pid, wait for the exit (SIGKILL after 5 s), remove the directory. */
  async stop() {
    if (this.stopped) return
    this.stopped = true
    closeConnections(this.url)
    if (this.alive) {
      this.child.ref()
      process.kill(this.pid, 'SIGTERM')
      // A stopped process only acts on SIGTERM once it runs again.
      if (this.paused) process.kill(this.pid, 'SIGCONT')
      const timer = setTimeout(() => this.alive && process.kill(this.pid, 'SIGKILL'), STOP_TIMEOUT_MS)
      await this.exited
      clearTimeout(timer)
    }
    running.delete(this)
    fs.rmSync(this.dir, { recursive: true, force: true })
  }
}

/**
 * Starts a throwaway redis-server: TCP on a free 127.0.0.1 port (retried on
 * a port race), or `{ unix: true }` for a unix socket with no TCP listener.
 * `args` are appended to the command line (e.g. `['--appendonly', 'yes']`).
 */
async function startRedis({ unix = false, args = [] } = {}) {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error(
      'redis-server is not on PATH: the Redis tests start their own servers. `npm install` in a clone installs it ' +
        'with apt-get when run as root; otherwise install it (apt-get install redis-server, brew install redis).',
    )
  }
  let lastFailure = ''
  let attempts = 0
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyed-lock-redis-'))
    const port = unix ? null : await freePort()
    const server = new RedisServer({ dir, unix, port, extraArgs: args })
    attempts = attempt
    server.spawnProcess()
    const ready = await server.waitReady()
    if (ready.ok) return server
    const tail = logTail(server.logPath)
    const spawnError = ready.exit && ready.exit.error
    await server.stop()
    if (spawnError && spawnError.code === 'ENOENT') {
      throw new Error('redis-harness: redis-server is not installed (apt-get install -y redis-server)')
    }
    lastFailure = ready.exit
      ? `exited (${ready.exit.code ?? ready.exit.signal}) ${(ready.exit.stderr || '').trim()}\n${tail}`
      : `no PONG within ${READY_TIMEOUT_MS} ms\n${tail}`
    // An early exit on TCP is most likely a lost port race (another process
    // took the port between our probe and the bind): try a new port. A hang,
    // or a unix socket server that exits, fails the same way again.
    if (!ready.exit || unix) break
  }
  throw new Error(`redis-harness: redis-server did not start (${attempts} attempt(s)): ${lastFailure}`)
}

/** Stops every server this process started and still runs. */
async function stopAll() {
  await Promise.all([...running].map((server) => server.stop()))
}

// A test that fails before its after() hook, or a process that exits early,
// must not leave servers behind: SIGKILL them (the only thing an 'exit'
// handler can still do, synchronously) and remove their directories.
function killAllSync() {
  for (const server of running) {
    try {
      if (server.alive) process.kill(server.pid, 'SIGKILL')
    } catch {}
    try {
      fs.rmSync(server.dir, { recursive: true, force: true })
    } catch {}
  }
  running.clear()
}
process.on('exit', killAllSync)
// The test runner ends a timed-out file with SIGTERM, which skips 'exit'.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.once(signal, function onSignal() {
    killAllSync()
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  })
}

module.exports = { startRedis, stopAll, respCommand, parseReply, encodeCommand, freePort }
