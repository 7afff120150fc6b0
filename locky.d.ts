// Types for `require('keyed-lock/locky')`: fast-locky 1.0.0's API over
// keyed-lock's Redis client.

import { EventEmitter } from 'events'
import AsyncLock = require('./index')

/** fast-locky's key names: `_.compact([name, 'lock', 'resource', resource]).join(':')`. */
declare class LockyFormatter {
  /** A formatter for the `name` namespace (none: unprefixed names). Never throws. */
  constructor(name?: string)
  /** The `name` option, the first part of every lock and set name. */
  readonly name: string | undefined
  /** `[name:]lock:resource:<resource>`; falsy parts are dropped (resources `0` and `''` give `[name:]lock:resource`). */
  resourceToLock(resource: unknown): string
  /** The resource part of a lock name (every `[name:]lock:resource:` removed). */
  lockToResource(lock: string): string
  /** `[name:]lock:currents`. */
  formatSetName(): string
}

/**
 * Batch locks on resources, in Redis, shared by every process that uses the
 * same Redis. fast-locky's API (`lock`, `unlock`, `extend`, `getLockers`,
 * `getLocks`, `close`; events `lock`, `unlock`, `extend`, `expire`,
 * `error`), plus upstream locky's spellings `refresh` and `getLocker`.
 *
 * Unlike fast-locky:
 * - every lock has a TTL: `ttl` milliseconds (kept only by `extend()`), or,
 *   with `ttl: null`, a lease of `leaseTtl` (30 s) that keyed-lock renews while
 *   the process runs;
 * - `unlock` and `extend` act only on locks this instance holds;
 * - a lock this instance held and lost (deleted, expired, forced away) is
 *   reported once, by this instance, as `'expire'`; there is no poller, and
 *   no instance reports another's locks;
 * - Redis is reached through keyed-lock's own client: the `redis` option only
 *   says where it is.
 *
 * Failed calls follow fast-locky's rule: with an `'error'` listener they
 * resolve `undefined` (the error goes to the listener); without one they
 * reject with the error.
 *
 * @example
 * const { Locky } = require('keyed-lock/locky')
 * const locky = new Locky({ redis: 'redis://127.0.0.1:6379', ttl: 10000 })
 * locky.on('lock', (resource, locker) => {})
 * locky.on('expire', (resource) => {})
 * await locky.lock([{ resource: 'article:23', locker: 'user:7' }])
 */
declare class Locky extends EventEmitter {
  /**
   * A Locky over the Redis that `options.redis` points to, through
   * keyed-lock's own connection (shared with this thread's other users of the
   * same URL). An unreachable Redis fails calls, through the `'error'` rule
   * above, never the constructor.
   *
   * @throws TypeError (code `ERR_INVALID_ARG_VALUE`) naming option `"redis"`
   *   when no Redis address can be read from it, `"ttl"` when it is neither
   *   falsy nor a number of milliseconds (numeric strings accepted), and
   *   `"leaseTtl"` when it is not a positive number of milliseconds.
   */
  constructor(options?: Locky.LockyOptions)

  /** Where this instance's Redis is, and keyed-lock's client for it. */
  redis: { url: string | string[] | { sentinels: string[]; name: string }; client: unknown }
  /** Builds this instance's lock and set names from `name`. */
  formatter: LockyFormatter
  /** The `ttl` option as given (`null` by default). */
  ttl: number | string | null
  /** The name of the Redis set that tracks current locks. */
  set: string
  /** fast-locky's unused `{}`. */
  locks: {}
  /** fast-locky's poller handle; always `null` (no poller runs). */
  expirelocksInterval: null

  /**
   * Locks each resource that is free (with `force`, even if someone holds
   * it). Resolves `true` whether or not anything was locked; emits
   * `'lock'(resource, locker)` for each lock taken, in input order, before
   * resolving. One resource twice in one call: the first item wins. A Redis
   * failure gives back what the call took (all or nothing, as fast-locky's
   * MULTI) and goes through the `'error'` rule.
   *
   * @throws TypeError (code `ERR_INVALID_ARG_VALUE`) synchronously when `collection` is not an array of objects,
   *   or an item asks for more than one holder (`weight` other than 1, `mode` other than `'exclusive'`).
   */
  lock(collection: ReadonlyArray<Locky.LockItem>, force?: boolean): Promise<true | undefined>
  /**
   * Releases the given locks that this instance holds (a lock held by anyone
   * else is left alone); `'unlock'(resource)` for each. Resolves `true`.
   *
   * @throws TypeError (code `ERR_INVALID_ARG_VALUE`) synchronously when `resources` is not an array.
   */
  unlock(resources: ReadonlyArray<unknown>): Promise<true | undefined>
  /**
   * Pushes the given locks this instance holds to `ttl` ms from now;
   * `'extend'(resource)` for each. Without a `ttl` it returns `undefined`
   * synchronously and does nothing.
   *
   * @throws TypeError (code `ERR_INVALID_ARG_VALUE`) synchronously when, with a
   *   `ttl`, `resources` is not an array.
   */
  extend(resources: ReadonlyArray<unknown>): Promise<true | undefined> | undefined
  /** upstream locky's name for `extend`; also takes a single resource. */
  refresh(resources: unknown): Promise<true | undefined> | undefined
  /**
   * The locker of each resource (as a string), or `null`, in input order,
   * whoever holds it.
   *
   * @throws TypeError (code `ERR_INVALID_ARG_VALUE`) synchronously when `resources` is not an array.
   */
  getLockers(resources: ReadonlyArray<unknown>): Promise<Array<string | null> | undefined>
  /** upstream locky's name: a single resource gives a single locker. */
  getLocker(resources: ReadonlyArray<unknown>): Promise<Array<string | null> | undefined>
  getLocker(resource: unknown): Promise<string | null | undefined>
  /** The names (`[name:]lock:resource:<id>`) of the locks held now, by any instance sharing the set. */
  getLocks(): Promise<string[] | undefined>
  /**
   * Waits for calls in flight, gives back the locks still held (no events),
   * closes the connection and quits a client the `redis` function returned.
   */
  close(): Promise<unknown>
  /** fast-locky's error funnel: `emit('error', err)`. */
  error(err: unknown): void

