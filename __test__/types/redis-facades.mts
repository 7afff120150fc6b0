// The same two faces from ESM: default and named imports.
import Locky, { Locky as NamedLocky } from 'keyed-lock/locky'
import ExclusiveLock, { ExclusiveLock as NamedExclusiveLock } from 'keyed-lock/exclusive-lock'

const a: NamedLocky = new Locky({ ttl: null })
const b: NamedExclusiveLock = new ExclusiveLock({ name: 'n', cache_connection: { url: 'redis://127.0.0.1:6379' } })
void a
void b
