// An ESM (.mts) consumer: `import` resolves through the "import" condition,
// and the default export carries the class, its namespace and alock.
import AsyncLock from 'keyed-lock'
import lock from 'keyed-lock/alock'

const options: AsyncLock.AsyncLockOptions = { timeout: 10 }
const asyncLock = new AsyncLock(options)
const value: Promise<string> = asyncLock.acquire(['a', 'b'], async () => 'v')
lock('key', (done) => done())
void value
