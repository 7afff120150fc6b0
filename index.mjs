// ESM entry for `import AsyncLock from 'keyed-lock'`. It re-exports the
// CommonJS module instead of being a second copy, so `import` and `require`
// hand out the very same AsyncLock (no dual-package hazard).
import AsyncLock from './index.js'

export default AsyncLock
