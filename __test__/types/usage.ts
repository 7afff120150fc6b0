// What a keyed-lock user writes: default import (esModuleInterop), inference,
// callback mode, every option, the widened keys and the namespace types.
import AsyncLock from 'keyed-lock'
import AsyncLockRequired = require('keyed-lock')

type Equals<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false
function assertType<T extends true>(): void {}

// Both import styles name the same class.
assertType<Equals<typeof AsyncLock, typeof AsyncLockRequired>>()

const options: AsyncLock.AsyncLockOptions = {
  timeout: 5000,
  maxPending: Infinity,
  maxOccupationTime: 10_000,
  maxExecutionTime: 2_000,
  domainReentrant: false,
  skipQueue: false,
  Promise: Promise,
}
const lock = new AsyncLock(options)
new AsyncLock()
new AsyncLock({ timeout: undefined })

// Promise mode: T comes from fn.
const fromAsync = lock.acquire('key', async () => 'stringValue')
assertType<Equals<typeof fromAsync, Promise<string>>>()
const fromSync = lock.acquire('key', () => 42)
assertType<Equals<typeof fromSync, Promise<number>>>()
const fromThenable = lock.acquire('key', () => Promise.resolve({ id: 1 }))
assertType<Equals<typeof fromThenable, Promise<{ id: number }>>>()
const explicit = lock.acquire<string[]>('key', (done) => done(null, ['a']))
assertType<Equals<typeof explicit, Promise<string[]>>>()
lock.acquire('key', () => 1, { timeout: 100, skipQueue: true })

// Callback mode: done and cb share T, acquire returns void.
const nothing = lock.acquire(
  'key',
  (done: AsyncLock.AsyncLockDoneCallback<number>) => {
    setTimeout(() => done(null, 1), 1)
  },
  (err, ret) => {
    if (err) throw err
    assertType<Equals<typeof ret, number | undefined>>()
  },
  { maxPending: 10 },
)
assertType<Equals<typeof nothing, void>>()
lock.acquire('key', (done) => done(new Error('failed')), () => {})

// Keys: strings, numbers, symbols and (readonly) arrays of them.
const sym = Symbol('resource')
lock.acquire(1, async () => undefined)
lock.acquire(sym, async () => undefined)
lock.acquire(['a', 2, sym], async () => undefined)
const keys: readonly string[] = ['x', 'y']
lock.acquire(keys, async () => undefined)
lock.isBusy(sym)
lock.isBusy(0)
const busy: boolean = lock.isBusy()

// Literal-typed statics.
const zero: 0 = AsyncLock.DEFAULT_TIMEOUT
const thousand: 1000 = AsyncLock.DEFAULT_MAX_PENDING
const occupation: 0 = AsyncLock.DEFAULT_MAX_OCCUPATION_TIME
const execution: 0 = AsyncLock.DEFAULT_MAX_EXECUTION_TIME

// The namespace's key type is usable on its own.
const someKey: AsyncLock.AsyncLockKey = 'k'
lock.acquire(someKey, async () => undefined)

void [busy, zero, thousand, occupation, execution]

// keyed-lock's own options: a process-wide lock space shared by worker threads.
new AsyncLock({ scope: 'process', name: 'uploads' })
new AsyncLock({ scope: 'isolate' })

// Counted keys (docs/semaphores.md): permits, weight (one or per key), mode.
const counted = new AsyncLock({ permits: 3 })
counted.acquire('k', () => 1, { weight: 2 }).then((n: number) => n)
counted.acquire(['a', 'b'], () => 1, { weight: [1, 3], mode: 'shared' })
counted.lock('k', { mode: 'exclusive' }).then((lease) => lease.release())
// @ts-expect-error: a mode is 'shared' or 'exclusive'
counted.acquire('k', () => 1, { mode: 'read' })
