// The Redis reach's options in a project whose types have no AbortSignal,
// no Symbol.asyncDispose and no @types/node (lib es2019): they need nothing
// beyond it.
import * as AsyncLock from 'keyed-lock'

const options: AsyncLock.AsyncLockOptions = {
  redis: 'redis://127.0.0.1:6379',
  scope: 'redis',
  name: 'billing',
  prefix: 'myapp',
  ttl: 30000,
}

async function onRedis(): Promise<void> {
  const lock = new AsyncLock(options)
  const lease = await lock.lock(['a', 1], { timeout: 100 })
  const token: number = lease.token
  const aborted: boolean = lease.signal.aborted
  await lease.release()
  await lock.acquire('a', () => token)
  await lock.close()
  void aborted
}

void onRedis
