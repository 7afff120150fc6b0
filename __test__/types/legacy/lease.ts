// The lease API in a project whose types have neither AbortSignal nor
// Symbol.asyncDispose (lib es2019, no @types/node): it still compiles, with
// keyed-lock's AbortSignalLike in place of AbortSignal and no dispose member.
import * as AsyncLock from 'keyed-lock'

async function leases(lock: AsyncLock): Promise<void> {
  const lease: AsyncLock.Lease = await lock.lock(['a', 1], { timeout: 100 })
  const token: number = lease.token
  const aborted: boolean = lease.signal.aborted
  const released: boolean = await lease.release()
  await lock.lock('k', { signal: lease.signal })
  const err: Error = new AsyncLock.LockLostError('k', token)
  await lock.close()
  void [aborted, released, err]
}

void leases
