// DefinitelyTyped's async-lock test, in spirit, with only the module name
// changed: code written against @types/async-lock 1.4.2 with
// `import * as` (esModuleInterop off) must compile as it is.
import * as AsyncLock from 'keyed-lock'
import lock = require('keyed-lock/alock')

const asyncLock = new AsyncLock()

asyncLock.acquire(
  'key',
  (done) => {
    done()
  },
  (err, ret) => {
    /* ... */
  },
)

asyncLock
  .acquire('key', (done) => {
    done()
  })
  .then(() => {
    /* ... */
  })
  .catch(() => {
    /* ... */
  })

asyncLock.acquire('key', () => 'stringValue').then((str) => str.replace('s', 'S'))
asyncLock.acquire('key', async () => 'stringValue').then((str) => str.replace('s', 'S'))

asyncLock.acquire(
  ['key1', 'key2'],
  (done) => {
    done()
  },
  (err, ret) => {
    /* ... */
  },
)

asyncLock.isBusy()
asyncLock.isBusy('key')

const lock2 = new AsyncLock({ timeout: 5000 })
const lock3 = new AsyncLock({ maxPending: 5000 })
const lock4 = new AsyncLock({ Promise: null })
const options: AsyncLock.AsyncLockOptions = { maxOccupationTime: 10 }

lock('key', (done) => done())
