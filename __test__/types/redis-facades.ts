// keyed-lock/locky and keyed-lock/exclusive-lock as fast-locky and
// @logdna/exclusive-lock users write them (CommonJS, through "exports").
import Locky = require('keyed-lock/locky')
import ExclusiveLock = require('keyed-lock/exclusive-lock')
import { Locky as NamedLocky } from 'keyed-lock/locky'
import { ExclusiveLock as NamedExclusiveLock } from 'keyed-lock/exclusive-lock'

async function locky(): Promise<void> {
  const locky: Locky = new Locky({ redis: () => ({ host: '127.0.0.1', port: 6379 }), ttl: 10000, name: 'app' })
  const named: NamedLocky = new NamedLocky({ redis: 'redis://127.0.0.1:6379' })
  const alias: Locky.Locky = named
  locky.on('lock', (resource, locker) => void [resource, locker])
  locky.on('expire', (resource: string) => void resource.length)
  locky.on('error', (err) => void err.message)
  const locked: true | undefined = await locky.lock([{ resource: 'article:1', locker: 'user:1' }], true)
  const lockers: Array<string | null> | undefined = await locky.getLockers(['article:1'])
  const one: string | null | undefined = await locky.getLocker('article:1')
  const extended = locky.extend(['article:1'])
  if (extended !== undefined) await extended
  const names: string[] | undefined = await locky.getLocks()
  await locky.unlock(['article:1'])
  const key: string = new Locky.Formatter('app').resourceToLock('x')
  await locky.close()
  void [alias, locked, lockers, one, names, key]
}

async function exclusive(): Promise<void> {
  const lock = new ExclusiveLock({ name: 'report', cache_connection: 'redis://127.0.0.1:6379', lock_ttl_ms: 3000, lock_refresh_ms: 1000 })
  const named: NamedExclusiveLock = new NamedExclusiveLock({ name: 'x', cache_connection: { set: () => 'OK', options: {} } })
  const alias: ExclusiveLock.ExclusiveLock = named
  lock.on('refreshed', ({ key, lock_ttl_ms }) => void [key.length, lock_ttl_ms.toFixed()])
  lock.on('error', (err) => {
    if (err instanceof ExclusiveLock.LockLostError) void [err.key, err.token, err.code]
  })
  const got: boolean = await lock.acquire()
  const seen = await lock.inspect()
  if (seen !== null) void [seen.lock_contents.length, seen.lock_ttl_ms.toFixed()]
  await lock.release()
  const tag: string = String(lock) + lock.key
  void [alias, got, tag]
}

void locky
void exclusive
