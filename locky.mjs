// ESM entry for `import Locky from 'keyed-lock/locky'` (and `import { Locky }`).
// It re-exports the CommonJS module, so both module systems hand out the
// very same class.
import Locky from './locky.js'

export const { LockLostError } = Locky
export { Locky }
export default Locky
