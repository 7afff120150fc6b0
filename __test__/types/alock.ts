// keyed-lock/alock, required and default-imported.
import lock = require('keyed-lock/alock')
import lockDefault from 'keyed-lock/alock'

const result: void = lock('key', (done) => {
  setTimeout(done, 1)
})
lock(1, (done) => done())
lock(Symbol('k'), (done) => {
  done()
})
// An async callback is fine: its promise is ignored, done() releases.
lockDefault('key', async (done) => {
  await Promise.resolve()
  done()
})
void result

// The process-wide variant has the same signature.
lock.shared('key', (done) => done())
lockDefault.shared(2, (done) => {
  setTimeout(done, 1)
})
