// ESM entry for `import ExclusiveLock from 'keyed-lock/exclusive-lock'` (and
// `import { ExclusiveLock }`). It re-exports the CommonJS module, so both
// module systems hand out the very same class.
import ExclusiveLock from './exclusive-lock.js'

export const { LockLostError } = ExclusiveLock
export { ExclusiveLock }
export default ExclusiveLock
