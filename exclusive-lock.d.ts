// Types for `require('keyed-lock/exclusive-lock')`: @logdna/exclusive-lock
// 2.0.0's API over keyed-lock's Redis client.

import { EventEmitter } from 'events'
import AsyncLock = require('./index')

/**
 * One named lock in Redis that at most one instance (in any process) holds,
 * renewed by a timer until `release()`. @logdna/exclusive-lock's API,
 * constructor checks, events and log calls.
 *
 * Unlike the original:
 * - a refresh extends only this instance's own lease, and `release()`
 *   deletes only that lease: a stale holder can no longer extend or delete
 *   the next holder's lock;
 * - a refresh that finds the lease gone emits `'error'` with a
 *   `LockLostError` (then releases, as after any refresh failure), instead
 *   of `'refreshed'`; `'refreshed'` means the extension was confirmed;
 * - with no `'error'` listener, the lock is released first and the error is
 *   then thrown as an uncaught exception (not an unhandled rejection);
 * - Redis is reached through keyed-lock's own client: `cache_connection` only
 *   says where it is (an ioredis or node-redis client's options are read:
 *   address, credentials, TLS settings, or a Sentinel client's sentinels
 *   and master name; a URL string or `{url}` also work).
 *
 * @example
 * const ExclusiveLock = require('keyed-lock/exclusive-lock')
 * const lock = new ExclusiveLock({ name: 'nightly-report', cache_connection: ioredisClient })
 * lock.on('error', (err) => stopWork(err))
 * if (await lock.acquire()) {
 *   try { await work() } finally { await lock.release() }
 * }
 */
declare class ExclusiveLock extends EventEmitter {
  /**
   * Checks `opts` as the original did, in the same order and with the same
   * errors, and sets the fields below. Sends nothing to Redis: the
   * connection is opened by the first `acquire()` or `inspect()`.
   *
   * @throws Error `'Input validation failed'` (`code: 'EINVAL'`, `errors:
   *   [{instancePath, message}]`, the first schema error only), logged with
   *   `log.error` first.
   * @throws TypeError `'A valid cache_connection to a cache store is
   *   required'` (`code: 'EINVAL'`) for an object without `.set()` (a URL
   *   string or `{url}` is accepted).
   * @throws RangeError `'lock_refresh_ms must be at least 500ms less than
   *   lock_ttl_ms'` (`code: 'EINVAL'`, `meta: {lock_ttl_ms, lock_refresh_ms, diff}`).
   * @throws TypeError (`code: 'ERR_INVALID_ARG_VALUE'`) naming
   *   `cache_connection` when no server address can be read from it (a URL
   *   is never quoted with its password).
   * @throws RangeError (`code: 'ERR_OUT_OF_RANGE'`) naming `lock_ttl_ms`
   *   when it is outside 50..2147483647 (keyed-lock's lease bounds).
   */
  constructor(opts: ExclusiveLock.ExclusiveLockOptions)

  /** The `log` option, or a no-op logger shaped like abstract-logging. */
  log: ExclusiveLock.Logger
  /** The `cache_connection` option as given; keyed-lock reads its address and never uses it. */
  cache_connection: ExclusiveLock.CacheConnection
  /** `name`, slugged (`/[\s\W]+/g` → `-`). */
  name: string
  /** How long the lease in Redis lives without a refresh, in ms (default 3000). */
  lock_ttl_ms: number
  /** How often the held lease is refreshed, in ms (default 1000). */
  lock_refresh_ms: number
  /** What `inspect()` reports as the lock's contents (default `'1'`). */
  lock_contents: string
  /** Whether this instance holds the lock; false again as soon as a release (requested or automatic) starts. */
  acquired: boolean
  /** Whether a refresh is in flight (a tick that finds one skips). */
  is_refreshing: boolean
  /** The refresh timer while the lock is held (not unref'd: it keeps the process up until `release()`), else `null`. */
  refresh_timer: ReturnType<typeof setInterval> | null
  /** `slug(key_prefix) + ':' + slug(name)`. */
  readonly key: string
  /** `String(lock)` is `'[object ExclusiveLock]'`, as in the original. */
  readonly [Symbol.toStringTag]: 'ExclusiveLock'

