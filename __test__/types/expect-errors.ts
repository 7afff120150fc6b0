// Wrong usage the types must reject: every line below is a compile error,
// and `@ts-expect-error` fails the build if one of them stops being one.
import AsyncLock = require('keyed-lock')
import lock = require('keyed-lock/alock')
import Locky = require('keyed-lock/locky')
import ExclusiveLock = require('keyed-lock/exclusive-lock')

const asyncLock = new AsyncLock()

// @ts-expect-error an object is not a key
asyncLock.acquire({}, async () => 1)
// @ts-expect-error fn is required
asyncLock.acquire('key')
// @ts-expect-error fn must be a function
asyncLock.acquire('key', 'not a function')
// @ts-expect-error T is number, not string
asyncLock.acquire('key', async () => 1).then((value: string) => value)
// @ts-expect-error T is string, which has no toFixed
asyncLock.acquire('key', async () => 'stringValue').then((value) => value.toFixed())
// @ts-expect-error callback mode returns nothing, not a promise
asyncLock.acquire('key', (done) => done(), () => {}).then(() => {})
// @ts-expect-error done's error must be an Error (or null/undefined)
asyncLock.acquire('key', (done) => done('failed'), () => {})
// @ts-expect-error options are numbers of milliseconds, not strings
new AsyncLock({ timeout: '5000' })
// @ts-expect-error misspelt option
new AsyncLock({ maxPendng: 5 })
// @ts-expect-error skipQueue is a boolean
asyncLock.acquire('key', async () => 1, { skipQueue: 'yes' })
// @ts-expect-error isBusy takes one key, not an array
asyncLock.isBusy(['a', 'b'])
// @ts-expect-error the statics are read-only
AsyncLock.DEFAULT_TIMEOUT = 5
// @ts-expect-error DEFAULT_MAX_PENDING is the literal 1000
const one: 1 = AsyncLock.DEFAULT_MAX_PENDING
// @ts-expect-error AsyncLock is a class: it needs `new`
AsyncLock()
// @ts-expect-error scope is 'isolate', 'process' or 'redis'
new AsyncLock({ scope: 'cluster' })

// @ts-expect-error alock needs a callback
lock('key')
// @ts-expect-error alock's callback must be a function
lock('key', 5)
// @ts-expect-error alock takes one key, not an array
lock(['a', 'b'], (done) => done())
// @ts-expect-error done takes no arguments
lock('key', (done) => done(new Error('x')))
// @ts-expect-error alock returns nothing
lock('key', (done) => done()).then(() => {})
// @ts-expect-error shared is a lock function, not a lock space object
lock.shared.acquire('key', () => {})
// @ts-expect-error shared is read-only
lock.shared = lock
// @ts-expect-error alock admits one holder per key: no weight above 1
lock('key', (done) => done(), { weight: 2 })
// @ts-expect-error alock has no shared holds
lock.shared('key', (done) => done(), { mode: 'shared' })

void one

// The Redis faces admit one holder per lock too (keyed-lock's semaphores are AsyncLock's).
// @ts-expect-error a Locky is no semaphore
new Locky({ permits: 3 })
// @ts-expect-error a Locky lock is one locker's
new Locky().lock([{ resource: 'a', locker: 'me', mode: 'shared' }])
// @ts-expect-error an ExclusiveLock is one holder
new ExclusiveLock({ name: 'report', cache_connection: 'redis://127.0.0.1:6379', weight: 2 })
