// ESM entry for `import lock from 'keyed-lock/alock'`. It re-exports the
// CommonJS module so that `import` and `require` share alock's one
// module-global lock space: a key locked through one is busy through the other.
import lock from './alock.js'

export default lock
