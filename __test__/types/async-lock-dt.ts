// DefinitelyTyped's async-lock test, in spirit, in the import style that
// works with and without esModuleInterop.
import AsyncLock = require('keyed-lock')

const lock = new AsyncLock()

lock.acquire(
  'key',
  (done) => {
    done()
  },
  (err, ret) => {
    /* ... */
  },
)

lock
  .acquire('key', (done) => {
    done()
  })
  .then(() => {
    /* ... */
  })
  .catch(() => {
    /* ... */
  })

// T is inferred from fn's return value, plain or awaited.
lock.acquire('key', () => 'stringValue').then((str) => str.replace('s', 'S'))
lock.acquire('key', async () => 'stringValue').then((str) => str.replace('s', 'S'))

lock.acquire(
  ['key1', 'key2'],
  (done) => {
    done()
  },
  (err, ret) => {
    /* ... */
  },
)

lock.isBusy()
lock.isBusy('key')

new AsyncLock({ timeout: 5000 })
new AsyncLock({ maxPending: 5000 })
new AsyncLock({ Promise: null })
