// The Redis reach's options as a project with @types/node sees them
// (./legacy/redis.ts checks them without it): redis, scope 'redis', name,
// prefix and ttl on the constructor, and what a Redis lease offers.
import AsyncLock = require('keyed-lock')

type Equals<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false
function assertType<T extends true>(): void {}

const options: AsyncLock.AsyncLockOptions = {
  redis: 'redis://user:secret@127.0.0.1:6379/0',
  scope: 'redis',
  name: 'billing',
  prefix: 'myapp',
  ttl: 30_000,
  timeout: 5000,
  maxPending: 100,
}
const lock = new AsyncLock(options)
new AsyncLock({ redis: 'redis+unix:///run/redis/redis.sock' })
new AsyncLock({ redis: 'unix:///run/redis/redis.sock', name: 'uploads', ttl: undefined, prefix: undefined })
new AsyncLock({ redis: ['redis://10.0.0.1:7000', 'redis://10.0.0.2:7000'], name: '{billing}' })
new AsyncLock({ redis: process.env.REDIS_URL, name: 'jobs' }) // string | undefined: no Redis when unset

assertType<Equals<AsyncLock.AsyncLockOptions['scope'], 'isolate' | 'process' | 'redis' | undefined>>()
assertType<Equals<AsyncLock.AsyncLockOptions['redis'], string | readonly string[] | AsyncLock.RedisSentinelOptions | AsyncLock.RedisQuorumOptions | undefined>>()
assertType<Equals<AsyncLock.AsyncLockOptions['ttl'], number | undefined>>()

declare const store: { write(key: string, value: number, opts: { fencingToken: number }): Promise<void> }

async function onRedis(): Promise<void> {
  const value = await lock.acquire(['account:1', 'account:2'], async () => 42, { timeout: 100, skipQueue: true })
  assertType<Equals<typeof value, number>>()
  const busy: boolean = lock.isBusy('account:1')

  const lease = await lock.lock('account:1', { timeout: 5000, signal: AbortSignal.timeout(10_000) })
  lease.signal.addEventListener('abort', () => {
    const reason: unknown = lease.signal.reason
    if (reason instanceof AsyncLock.LockLostError) {
      const lost: { key: string | symbol; token: number; code: 'ELOCKLOST' } = reason
      void lost
    }
  })
  await store.write('account:1', 10, { fencingToken: lease.token })
  await lease.release()
  {
    await using held = await lock.lock(7)
    void held.tokens
  }
  await lock.close()
  void busy
}

// @ts-expect-error the URL is a string, not a port
new AsyncLock({ redis: 6379 })
// @ts-expect-error ttl is a number of milliseconds
new AsyncLock({ redis: 'redis://127.0.0.1:6379', ttl: '10s' })
// @ts-expect-error prefix is a string
new AsyncLock({ redis: 'redis://127.0.0.1:6379', prefix: ['a'] })
// @ts-expect-error scope is 'isolate', 'process' or 'redis'
new AsyncLock({ redis: 'redis://127.0.0.1:6379', scope: 'cluster' })

void onRedis

// Issue 14: production Redis options.
{
  const fs = { readFileSync: (_: string): Uint8Array => new Uint8Array() }
  new AsyncLock({ redis: 'rediss://app:secret@redis.example.com:6380', tls: { ca: fs.readFileSync('ca.pem'), cert: '-----BEGIN', key: '-----BEGIN' } })
  new AsyncLock({ redis: 'rediss://h:6380', tls: true })
  new AsyncLock({ redis: 'rediss://h:6380', tls: { rejectUnauthorized: false, servername: 'h', ca: ['a', 'b'] } })
  new AsyncLock({ redis: { sentinels: ['redis://10.0.0.1:26379', { host: '10.0.0.2', port: 26379 }, '10.0.0.3:26379'], name: 'mymaster', password: 'x', db: 1 } })
  new AsyncLock({ redis: { quorum: ['redis://a:6379', 'redis://b:6379', 'redis://c:6379'] }, ttl: 5000 })
  new AsyncLock({ redis: 'redis://h', waitReplicas: 1 })
  new AsyncLock({ redis: 'redis://h', waitReplicas: { replicas: 2, timeout: 200 } })
  const tls: AsyncLock.RedisTlsOptions = { ca: 'x' }
  const sentinel: AsyncLock.RedisSentinelOptions = { sentinels: ['redis://a:26379'], name: 'm' }
  void tls
  void sentinel
}