  /**
   * fast-locky's events: `'lock'(resource, locker)`, `'unlock'(resource)`,
   * `'extend'(resource)`, each emitted before the call that caused it
   * resolves; `'expire'(resource)` once when a lock this instance held is
   * found lost (deleted, expired or forced away); `'error'(err)` for every
   * failed call when a listener exists (the call then resolves `undefined`).
   */
  on(event: 'lock', listener: (resource: any, locker: any) => void): this
  on(event: 'unlock' | 'extend', listener: (resource: any) => void): this
  on(event: 'expire', listener: (resource: string) => void): this
  on(event: 'error', listener: (err: Error) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  /** The events of `on`, heard once. */
  once(event: 'lock', listener: (resource: any, locker: any) => void): this
  once(event: 'unlock' | 'extend', listener: (resource: any) => void): this
  once(event: 'expire', listener: (resource: string) => void): this
  once(event: 'error', listener: (err: Error) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
}

declare namespace Locky {
  /** A then-redis / node_redis `createClient` options object (only the address fields are read). */
  export interface RedisConnectionOptions {
    /** A full Redis URL; when given, the other fields are not read. */
    url?: string
    /** The server's host name or address. Default `127.0.0.1`. */
    host?: string
    /** Another spelling of `host`. */
    hostname?: string
    /** The server's port. Default `6379`. */
    port?: number | string
    /** A unix socket path, used instead of host and port. */
    path?: string
    /** The ACL user name (Redis 6+). */
    username?: string
    /** The password (with `username`, or alone for `requirepass`). */
    password?: string
    /** The logical database number. Default `0`. */
    database?: number | string
    /** Another spelling of `database`. */
    db?: number | string
    /**
     * Truthy: the server speaks TLS (read as a `rediss://` URL). An object
     * is also read as `tls.connect` options: `ca`, `cert`, `key` and
     * `rejectUnauthorized` are honoured (see AsyncLock's `tls` option).
     */
    tls?: unknown
  }

  /**
   * Where Redis is: a `redis://`, `rediss://`, `redis+unix://`, `unix://` or
   * `redis+sentinel://host:port[,host:port…]/masterName` URL, or an array of
   * Redis Cluster node URLs; then-redis options; an
   * ioredis or node-redis client, single, cluster or Sentinel (only its
   * options are read, keyed-lock never sends commands through it: host, port,
   * credentials, TLS settings, or a Sentinel client's sentinels and master
   * name; a Sentinel client without a master name, for a replica, or with an
   * ioredis `natMap`, is a `TypeError`, never read as `localhost:6379`); or a function
   * returning one of these, called once. Default: `process.env.REDIS_URL`,
   * else `redis://127.0.0.1:6379`.
   */
  export type RedisOption =
    | string
    | readonly string[]
    | RedisConnectionOptions
    | object
    | (() => string | readonly string[] | RedisConnectionOptions | object)

  /** Options for `new Locky(options)`; every one is optional. */
  export interface LockyOptions {
    /** Where Redis is (see `RedisOption`). A value nothing can be read from throws `TypeError` naming `"redis"`. */
    redis?: RedisOption
    /**
     * Lock TTL in milliseconds, kept only by `extend()`. `null`/`0` (default):
     * leases renewed while the process runs. keyed-lock: from 50 to 2147483647
     * (2^31 − 1); outside, the constructor throws a `RangeError` (code
     * `ERR_OUT_OF_RANGE`) naming `ttl`.
     * @minimum 50
     * @maximum 2147483647
     */
    ttl?: number | string | null
    /** Key namespace: locks are `<name>:lock:resource:<id>`. */
    name?: string
    /** The set that tracks current locks. Default `[name:]lock:currents`. */
    set?: string
    /**
     * keyed-lock: the lease length when `ttl` is null, renewed every third of it
     * (default 30000); from 50 to 2147483647, else a `RangeError` naming it.
     * @minimum 50
     * @maximum 2147483647
     */
    leaseTtl?: number
    /**
     * keyed-lock: only `1` (or unset). A Locky keeps one locker per
     * resource, so it is no semaphore: any other value is a `TypeError`
     * naming `permits`, thrown by the constructor (as is a `weight` or
     * `mode` here that asks for more than one holder). For a semaphore or a
     * read/write lock use `new AsyncLock({ permits })`.
     */
    permits?: 1
  }

  /** One entry of `lock(collection)`. */
  export interface LockItem {
    /** What to lock; its `String()` form names the lock (`[name:]lock:resource:<resource>`). */
    resource: unknown
    /** Stored as `String(locker)`; `'lock'` events pass the value given. */
    locker: unknown
    /**
     * keyed-lock: only `1` (or unset): a lock is one locker's. Any other
     * value is a `TypeError` naming `weight`, thrown by `lock()` before
     * anything is locked.
     */
    weight?: 1
    /**
     * keyed-lock: only `'exclusive'` (or unset): there are no shared locks
     * here. `'shared'` is a `TypeError` naming `mode`, thrown by `lock()`
     * before anything is locked.
     */
    mode?: 'exclusive'
  }

  export import LockLostError = AsyncLock.LockLostError
  export { Locky, LockyFormatter as Formatter }
}

export = Locky
