// Types for `require('keylock/locky')`: fast-locky 1.0.0's API over
// keylock's Redis client.

import { EventEmitter } from 'events'
import AsyncLock = require('./index')

/** fast-locky's key names: `_.compact([name, 'lock', 'resource', resource]).join(':')`. */
declare class LockyFormatter {
  constructor(name?: string)
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
 *   with `ttl: null`, a lease of `leaseTtl` (30 s) that keylock renews while
 *   the process runs;
 * - `unlock` and `extend` act only on locks this instance holds;
 * - a lock this instance held and lost (deleted, expired, forced away) is
 *   reported once, by this instance, as `'expire'`; there is no poller, and
 *   no instance reports another's locks;
 * - Redis is reached through keylock's own client: the `redis` option only
 *   says where it is.
 *
 * Failed calls follow fast-locky's rule: with an `'error'` listener they
 * resolve `undefined` (the error goes to the listener); without one they
 * reject with the error.
 *
 * @example
 * const { Locky } = require('keylock/locky')
 * const locky = new Locky({ redis: 'redis://127.0.0.1:6379', ttl: 10000 })
 * locky.on('lock', (resource, locker) => {})
 * locky.on('expire', (resource) => {})
 * await locky.lock([{ resource: 'article:23', locker: 'user:7' }])
 */
declare class Locky extends EventEmitter {
  constructor(options?: Locky.LockyOptions)

  /** Where this instance's Redis is, and keylock's client for it. */
  redis: { url: string | string[]; client: unknown }
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
   * resolving. One resource twice in one call: the first item wins.
   */
  lock(collection: ReadonlyArray<Locky.LockItem>, force?: boolean): Promise<true | undefined>
  /** Releases the given locks that this instance holds; `'unlock'(resource)` for each. Resolves `true`. */
  unlock(resources: ReadonlyArray<unknown>): Promise<true | undefined>
  /**
   * Pushes the given locks this instance holds to `ttl` ms from now;
   * `'extend'(resource)` for each. Without a `ttl` it returns `undefined`
   * synchronously and does nothing.
   */
  extend(resources: ReadonlyArray<unknown>): Promise<true | undefined> | undefined
  /** upstream locky's name for `extend`; also takes a single resource. */
  refresh(resources: unknown): Promise<true | undefined> | undefined
  /** The locker of each resource (as a string), or `null`, in input order. */
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

  on(event: 'lock', listener: (resource: any, locker: any) => void): this
  on(event: 'unlock' | 'extend', listener: (resource: any) => void): this
  on(event: 'expire', listener: (resource: string) => void): this
  on(event: 'error', listener: (err: Error) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once(event: 'lock', listener: (resource: any, locker: any) => void): this
  once(event: 'unlock' | 'extend', listener: (resource: any) => void): this
  once(event: 'expire', listener: (resource: string) => void): this
  once(event: 'error', listener: (err: Error) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
}

declare namespace Locky {
  /** A then-redis / node_redis `createClient` options object (only the address fields are read). */
  export interface RedisConnectionOptions {
    url?: string
    host?: string
    hostname?: string
    port?: number | string
    path?: string
    username?: string
    password?: string
    database?: number | string
    db?: number | string
    tls?: unknown
  }

  /**
   * Where Redis is: a `redis://`, `rediss://`, `redis+unix://` or `unix://`
   * URL, or an array of Redis Cluster node URLs; then-redis options; an
   * ioredis or node-redis client, single or cluster (only its options are
   * read, keylock never sends commands through it); or a function
   * returning one of these, called once. Default: `process.env.REDIS_URL`,
   * else `redis://127.0.0.1:6379`.
   */
  export type RedisOption =
    | string
    | readonly string[]
    | RedisConnectionOptions
    | object
    | (() => string | readonly string[] | RedisConnectionOptions | object)

  export interface LockyOptions {
    redis?: RedisOption
    /**
     * Lock TTL in milliseconds, kept only by `extend()`. `null`/`0` (default):
     * leases renewed while the process runs. keylock: from 50 to 2147483647
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
     * keylock: the lease length when `ttl` is null, renewed every third of it
     * (default 30000); from 50 to 2147483647, else a `RangeError` naming it.
     * @minimum 50
     * @maximum 2147483647
     */
    leaseTtl?: number
  }

  export interface LockItem {
    resource: unknown
    /** Stored as `String(locker)`; `'lock'` events pass the value given. */
    locker: unknown
  }

  export import LockLostError = AsyncLock.LockLostError
  export { Locky, LockyFormatter as Formatter }
}

export = Locky
