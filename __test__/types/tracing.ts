// The tracing payloads and stats() as a TypeScript project sees them.
import AsyncLock = require('keyed-lock')
import dc = require('node:diagnostics_channel')

const lock = new AsyncLock()
const stats: AsyncLock.LockStats = lock.stats()
const top: AsyncLock.LockStats = lock.stats({ top: 3 })
const p99: number = stats.wait.p99
const reach: AsyncLock.Reach = stats.reach
const busiest: readonly AsyncLock.BusyKey[] = top.keys
const waiters: number = busiest.length ? busiest[0].waiters : 0
void [p99, reach, waiters]
// @ts-expect-error: top is a number
lock.stats({ top: '3' })

dc.subscribe('tracing:keyed-lock:acquire:asyncStart', (message) => {
  const ctx = message as AsyncLock.TraceContext
  const wait: number | undefined = ctx.waitMs
  const outcome: AsyncLock.TraceOutcome | undefined = ctx.outcome
  const mode: 'promise' | 'callback' | 'lease' = ctx.mode
  void [wait, outcome, mode]
})
dc.subscribe('keyed-lock:release', (message) => {
  const release = message as AsyncLock.ReleaseMessage
  const held: number = release.holdMs
  void held
})
dc.subscribe('keyed-lock:lease:lost', (message) => {
  const lost = message as AsyncLock.LeaseLostMessage
  const key: string | symbol = lost.key
  void key
})