  /**
   * Takes the lock if nobody holds it. Resolves `true` (after `'acquired'`)
   * or `false`; `true` at once, with a warning, if this instance holds it
   * already. A Redis error rejects.
   */
  acquire(): Promise<boolean>
  /** The lock's remaining TTL and contents, whoever holds it, or `null` if nobody does. */
  inspect(): Promise<{ lock_ttl_ms: number; lock_contents: string } | null>
  /**
   * Gives the lock up (after `'released'`); a no-op when not held. If the
   * lock had been lost unnoticed, emits `'error'` (LockLostError) first, or
   * rejects with it when nobody listens for `'error'`.
   */
  release(): Promise<void>

  /**
   * The original's events: `'acquired'(key)` and `'released'(key)`, emitted
   * before the promise of the call settles; `'refreshed'({key,
   * lock_ttl_ms})` only for a refresh Redis confirmed; `'error'(err)` when a
   * refresh fails or finds the lease lost (`LockLostError`), followed by the
   * automatic release. With no `'error'` listener that error is thrown as an
   * uncaught exception after the release.
   */
  on(event: 'acquired' | 'released', listener: (key: string) => void): this
  on(event: 'refreshed', listener: (payload: { key: string; lock_ttl_ms: number }) => void): this
  on(event: 'error', listener: (err: Error) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  /** The events of `on`, heard once. */
  once(event: 'acquired' | 'released', listener: (key: string) => void): this
  once(event: 'refreshed', listener: (payload: { key: string; lock_ttl_ms: number }) => void): this
  once(event: 'error', listener: (err: Error) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
}

declare namespace ExclusiveLock {
  /** The calls made: `info`, `warn`, `error` and (if present) `trace`. pino fits. */
  export interface Logger {
    /** Acquired and released locks, with the original's format strings. */
    info(...args: any[]): unknown
    /** `acquire()` on an instance that already holds the lock. */
    warn(...args: any[]): unknown
    /** Validation failures, refresh failures, failed releases and failed `inspect()` reads. */
    error(...args: any[]): unknown
    /** Each confirmed refresh; called only if the logger has it. */
    trace?(...args: any[]): unknown
    /** Other levels are allowed and never called. */
    [level: string]: any
  }

  /**
   * An ioredis or node-redis client (only its options are read; keyed-lock
   * never sends commands through it), or keyed-lock's `redis://…` URL string
   * or `{url}`.
   */
  export type CacheConnection = string | { url: string } | { set(...args: any[]): unknown; [key: string]: any }

  /**
   * Options for `new ExclusiveLock(opts)`, checked as the original's schema
   * checked them (see the constructor's errors).
   */
  export interface ExclusiveLockOptions {
    /** Required; slugged into the key. */
    name: string
    /** Required: where Redis is (see `CacheConnection`). */
    cache_connection: CacheConnection
    /** A logger (pino fits). Default: a no-op one. */
    log?: Logger
    /**
     * Default 3000; give it together with `lock_refresh_ms`. keyed-lock: from 50
     * to 2147483647 (2^31 − 1) ms, else a `RangeError` naming it.
     * @minimum 50
     * @maximum 2147483647
     */
    lock_ttl_ms?: number
    /** Default 1000; at least 500 less than `lock_ttl_ms`. */
    lock_refresh_ms?: number
    /** What `inspect()` reports as the contents. Default `'1'`. */
    lock_contents?: string
    /** Default `'exclusive-lock'`. */
    key_prefix?: string
    /**
     * keyed-lock: `permits`, `weight` and `mode` are accepted only as `1`,
     * `1` and `'exclusive'` (one holder, which this lock always is); any other
     * value is a `TypeError` (code `ERR_INVALID_ARG_VALUE`) naming the option,
     * thrown by the constructor after the original's checks. For a semaphore
     * or a read/write lock use `new AsyncLock({ permits })`.
     */
    permits?: 1
    /** keyed-lock: only `1` (see `permits`). */
    weight?: 1
    /** keyed-lock: only `'exclusive'` (see `permits`). */
    mode?: 'exclusive'
    /** Other options are accepted and ignored, as the original's schema allowed. */
    [option: string]: unknown
  }

  export import LockLostError = AsyncLock.LockLostError
  export { ExclusiveLock }
}

export = ExclusiveLock
