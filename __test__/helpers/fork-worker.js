'use strict'
// A forked test worker driven over IPC: the Redis process suites
// (redis-processes, redis-semaphore-processes) each fork workers of their
// own fixture and talk to them the same way.
const { fork } = require('node:child_process')

/** An Error in the worker's shape: name, message, code and the lock's key and token kept. */
function errorFrom({ name, message, code, key, token }) {
  const err = new Error(message)
  Object.defineProperty(err, 'name', { value: name, enumerable: false })
  Object.assign(err, { code, key, token })
  return err
}

/**
 * Forks `script` and waits for its hello. `w.call(op, args)` resolves with
 * the op's value or rejects with its error (or when no answer comes within
 * `timeoutMs`); `w.kill()` SIGKILLs this child only; `w.close()` closes its
 * keyed-lock client, then lets it exit. The worker is in `workers` while it lives.
 */
async function spawnWorker(script, label, { workers, timeoutMs }) {
  const child = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const pending = new Map()
  let seq = 0
  let gone = null
  let onReady
  const ready = new Promise((resolve) => (onReady = resolve))
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      gone = new Error(`worker ${label} exited (${signal || code})`)
      for (const { reject, timer } of pending.values()) {
        clearTimeout(timer)
        reject(gone)
      }
      pending.clear()
      onReady()
      workers.delete(w)
      resolve({ code, signal })
    })
  })
  child.on('message', (m) => {
    if (m.ready) return onReady()
    const p = pending.get(m.id)
    if (p === undefined) return
    pending.delete(m.id)
    clearTimeout(p.timer)
    if (m.ok) p.resolve(m.value)
    else p.reject(errorFrom(m.error))
  })
  const w = {
    label,
    child,
    exited,
    call(op, args = {}) {
      if (gone) return Promise.reject(gone)
      const id = ++seq
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id)
          reject(new Error(`worker ${label}: ${op} did not answer within ${timeoutMs} ms`))
        }, timeoutMs)
        pending.set(id, { resolve, reject, timer })
        child.send({ id, op, ...args })
      })
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      return exited
    },
    async close() {
      if (gone) return
      await w.call('close').catch(() => {})
      if (child.connected) child.disconnect()
      await exited
    },
  }
  workers.add(w)
  await ready
  if (gone) throw gone
  return w
}

module.exports = { spawnWorker }
