// Types for `require('keyed-lock/alock')`, the alock 0.0.2 face.

/**
 * Runs `callback` while holding `key`, in the one lock space this module
 * shares across the whole process (`require` and `import` see the same
 * one). Returns nothing.
 *
 * - On a free key `callback` runs synchronously, inside `lock()`.
 * - On a busy key it runs synchronously inside the holder's `done()`, in
 *   FIFO order: waiters on one key run in the order `lock` was called.
 * - `done()` releases the lock; calling it again does nothing (alock let a
 *   second call release someone else's hold). Never calling it keeps the
 *   key locked forever: there is no timeout.
 * - Keys are compared as property names (`1` and `'1'` are one key);
 *   symbols by identity. Keys named like `Object.prototype` members
 *   (`'constructor'`, `'__proto__'`) are ordinary keys.
 *
 * @param key the key to lock.
 * @param callback the work, `callback(done)`.
 * @param options keyed-lock's addition, only to be refused: see
 *   `lock.OneHolderOptions`.
 * @throws TypeError (code `ERR_INVALID_ARG_VALUE`) when `callback` is not a
 *   function, or `options` asks for more than one holder (naming the option;
 *   both before anything is locked), or when `key`'s `String()` form
 *   throws. An exception thrown by `callback` on a free key comes out of
 *   `lock()`, and the key stays held until `done` is called.
 *
 * @example
 * import lock = require('keyed-lock/alock')
 * lock('file:a.txt', (done) => {
 *   fs.appendFile('a.txt', line, () => done())
 * })
 */
declare function lock(
  key: string | number | symbol,
  callback: (done: () => void) => void,
  options?: lock.OneHolderOptions,
): void

declare namespace lock {
  /**
   * keyed-lock's semaphore options (docs/semaphores.md) as this face takes
   * them: alock admits one holder per key, so each is accepted only with the
   * value that says so, and any other value is a `TypeError` naming the
   * option, thrown before anything is locked (never silently ignored). For
   * a semaphore or a read/write lock use `new AsyncLock({ permits })`.
   */
  interface OneHolderOptions {
    /** Only `1`: one holder per key. */
    permits?: 1
    /** Only `1`: a hold takes the key's one permit. */
    weight?: 1
    /** Only `'exclusive'`: there are no shared holds here. */
    mode?: 'exclusive'
  }

  /**
   * keyed-lock's addition: the same `lock(key, callback)` over one lock space
   * shared by every worker thread of the process (the plain `lock` is shared
   * only within one thread). FIFO holds across threads, and a thread that
   * exits, is terminated or throws gives up what it held and what it waited
   * for. The space is opened on first use of this property.
   *
   * @example
   * import lock = require('keyed-lock/alock')
   * // in the main thread and in any worker:
   * lock.shared('report.csv', (done) => appendLines().finally(done))
   */
  const shared: (
    key: string | number | symbol,
    callback: (done: () => void) => void,
    options?: OneHolderOptions,
  ) => void
}

export = lock
