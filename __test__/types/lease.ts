// The lease API as a project with @types/node sees it: AbortSignal is
// Node's, and `await using` works because @types/node declares
// Symbol.asyncDispose (TypeScript 5.2+). ./legacy/lease.ts checks it without
// either.
import AsyncLock = require('keyed-lock')

type Equals<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false
function assertType<T extends true>(): void {}

async function leases(lock: AsyncLock): Promise<void> {
  const pending = lock.lock('k')
  assertType<Equals<typeof pending, Promise<AsyncLock.Lease>>>()
  const lease = await pending
  const token: number = lease.token
  const tokens: readonly number[] = lease.tokens
  const keys: readonly (string | symbol)[] = lease.keys
  const signal: AbortSignal = lease.signal
  const released: boolean = await lease.release()
  void [token, tokens, keys, signal, released]

  // Keys and options.
  await lock.lock(1)
  await lock.lock(Symbol('k'))
  const many: readonly AsyncLock.AsyncLockKey[] = ['a', 1]
  await lock.lock(many)
  await lock.lock(['a', 'b'], { timeout: 100, signal: AbortSignal.timeout(50) })
  await lock.lock('k', { timeout: Infinity })
  await lock.lock('k', {})
  const options: AsyncLock.LockOptions = { signal: new AbortController().signal }
  await lock.lock('k', options)

  // await using: released at the end of the block.
  {
    await using held = await lock.lock('k')
    void held.token
  }
  const disposable: AsyncDisposable = lease
  void disposable

  // What a lost lease's signal carries.
  lease.signal.addEventListener('abort', () => {
    const reason: unknown = lease.signal.reason
    if (reason instanceof AsyncLock.LockLostError) {
      const key: string | symbol = reason.key
      const lostToken: number = reason.token
      const code: 'ELOCKLOST' = reason.code
      const name: 'LockLostError' = reason.name
      void [key, lostToken, code, name, reason.cause]
    }
  })
  const err: Error = new AsyncLock.LockLostError('k', 1, new Error('expired'))
  void err

  const closed: Promise<void> = lock.close()
  await closed
}

async function wrong(lock: AsyncLock): Promise<void> {
  const lease = await lock.lock('k')
  // @ts-expect-error the token is read-only
  lease.token = 2
  // @ts-expect-error the keys are read-only
  lease.keys.push('x')
  // @ts-expect-error release() resolves a boolean
  const text: string = await lease.release()
  // @ts-expect-error a key is needed
  await lock.lock()
  // @ts-expect-error an object is not a key
  await lock.lock({})
  // @ts-expect-error timeout is a number of milliseconds
  await lock.lock('k', { timeout: '100' })
  // @ts-expect-error signal is an AbortSignal, not its controller
  await lock.lock('k', { signal: new AbortController() })
  // @ts-expect-error lock() has no skipQueue
  await lock.lock('k', { skipQueue: true })
  // @ts-expect-error lease.signal is not the caller's to abort
  lease.signal.abort()
  void text
}

void [leases, wrong]
