'use strict'
// The Redis test harness itself: if it cannot start, stop, pause or crash a
// server reliably, every Redis test built on it lies.

const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const net = require('node:net')
const { startRedis, stopAll, parseReply, encodeCommand } = require('../support/redis-harness')

after(() => stopAll())

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const TIMED_OUT = Symbol('timed out')
const within = (promise, ms) => Promise.race([promise, sleep(ms).then(() => TIMED_OUT)])

function processExists(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

test('RESP2: arrays nest, errors inside arrays stay values, partial replies wait for more', () => {
  assert.equal(encodeCommand(['SET', 'k', 'é']).toString(), '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n')
  const buf = Buffer.from('*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n-ERR nope\r\n+OK\r\n')
  const first = parseReply(buf, 0)
  assert.equal(first.value[0], 1)
  assert.deepEqual(first.value[1], ['a', null])
  assert.ok(first.value[2] instanceof Error)
  assert.equal(first.value[2].message, 'ERR nope')
  assert.deepEqual(parseReply(buf, first.next), { value: 'OK', next: buf.length })
  assert.throws(() => parseReply(Buffer.from('$5\r\nab'), 0), (e) => typeof e === 'symbol')
})

test('TCP server: SET/GET, error replies reject with the server message', { timeout: 20000 }, async () => {
  const server = await startRedis()
  after(() => server.stop())
  assert.match(server.url, /^redis:\/\/127\.0\.0\.1:\d+$/)
  assert.equal(server.url, `redis://127.0.0.1:${server.port}`)
  assert.equal(await server.command('SET', 'k', 'v', 'PX', 10000, 'NX'), 'OK')
  assert.equal(await server.command('GET', 'k'), 'v')
  assert.equal(await server.command('GET', 'missing'), null)
  assert.equal(await server.command('INCR', 'n'), 1)
  await assert.rejects(server.command('INCR', 'k'), /not an integer/)
  const info = await server.command('INFO', 'server')
  assert.match(info, new RegExp(`process_id:${server.pid}\\r\\n`))
})

test('unix socket server: no TCP port, both URL forms', { timeout: 20000 }, async () => {
  const server = await startRedis({ unix: true })
  after(() => server.stop())
  assert.equal(server.port, null)
  assert.equal(server.url, `redis+unix://${server.socketPath}`)
  assert.equal(server.unixUrl2, `unix://${server.socketPath}`)
  assert.ok(fs.statSync(server.socketPath).isSocket())
  assert.equal(await server.command('SET', 'k', 'v'), 'OK')
  assert.equal(await server.command('GET', 'k'), 'v')
  assert.equal(await server.command('CONFIG', 'GET', 'port').then((r) => r[1]), '0')
})

test('pause stops the answers, resume brings them back', { timeout: 20000 }, async () => {
  const server = await startRedis()
  after(() => server.stop())
  await server.command('SET', 'k', 'before')
  server.pause()
  const ping = server.command('PING')
  assert.equal(await within(ping, 300), TIMED_OUT)
  server.resume()
  assert.equal(await within(ping, 2000), 'PONG')
  assert.equal(await server.command('GET', 'k'), 'before')
})

test('kill9 + restart: same port and URL, data gone', { timeout: 20000 }, async () => {
  const server = await startRedis()
  after(() => server.stop())
  const { port, url } = server
  const firstPid = server.pid
  await server.command('SET', 'k', 'v')
  await server.kill9()
  assert.equal(processExists(firstPid), false)
  await assert.rejects(server.command('PING'))
  await server.restart()
  assert.notEqual(server.pid, firstPid)
  assert.equal(server.port, port)
  assert.equal(server.url, url)
  assert.equal(await server.command('GET', 'k'), null)
  assert.equal(await server.command('DBSIZE'), 0)
})

test('restart of a unix socket server reuses the socket path', { timeout: 20000 }, async () => {
  const server = await startRedis({ unix: true })
  after(() => server.stop())
  await server.command('SET', 'k', 'v')
  await server.restart()
  assert.equal(await server.command('EXISTS', 'k'), 0)
})

test('stop leaves no process and no directory, even when paused', { timeout: 20000 }, async () => {
  const servers = [await startRedis(), await startRedis({ unix: true })]
  servers[1].pause()
  for (const server of servers) {
    const { pid, dir } = server
    assert.equal(processExists(pid), true)
    await server.stop()
    assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' })
    assert.equal(fs.existsSync(dir), false)
  }
})

test('extra args reach the command line', { timeout: 20000 }, async () => {
  const server = await startRedis({ args: ['--maxmemory', '12mb'] })
  after(() => server.stop())
  assert.deepEqual(await server.command('CONFIG', 'GET', 'maxmemory'), ['maxmemory', String(12 * 1024 * 1024)])
})

test('a server that cannot bind fails after its retries, quoting its log', { timeout: 20000 }, async () => {
  const busy = net.createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => busy.once('listening', resolve))
  after(() => busy.close())
  // A later --port wins, so every attempt collides with the busy port.
  await assert.rejects(startRedis({ args: ['--port', String(busy.address().port)] }), /5 attempt\(s\)[\s\S]*Address already in use/)
})
