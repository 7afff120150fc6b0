// Types for `require('keyed-lock')`, the async-lock 1.5.0 face.
//
// Code written against @types/async-lock 1.4.2 compiles unchanged: the same
// `export =`, the same namespace merged with the class, the same names, the
// same literal-typed statics and the same two `acquire` overloads in the same
// order. Keys are widened to numbers, symbols and readonly arrays, which
// async-lock accepted at runtime but its types did not; widening a parameter
// never breaks a caller.

declare namespace AsyncLock {
  /**
   * One key: a string, a number or a symbol. Keys are compared as object
   * property names, as async-lock compares them: `1` and `'1'` are the same
   * key. Symbols are compared by identity.
   */
  type AsyncLockKey = string | number | symbol

  /**
   * A node-style callback.
   *
   * - Passed to a callback-style `fn` as `done`: call it once to release the
   *   lock, with a truthy `err` to fail the acquire or with `ret` as its
   *   result. Calls after the first are ignored.
   * - Passed to `acquire` as `cb`: called once, after the lock is released,
   *   with the task's error or its result.
   */
  type AsyncLockDoneCallback<T> = (err?: Error | null, ret?: T) => void

  /**
   * Options for `new AsyncLock(options)` and, all but `Promise`,
   * `domainReentrant`, `scope`, `name`, `redis`, `prefix` and `ttl`, for one
   * `acquire(…, options)` call.
   *
   * A per-call value is merged with the instance's with `||`, as in
   * async-lock: a per-call `0` cannot switch off a non-zero instance limit.
   * In a multi-key acquire each limit applies once to the whole request, not
   * once per key.
   */
  interface AsyncLockOptions {
    /**
     * How long a task may wait in the queue for its key(s), in milliseconds.
     * Default `0` (`AsyncLock.DEFAULT_TIMEOUT`): wait forever; any falsy value
     * means forever. At the limit the task leaves the queue without ever
     * running `fn`, frees its place (it no longer counts toward
     * `maxPending`), and the acquire fails with
     * `Error('async-lock timed out in queue <key>')`, naming the key it was
     * still waiting for. A grant that races the timeout wins: a task that was
     * handed the lock runs, and the lock is never lost. The timer starts only
     * when the task has to queue. Throws `TypeError` (code
     * `ERR_INVALID_ARG_VALUE`) for a negative or non-numeric value.
     *
     * On the Redis reach the timer runs in the native client and the task
     * leaves the queue in Redis, in one script that also checks for a grant:
     * a grant that races the timeout still wins. With Redis unreachable
     * mid-wait, the acquire rejects (with the timeout's error or the
     * connection's) within the timeout plus one 5 s command timeout; without
     * a timeout it waits for Redis to come back.
     */
    timeout?: number | undefined
    /**
     * How many tasks may wait on one key (not counting the one holding it).
     * Default `1000` (`AsyncLock.DEFAULT_MAX_PENDING`); `Infinity` for no
     * limit; `0` to refuse every task that would have to wait. At the limit a
     * new task is refused at once, before `fn` runs, with
     * `Error('Too many pending tasks in queue <key>')`: synchronously through
     * `cb`, or as an already rejected promise. `skipQueue` does not bypass
     * it. On the constructor, anything but `Infinity` or an integer ≥ 0 falls
     * back to the default, as in async-lock.
     *
     * On the Redis reach it counts the waiters of every process in the
     * key's queue in Redis.
     */
    maxPending?: number | undefined
    /**
     * How long a task may take from the `acquire()` call until it finishes
     * (waiting plus running), in milliseconds. Default `0`
     * (`AsyncLock.DEFAULT_MAX_OCCUPATION_TIME`): no limit. At the limit the
     * acquire fails with
     * `Error('Maximum occupation time is exceeded in queue <key>')`. A task
     * still waiting leaves the queue and never runs; a task already running
     * keeps its lock until `fn` finishes, so no two holders ever overlap.
     * Throws `TypeError` (code `ERR_INVALID_ARG_VALUE`) for a negative or
     * non-numeric value.
     *
     * On the Redis reach a task still waiting at the limit leaves the Redis
     * queue too; a grant that won the race is passed straight on without
     * running `fn`.
     */
    maxOccupationTime?: number | undefined
    /**
     * How long `fn` may run once it holds the lock, in milliseconds: a lease.
     * Default `0` (`AsyncLock.DEFAULT_MAX_EXECUTION_TIME`): no limit. At the
     * limit the acquire fails with
     * `Error('Maximum execution time is exceeded <key>')` and the key(s) pass
     * to the next waiter at once, as in async-lock, while `fn` may still be
     * running: from then on `fn` no longer holds the lock and can overlap the
     * next holder. Its late finish releases nothing (async-lock released a
     * second time then, freeing the key under whoever held it next). Throws
     * `TypeError` (code `ERR_INVALID_ARG_VALUE`) for a negative or
     * non-numeric value.
     */
    maxExecutionTime?: number | undefined
    /**
     * Constructor only. Let a task that runs in the same Node.js domain as
     * the current holder of its key(s) run at once, without queueing and
     * without taking the lock, so a nested acquire does not deadlock.
     * Default `false`. Throws `Error` from the constructor when
     * `process.domain` does not exist.
     *
     * Accepted and ignored on the Redis reach: a nested acquire of a key the
     * task holds waits for it, like any other.
     *
     * @example
     * import AsyncLock = require('keyed-lock')
     * import * as domain from 'domain'
     *
     * const lock = new AsyncLock({ domainReentrant: true })
     * domain.create().run(() => {
     *   lock.acquire('key', () => lock.acquire('key', () => 'nested'))
     * })
     */
    domainReentrant?: boolean | undefined
    /**
     * Per call only. Put this task at the front of the queue instead of the
     * back, so it runs as soon as the current holder releases. Default
     * `false`. Among several skippers the latest one runs first. It does
     * nothing on a free key and does not bypass `maxPending`.
     *
     * @example
     * lock.acquire(key, fn1, cb) // runs at once
     * lock.acquire(key, fn2, cb) // queued
     * lock.acquire(key, urgent, cb, { skipQueue: true }) // runs before fn2
     *
     * On the Redis reach the front is the front of the key's queue in
     * Redis, ahead of the waiters of every process.
     */
    skipQueue?: boolean | undefined
    /**
     * Constructor only; keyed-lock's addition (docs/semaphores.md). How many
     * permits each key admits: holders run together while their weights add
     * up to at most `permits`. `1` (the default) is the mutex, unchanged;
     * `Infinity` makes a read/write lock with unbounded shared holders. A
     * positive integer or `Infinity`, else `TypeError` (code
     * `ERR_INVALID_ARG_VALUE`) naming `permits`. Every reach counts permits:
     * with `scope: 'process'` they are shared by every thread that names the
     * space, and every thread must open it with the same `permits`; on Redis
     * the limit is kept in Redis, and a process naming another one for a key
     * somebody holds or waits for gets a `TypeError` naming `permits`. Above
     * 1 on a Redis quorum is a `TypeError` ("not supported ... yet").
     *
     * @example
     * const lock = new AsyncLock({ permits: 3 })
     * await lock.acquire('tenant-1', exportOne) // at most 3 at once per tenant
     */
    permits?: number | undefined
    /**
     * Per call only; keyed-lock's addition. How many of each key's `permits`
     * this call takes: a number (every key), or an array with one weight per
     * key, in the order of the keys. Default `1`. An integer from 1 to
     * `permits`, else `TypeError` (code `ERR_INVALID_ARG_VALUE`) naming
     * `weight`, thrown before anything is queued. Grants are strictly FIFO:
     * a heavy request at the head of a queue is never overtaken by lighter
     * ones behind it.
     */
    weight?: number | readonly number[] | undefined
    /**
     * Per call only; keyed-lock's addition. Read/write lock: `'exclusive'` takes
     * every permit of each key (runs alone; not with `weight`), `'shared'`
     * takes `weight` (default 1) and needs `permits` > 1. A waiting
     * exclusive call is not overtaken by later shared ones. Anything else is
     * a `TypeError` naming `mode`.
     *
     * @example
     * const rw = new AsyncLock({ permits: Infinity })
     * rw.acquire('doc', read, { mode: 'shared' })
     * rw.acquire('doc', write, { mode: 'exclusive' })
     */
    mode?: 'shared' | 'exclusive' | undefined
    /**
     * Constructor only. The Promise constructor used for the promises that
     * `acquire` returns (Bluebird, for instance). Default: the global
     * `Promise`; `null` and `undefined` also give it. Throws `TypeError`
     * (code `ERR_INVALID_ARG_VALUE`) unless it is a constructor that calls its
     * executor synchronously: for q, pass `Q.Promise`, not `Q`.
     */
    Promise?: unknown
    /**
     * Constructor only; keyed-lock's addition. Which threads share this lock's
     * keys. `'isolate'` (the default without `redis`): only this `AsyncLock`
     * instance. `'process'`: every `AsyncLock` in any worker thread of this
     * process that is created with the same `name`; FIFO holds across
     * threads, and a thread that exits, is terminated or throws gives up what
     * it held and what it waited for. `'redis'` (the default with `redis`,
     * and only allowed with it): every `AsyncLock` in any process that uses
     * the same Redis, `prefix` and `name`. Throws `TypeError` (code
     * `ERR_INVALID_ARG_VALUE`) for any other value, for `'redis'` without
     * `redis`, and for `'isolate'` or `'process'` with it.
     */
    scope?: 'isolate' | 'process' | 'redis' | undefined
    /**
     * Constructor only; keyed-lock's addition. With `scope: 'process'`, the name
     * of the process-wide lock space (required then: a non-empty string, or
     * the constructor throws `TypeError`, code `ERR_INVALID_ARG_VALUE`).
     * With `redis`, the namespace of this lock's keys in Redis (optional):
     * key `k` of the lock named `name` is the Redis lock `name:k` (stored
     * under `<prefix>:{name:k}`); without a name it is `k`. Locks in any
     * process with the same Redis, `prefix` and `name` share their keys.
     * A non-string throws `TypeError` (code `ERR_INVALID_ARG_VALUE`).
     * Ignored for `'isolate'`.
     */
    name?: string | undefined
    /**
     * Constructor only; keyed-lock's addition. A Redis URL: enables the Redis
     * reach (`scope: 'redis'`), where this lock's keys are shared by every
     * process that uses the same Redis, `prefix` and `name`. Forms:
     * `redis://[user:pass@]host:port[/db]`, `rediss://…` (TLS, see `tls`),
     * `redis+unix:///path/redis.sock` or `unix:///path/redis.sock`. An ACL
     * user and password in the URL authenticate every connection keyed-lock
     * opens; wrong ones fail the first call (code `KEYED_LOCK_REDIS`, the
     * message says `authentication failed`). Default: unset, no Redis. Not
     * contacted until the first `acquire`, `lock` or `isBusy`: an
     * unreachable Redis fails those (code `KEYED_LOCK_REDIS`, the message names
     * the URL, without its password). Throws `TypeError` (code
     * `ERR_INVALID_ARG_VALUE`) for an empty or non-string value or an
     * unparsable URL.
     *
     * An array of URLs is a Redis Cluster's seed nodes. There, every key of
     * one request must share a hash tag (`'{order:42}:items'` and
     * `'{order:42}:total'`, or a `name` with a tag such as `'{billing}'`):
     * a request whose keys hash to different slots rejects with a
     * `TypeError` naming the key, before any command is sent.
     *
     * A `RedisSentinelOptions` object, or a
     * `redis+sentinel://[user:pass@]host:port[,host:port…]/masterName[/db]`
     * URL (`rediss+sentinel://`: TLS to the sentinels and the master; the
     * credentials are the master's; a host without a port means 26379), is a
     * Sentinel-managed master: found through the sentinels and followed
     * across a failover. A
     * `RedisQuorumOptions` object is a quorum of independent masters (the
     * Redlock algorithm).
     */
    redis?: string | readonly string[] | RedisSentinelOptions | RedisQuorumOptions | undefined
    /**
     * Constructor only, Redis reach; keyed-lock's addition. TLS settings for a
     * `rediss://` URL, in the shape of Node's `tls.connect` options (and
     * ioredis's `tls`); `true` means TLS with the default trusted roots
     * (Mozilla's, as Node's). With `tls`, a `redis://` URL is upgraded to
     * `rediss://`; a unix socket URL throws `TypeError`. A certificate the
     * roots do not vouch for fails the first call (code `KEYED_LOCK_REDIS`, the
     * message says `TLS certificate verification failed`). Throws
     * `TypeError` (code `ERR_INVALID_ARG_VALUE`) naming the field for a
     * malformed value or a `tls.connect` option keyed-lock does not honour.
     */
    tls?: boolean | RedisTlsOptions | undefined
    /**
     * Constructor only, Redis reach; keyed-lock's addition. A grant counts
     * only once `WAIT` confirms that this many replicas have it (a number,
     * or `{ replicas, timeout }` with `timeout` in ms, default 1000). If
     * fewer confirm in time, the grant is released and the acquisition
     * rejects with an `Error` of code `KEYED_LOCK_REPLICAS`. Costs one EXTEND
     * and one WAIT per grant. Not on a Redis Cluster (`TypeError`). Default:
     * unset, no replica acknowledgement.
     */
    waitReplicas?: number | { replicas: number; timeout?: number | undefined } | undefined
    /**
     * Constructor only, Redis reach; keyed-lock's addition. The prefix of every
     * Redis key keyed-lock writes (leases, queues, fencing counters, the grant
     * channel). Default `'keyed-lock'`. Processes only share locks under the
     * same prefix. Throws `TypeError` (code `ERR_INVALID_ARG_VALUE`) unless
     * it is a non-empty string.
     */
    prefix?: string | undefined
    /**
     * Constructor only, Redis reach; keyed-lock's addition. How long a lease in
     * Redis lives without renewal, in milliseconds (rounded up). Default
     * `10000`. While its process lives, a watchdog on a native (tokio)
     * thread, not the JS event loop, renews every held lease every `ttl / 3`;
     * a holder that dies frees its keys within `ttl`. A lease whose renewal
     * is refused, or not confirmed before it would run out (`ttl` minus
     * 1% + 2 ms of drift, counted from the last confirmed renewal), is lost:
     * a `lock()` lease's `signal` aborts with a `LockLostError`.
     *
     * Bounds: from `50` to `2147483647` (2^31 − 1, 24.8 days). Below 50 ms a
     * renewal at `ttl / 3` has too little time left for its round trip under
     * the drift rule; above 2^31 − 1 no Node timer can hold the lease.
     * Throws `RangeError` (code `ERR_OUT_OF_RANGE`) naming `ttl` for a
     * number outside them, and `TypeError` (code `ERR_INVALID_ARG_VALUE`)
     * for anything but a finite number > 0.
     * @minimum 50
     * @maximum 2147483647
     */
    ttl?: number | undefined
  }

  /**
   * The `AbortSignal` of the environment's types (`@types/node` or the DOM
   * lib); where neither is loaded, the part of it keyed-lock uses. Resolved
   * this way so that these declarations compile without either.
   */
  type LeaseAbortSignal = typeof globalThis extends { AbortSignal: { prototype: infer S } } ? S : AbortSignalLike

  /**
   * TLS settings for the Redis reach (`tls` option), the fields of Node's
   * `tls.connect` options that keyed-lock honours.
   */
  interface RedisTlsOptions {
    /** PEM CA certificate(s) that replace the default trusted roots. */
    ca?: string | Uint8Array | ReadonlyArray<string | Uint8Array> | undefined
    /** PEM client certificate (chain), for mutual TLS; needs `key`. */
    cert?: string | Uint8Array | ReadonlyArray<string | Uint8Array> | undefined
    /** PEM private key of `cert`. Never shown in any message. */
    key?: string | Uint8Array | undefined
    /**
     * The name the server certificate must be valid for (also sent as SNI),
     * when it is not the URL's host: `rediss://127.0.0.1:6380` with
     * `servername: 'redis.example.com'`. A certificate not valid for it fails
     * the first call with `KEYED_LOCK_REDIS` (`TLS certificate verification
     * failed`). A single Redis only: on a Cluster or through Sentinel, where
     * the nodes' addresses come from the servers, it must equal the URL's host
     * (else `TypeError`). Default: the URL's host.
     */
    servername?: string | undefined
    /** `false` accepts any server certificate (testing only). Default `true`. */
    rejectUnauthorized?: boolean | undefined
  }

  /**
   * A Sentinel-managed master for the `redis` option: keyed-lock asks the
   * sentinels for the master's address (`SENTINEL get-master-addr-by-name`),
   * listens to their `+switch-master` announcements, and asks again when a
   * command fails as a dropped connection or `-READONLY`, moving to the new
   * master after a failover; acquisitions started during the switch wait
   * for it (within their `timeout`).
   */
  interface RedisSentinelOptions {
    /**
     * The sentinels: `redis://[user:pass@]host:port` URLs (credentials for
     * the sentinels themselves), `'host:port'`, or `{ host, port }`.
     */
    sentinels: ReadonlyArray<string | { host?: string | undefined; port?: number | undefined }>
    /** The master's name in the sentinels' configuration, e.g. `'mymaster'`. */
    name: string
    /** ACL user for the master. */
    username?: string | undefined
    /** Password for the master. Never shown in any message. */
    password?: string | undefined
    /** Database number on the master. Default 0. */
    db?: number | undefined
  }

  /**
   * Independent Redis masters for the `redis` option (the Redlock
   * algorithm): a lock is granted when a majority of them grant it within
   * `ttl - elapsed - drift` (drift: 1% of ttl + 2 ms); otherwise what a
   * minority granted is released and the attempt is retried after 50-150 ms
   * until the timeout. It is lost (`LockLostError`) once fewer than a
   * majority of its parts can be renewed. Not kept across masters: FIFO
   * order, the hand-off in the release, and strictly increasing fencing
   * tokens (a token is the largest of the granting masters', which are
   * server times in µs: increasing across masters only as far as their
   * clocks agree). Fewer than a majority reachable rejects with code
   * `KEYED_LOCK_REDIS`. `maxPending` and `skipQueue` do not apply (there is no
   * queue); `isBusy(key)` answers whether a majority hold it.
   */
  interface RedisQuorumOptions {
    /** At least 3 distinct URLs of independent masters (not replicas of one another). */
    quorum: readonly string[]
  }

  /** What keyed-lock reads of an `AbortSignal`, for projects whose types have none. */
  interface AbortSignalLike {
    /** Whether the signal has aborted: `lock()` rejects at once, queueing nothing. */
    readonly aborted: boolean
    /** What `lock()` rejects with when the signal aborts. */
    readonly reason: any
    /** Called once per waiting `lock()` call, with `{ once: true }`. */
    addEventListener(type: 'abort', listener: (event: any) => void, options?: { once?: boolean }): void
    /** Called when the wait ends otherwise (granted, timed out), so no listener is left behind. */
    removeEventListener(type: 'abort', listener: (event: any) => void): void
  }

  /** `Symbol.asyncDispose` where the project's types declare it (TS 5.2+ esnext.disposable, or `@types/node`). */
  type AsyncDisposeSymbol = SymbolConstructor extends { readonly asyncDispose: infer S extends symbol } ? S : never

  /**
   * `[Symbol.asyncDispose]()` where the project's types know the symbol (so
   * `await using` works there), and nothing elsewhere.
   */
  type LeaseAsyncDispose = { readonly [K in AsyncDisposeSymbol]: () => Promise<void> }

  /** Options for `lock.lock(key, options)`. */
  interface LockOptions {
    /**
     * How long to wait in the queue, in milliseconds. `0` or unset: the
     * lock's `timeout` option (which defaults to waiting forever);
     * `Infinity`: wait forever even if the lock has a timeout; at most
     * 2147483647 otherwise. At the limit the request leaves the queue and the
     * promise rejects with `Error('async-lock timed out in queue <key>')`,
     * naming the key it was still waiting for. Not counted on a free key: the
     * lease is granted at once. Anything else rejects with a `TypeError`
     * (code `ERR_INVALID_ARG_VALUE`) naming `options.timeout`.
     */
    timeout?: number | undefined
    /**
     * Cancels the wait. If it has aborted already, the promise rejects with
     * `signal.reason` at once and nothing is queued; if it aborts while the
     * request waits, the request leaves the queue and the promise rejects
     * with `signal.reason`. Once the lease is granted the signal is no longer
     * listened to. Anything but an `AbortSignal` rejects with a `TypeError`
     * (code `ERR_INVALID_ARG_VALUE`) naming `options.signal`.
     */
    signal?: LeaseAbortSignal | undefined
    /**
     * keyed-lock's counted keys (docs/semaphores.md): the permits this lease
     * takes of each key, as `acquire`'s `weight` option. Default `1`.
     */
    weight?: number | readonly number[] | undefined
    /** Read/write lock, as `acquire`'s `mode` option. */
    mode?: 'shared' | 'exclusive' | undefined
  }

  /**
   * A held lock on one or several keys, from `lock.lock()`. Nobody else holds
   * any of its keys until `release()`. Its fields are read-only.
   *
   * Not tied to a callback: hold it across awaits, hand it to other code,
   * release it from anywhere on this thread. A lease that is never released
   * holds its keys for as long as the lock space lives (on the process reach,
   * until its thread ends; on the Redis reach, until `close()` or until its
   * process dies and the lease's `ttl` runs out).
   */
  interface Lease extends LeaseAsyncDispose {
    /**
     * The keys held, normalized as `acquire()` normalizes them (numbers
     * become strings; symbols stay symbols), duplicates dropped, in the
     * order given.
     */
    readonly keys: readonly (string | symbol)[]
    /**
     * The fencing token: a safe integer that strictly increases with every
     * grant of each key, on every thread that shares the lock space. Send it
     * with writes so the storage can refuse a write from an older holder.
     * For several keys it is the largest of their tokens (see `tokens`).
     *
     * On the Redis reach it is issued by Redis in the granting script,
     * `max(last + 1, Redis server time in µs)`, so it strictly increases per
     * key across every process, and across a Redis restart that lost the
     * counter as long as the server clock did not go back. Tokens of
     * different reaches are not comparable.
     */
    readonly token: number
    /** The fencing token per key, in the order of `keys`. */
    readonly tokens: readonly number[]
    /**
     * Aborts, with a `LockLostError`, if the lease is lost: its keys were
     * taken from it by something other than `release()`. On the isolate and
     * process reaches that never happens (the lock's `maxOccupationTime` and
     * `maxExecutionTime` do not apply to leases), so it never aborts there.
     * On the Redis reach it aborts, once, when the watchdog finds the lease
     * gone from Redis (expired, deleted, or lost in a restart or failover)
     * or cannot confirm a renewal before the lease would run out (Redis
     * stalled or unreachable): at most about `ttl / 3` after a restart,
     * before the lease runs out when Redis stops answering.
     * `release()` does not abort it: it says "lost", not "ended".
     */
    readonly signal: LeaseAbortSignal
    /**
     * Gives the keys up and hands them to the next waiters, in FIFO order,
     * before it returns. Idempotent: the promise resolves `true` on the first
     * call and `false` on every later one. If starting the next waiter runs
     * code that throws synchronously (a callback-mode `acquire()`'s `cb`), the
     * keys are released all the same and the promise rejects with that error.
     *
     * On the Redis reach one script frees the keys and grants each to the
     * head of its queue; it resolves `false` if the lease had been lost
     * (nothing of the next holder's is touched), and rejects if Redis
     * cannot be reached (the lease then runs out within `ttl`, its watchdog
     * stopped).
     */
    release(): Promise<boolean>
  }

  /**
   * The reason `lease.signal` aborts with when a lease is lost
   * (`AsyncLock.LockLostError`, for `instanceof`). Only on the Redis reach;
   * never on the isolate and process reaches.
   */
  class LockLostError extends Error {
    /** Always `'LockLostError'`. */
    readonly name: 'LockLostError'
    /** Always `'ELOCKLOST'`, the code to test in an `'error'` listener or a catch. */
    readonly code: 'ELOCKLOST'
    /** The key whose lock was lost. */
    readonly key: string | symbol
    /** The lease's fencing token for that key. */
    readonly token: number
    /**
     * What detected the loss, if anything: on the Redis reach an `Error`
     * with code `KEYED_LOCK_LEASE_LOST` whose message names the Redis URL and
     * says whether Redis refused the renewal or none could be confirmed.
     */
    readonly cause: unknown
    /**
     * What the library throws when a lease is lost; exported for
     * `instanceof` checks and for tests that simulate a loss. The message
     * names the key and the token. Never throws.
     */
    constructor(key: string | symbol, token: number, cause?: unknown)
  }

  /** The reach a lock works on: its `scope`, or `'redis'` when the `redis` option is given. */
  type Reach = 'isolate' | 'process' | 'redis'

  /**
   * How an operation ends: `'granted'` (the keys were held; fn settled or
   * the lease was released), `'timeout'` (the wait passed `timeout` or
   * `maxOccupationTime`), `'refused'` (`maxPending` was full), `'aborted'`
   * (a lease's `signal` aborted while it waited), `'lost'` (a Redis lease
   * was found lost while held), `'error'` (fn failed, or the reach did).
   */
  type TraceOutcome = 'granted' | 'timeout' | 'refused' | 'aborted' | 'lost' | 'error'

  /**
   * The context object of one traced operation, published on the
   * `keyed-lock:acquire` (acquire()) and `keyed-lock:lock` (lock()) tracing
   * channels of `node:diagnostics_channel`: the same object for every event
   * of the operation, filled in as it goes. Built only while someone
   * subscribes. Every reach and mode publishes, in this order: `start` and
   * `end` around the call, then either `asyncStart` at the grant (with
   * `waitMs` and `token`) and `asyncEnd` when fn settles or the lease is
   * released (with `holdMs`; `error` first if fn failed), or `error` and
   * `asyncEnd` when it ended without a grant. Exactly one `asyncEnd` per
   * operation, last. Needs Node 18.19+ (`diagnostics_channel.tracingChannel`);
   * on older versions only the plain channels publish. Never contains a URL.
   */
  interface TraceContext {
    /** The normalized keys, in request order (a copy). */
    readonly keys: readonly (string | symbol)[]
    /** The lock's reach. */
    readonly reach: Reach
    /** `'promise'` or `'callback'` for acquire(), `'lease'` for lock(). */
    readonly mode: 'promise' | 'callback' | 'lease'
    /** The lock's `name` option, if it has one. */
    readonly name?: string
    /** Milliseconds from the call to the grant (or to the end, without one). Set at `asyncStart` / `error`. */
    waitMs?: number
    /** Milliseconds from the grant to the release. Set at `asyncEnd` of a granted operation. */
    holdMs?: number
    /** How the operation went so far; final at `asyncEnd`. */
    outcome?: TraceOutcome
    /** The grant's fencing token (the largest of its keys'). Set at `asyncStart`. */
    token?: number
    /** fn's failure, or why no grant came (timeout, refusal, abort reason, the reach's error). */
    error?: unknown
  }

  /**
   * Published on the plain `keyed-lock:release` channel when a grant's keys
   * are given back (fn settled, or `lease.release()`), only for operations
   * that started while someone subscribed to a keyed-lock channel.
   */
  interface ReleaseMessage {
    /** The operation's keys, as in its {@link TraceContext}. */
    readonly keys: readonly (string | symbol)[]
    /** The lock's reach. */
    readonly reach: Reach
    /** The operation's mode, as in its {@link TraceContext}. */
    readonly mode: 'promise' | 'callback' | 'lease'
    /** The lock's `name` option, if it has one. */
    readonly name?: string
    /** The grant's fencing token. */
    readonly token?: number
    /** Milliseconds the keys were held. */
    readonly holdMs: number
    /** Whether a waiter got the keys next; `undefined` where the reach does not say (Redis, leases). */
    readonly handedOff?: boolean
  }

  /**
   * Published on the plain `keyed-lock:lease:lost` channel when a held lease
   * is found lost (Redis only: it expired, or its key was deleted), before
   * `lease.signal` aborts.
   */
  interface LeaseLostMessage {
    /** Every key of the lease. */
    readonly keys: readonly (string | symbol)[]
    /** The key reported lost. */
    readonly key: string | symbol
    /** That key's fencing token. */
    readonly token: number
    /** The lock's reach (`'redis'`). */
    readonly reach: Reach
    /** The lock's `name` option, if it has one. */
    readonly name?: string
    /** What detected the loss (an Error with code `KEYED_LOCK_LEASE_LOST`). */
    readonly cause: unknown
  }

  /** One busy key in {@link LockStats.keys}. */
  interface BusyKey {
    /** The key (its normalized form). */
    readonly key: string | symbol
    /** Holders of the key (1: the lock is exclusive). */
    readonly holders: number
    /** Calls waiting for it. */
    readonly waiters: number
  }

  /**
   * Wait-time percentiles since the lock was made, in milliseconds, from a
   * fixed 64-bucket log-linear histogram (two buckets per power of two of
   * microseconds): each percentile is its bucket's upper bound (at most
   * `max`), so it errs high by under 50%. A grant that never queued counts
   * as 0.
   */
  interface WaitPercentiles {
    /** Grants recorded. */
    readonly count: number
    /** Half the waits were at most this. */
    readonly p50: number
    /** 90% of the waits were at most this. */
    readonly p90: number
    /** 99% of the waits were at most this. */
    readonly p99: number
    /** 99.9% of the waits were at most this. */
    readonly p999: number
    /** The longest wait, exact. */
    readonly max: number
  }

  /**
   * What {@link AsyncLock.stats} returns: this lock's counters since it was
   * made and its space's current state. Counters are this AsyncLock's own
   * calls (acquire() and lock()); `keys` is the space's state as this
   * process sees it (on Redis: this process's calls only, not the other
   * processes').
   */
  interface LockStats {
    /** The lock's reach. */
    readonly reach: Reach
    /** The lock's `name` option, if it has one. */
    readonly name?: string
    /** Whose view the state is: the isolate, this process's threads, or this process (Redis). */
    readonly view: 'isolate' | 'process'
    /** Grants (fn ran, or a lease was handed out). */
    readonly acquisitions: number
    /** Waits that ended by `timeout` or `maxOccupationTime`. */
    readonly timeouts: number
    /** Calls refused by a full queue (`maxPending`). */
    readonly refusals: number
    /** lock() calls whose signal aborted (before or while waiting). */
    readonly aborts: number
    /** Leases found lost while held (Redis). */
    readonly lost: number
    /** fn failures, executions past `maxExecutionTime`, and failures of the reach. */
    readonly errors: number
    /** Grants of this lock held now. */
    readonly holding: number
    /** Keys held or waited on in the space, in all. */
    readonly busyKeys: number
    /** Waiters on all those keys. */
    readonly waiting: number
    /** Wait-time percentiles since the lock was made. */
    readonly wait: WaitPercentiles
    /** The busiest keys, most waiters first, at most `top` of them. */
    readonly keys: readonly BusyKey[]
  }

  /** Options of {@link AsyncLock.stats}. */
  interface StatsOptions {
    /** How many busy keys to list, most waiters first (default 10). */
    top?: number
  }
}

/**
 * Keyed FIFO locks: run a function while holding one key, or several keys at
 * once, so that tasks on the same key never overlap (unless a
 * `maxExecutionTime` lease runs out). The async-lock 1.5.0 API, with the
 * queues in a Rust core.
 *
 * Guarantees:
 * - **FIFO per key.** Tasks on a key run in the order `acquire` was called;
 *   a release hands the lock straight to the next waiter, nobody barges in.
 *   `skipQueue` is the only way to the front.
 * - **A free key runs `fn` synchronously,** inside the `acquire()` call.
 * - **Multi-key requests are all-or-nothing and cannot deadlock.** A request
 *   for several keys waits without holding any of them and runs when it
 *   heads the queue of every key; two requests that share keys are ordered
 *   the same way on each of them, whatever order their keys are listed in.
 * - **A timed-out or refused task never runs and never takes a lock from
 *   anyone.**
 *
 * **On the Redis reach** (`new AsyncLock({ redis: url, name })`) the queues
 * live in Redis and are shared by every process using the same Redis,
 * `prefix` and `name`. FIFO is by a server-side ticket; a release grants the
 * next waiter inside its own Redis script (two client commands per contended
 * acquisition, no polling); multi-key requests join every queue with one
 * ticket, so they cannot deadlock. What differs from the in-process reaches:
 * - `fn` never runs synchronously inside `acquire()`: even a free key takes
 *   a round trip.
 * - `timeout`, `maxPending` and `skipQueue` are decided in Redis, across
 *   processes; a queued task past `maxOccupationTime` leaves the Redis
 *   queue, as it leaves an in-process one.
 * - `isBusy(key)` asks Redis (one synchronous round trip) and answers for
 *   every process; `isBusy()` without a key and `queues` count this process's
 *   tasks only.
 * - Keys must be strings or numbers (anything else `String()` converts, for
 *   `acquire()`); a symbol is a `TypeError`.
 * - `domainReentrant` is accepted and ignored.
 * - `close()` releases the leases still held and closes the connection
 *   (shared by this thread's locks with the same URL and `prefix`: the last
 *   `close()` does it).
 * - A single Redis gives efficiency-grade exclusion: after a Redis restart
 *   without persistence, or a failover to a replica that missed the write,
 *   a second holder can be granted before the first learns, within
 *   `ttl / 3`, that it lost its lease. Use `lock()` and its fencing token
 *   where that matters; `acquire()`'s `fn` gets neither a token nor a lost
 *   signal.
 *
 * @example
 * import AsyncLock = require('keyed-lock')
 * const lock = new AsyncLock({ timeout: 5000 })
 * const balance = await lock.acquire('account:42', async () => {
 *   return readModifyWrite()
 * })
 *
 * @example
 * // every process that runs this shares the keys of lock 'billing'
 * const shared = new AsyncLock({ redis: 'redis://127.0.0.1:6379', name: 'billing', timeout: 5000 })
 * await shared.acquire('account:42', () => readModifyWrite())
 */
declare class AsyncLock {
  /** Default `timeout`, read at construction time: `0`, wait forever. Writable at runtime, as in async-lock. */
  static readonly DEFAULT_TIMEOUT: 0
  /** Default `maxOccupationTime`, read at construction time: `0`, no limit. */
  static readonly DEFAULT_MAX_OCCUPATION_TIME: 0
  /** Default `maxExecutionTime`, read at construction time: `0`, no limit. */
  static readonly DEFAULT_MAX_EXECUTION_TIME: 0
  /** Default `maxPending`, read at construction time: `1000` waiters per key. */
  static readonly DEFAULT_MAX_PENDING: 1000

  /**
   * A new, empty lock space: keys of one instance are unrelated to keys of
   * another. Not so with `scope: 'process'` (keys shared with every lock of
   * the same `name` in this process) or `redis` (keys shared with every lock
   * of the same Redis, `prefix` and `name`, in any process). With `redis` it
   * does not connect yet: the first `acquire`, `lock` or `isBusy` does.
   *
   * @throws TypeError (code `ERR_INVALID_ARG_VALUE`) when `timeout`,
   * `maxOccupationTime` or `maxExecutionTime` is negative or not a number,
   * `Promise` is not a usable Promise constructor, `scope` is not
   * `'isolate'`, `'process'` or `'redis'`, `scope` is `'process'` without a
   * `name`, `scope` is `'redis'` without `redis` (or `'isolate'` or
   * `'process'` with it), `redis` is not a Redis URL, `prefix` is not a
   * non-empty string, `ttl` is not a finite number > 0, or `name` is not a
   * string on the Redis reach. The message never quotes a password: a URL
   * is shown redacted.
   * @throws RangeError (code `ERR_OUT_OF_RANGE`) when `ttl` is outside
   * 50..2147483647 ms.
   * @throws Error when `domainReentrant` is set and `process.domain` does not
   * exist.
   */
  constructor(options?: AsyncLock.AsyncLockOptions)

  /**
   * Runs `fn` while holding `key` (or every key of an array, all at once)
   * and returns a promise of its result. The lock is released when `fn`'s
   * returned promise settles, or, for a callback-style `fn`, when it calls
   * `done`.
   *
   * How `fn` is called depends on its declared parameter count
   * (`fn.length`): exactly one parameter means callback style, `fn(done)`,
   * and the lock is held until `done` is called (an `async (done) => …`
   * function is callback style too); anything else means promise style,
   * `fn()`, and the lock is held until its result settles.
   *
   * The promise rejects with `fn`'s error, or with one of the library
   * errors: `async-lock timed out in queue <key>` (`timeout`),
   * `Too many pending tasks in queue <key>` (`maxPending`),
   * `Maximum occupation time is exceeded in queue <key>`
   * (`maxOccupationTime`), `Maximum execution time is exceeded <key>`
   * (`maxExecutionTime`). As in async-lock, a falsy rejection reason
   * resolves it with `undefined`.
   *
   * On the Redis reach `fn` is never called inside `acquire()`, even for a
   * free key: the grant comes back from Redis. The promise also rejects
   * with an `Error` with code `KEYED_LOCK_REDIS` naming the URL when Redis
   * cannot be reached, and `KEYED_LOCK_CLOSED` after `close()`. A symbol key
   * throws `TypeError` (code `ERR_INVALID_ARG_VALUE`). The watchdog keeps
   * the key(s) while `fn` runs; `fn` is not told if they are lost (use
   * `lock()` for a fencing token and a lost signal).
   *
   * @param key the key, or an array of keys taken together (duplicates by
   *   string form are dropped; an empty array takes no lock and runs `fn` at
   *   once).
   * @param fn the work to run under the lock.
   * @param opts per-call options (not the constructor-only ones).
   * @throws Error `You must pass a function to execute` synchronously when
   *   `fn` is not a function and `key` is not an array (for an array the
   *   promise rejects with it instead).
   * @throws TypeError (code `ERR_INVALID_ARG_VALUE`) for an invalid time
   *   option, or a key whose `String()` form throws.
   *
   * @example
   * const value = await lock.acquire('key', async () => {
   *   return await work()
   * })
   */
  acquire<T>(
    key: AsyncLock.AsyncLockKey | readonly AsyncLock.AsyncLockKey[],
    fn: (() => T | PromiseLike<T>) | ((done: AsyncLock.AsyncLockDoneCallback<T>) => any),
    opts?: AsyncLock.AsyncLockOptions,
  ): Promise<T>
  /**
   * Runs `fn` while holding `key` (or every key of an array, all at once)
   * and reports through `cb`; returns nothing.
   *
   * `cb(err, ret)` is called once, synchronously inside the release, after
   * the lock is released and before the next waiter's `fn` starts. It gets
   * `fn`'s error or result, or one of the library errors listed on the
   * promise overload. A refused task (`maxPending`) calls `cb` before
   * `acquire` returns.
   *
   * On the Redis reach `fn` never runs and `cb` is never called inside
   * `acquire()`: every answer, a refusal too, comes back from Redis. A
   * symbol key throws `TypeError`.
   *
   * @param key the key, or an array of keys taken together.
   * @param fn the work, `fn(done)`: call `done(err, ret)` once to release.
   * @param cb told the outcome once the lock is released.
   * @param opts per-call options (not the constructor-only ones).
   * @throws Error `You must pass a function to execute` synchronously when
   *   `fn` is not a function.
   * @throws TypeError (code `ERR_INVALID_ARG_VALUE`) for an invalid time
   *   option, or a key whose `String()` form throws.
   *
   * @example
   * lock.acquire('key', (done) => {
   *   fs.writeFile(path, data, (err) => done(err, path))
   * }, (err, ret) => {
   *   // the lock is already released here
   * })
   */
  acquire<T>(
    key: AsyncLock.AsyncLockKey | readonly AsyncLock.AsyncLockKey[],
    fn: (done: AsyncLock.AsyncLockDoneCallback<T>) => any,
    cb: AsyncLock.AsyncLockDoneCallback<T>,
    opts?: AsyncLock.AsyncLockOptions,
  ): void

  /**
   * Whether `key` is held or waited on; without a key, whether any key of
   * this lock is. As in async-lock, a falsy key (`0`, `''`) is treated as no
   * key. Never throws for a string, number or symbol, except on the Redis
   * reach.
   *
   * On the Redis reach `isBusy(key)` makes one synchronous round trip to
   * Redis (blocking this thread meanwhile) and answers for every process:
   * held or waited on by anyone. It throws an `Error` with code
   * `KEYED_LOCK_REDIS` when Redis cannot be reached or does not answer within 2 s
   * (the thread waits no longer), `KEYED_LOCK_CLOSED` after `close()`, and `TypeError` for a
   * symbol. `isBusy()` without a key (and a falsy key) answers for this
   * process only, without a round trip.
   */
  isBusy(key?: AsyncLock.AsyncLockKey): boolean

  /**
   * keyed-lock's lease API: waits for `key` (or every key of an array, all at
   * once) and resolves with a `Lease` that holds it until `lease.release()`.
   *
   * Leases wait in the same queues as `acquire()`: FIFO per key with
   * `acquire()` callers, multi-key requests all-or-nothing and
   * deadlock-free, the lock's `maxPending` applies. The lock's
   * `maxOccupationTime`, `maxExecutionTime` and `domainReentrant` do not
   * (they are about `acquire()`'s `fn`); there is no `skipQueue`.
   *
   * The promise is always a native `Promise`, whatever the lock's `Promise`
   * option. It never throws; it rejects with:
   * - `Error('async-lock timed out in queue <key>')` when `options.timeout`
   *   (or the lock's `timeout`) runs out;
   * - `Error('Too many pending tasks in queue <key>')` at once when a key
   *   already has `maxPending` waiters;
   * - `options.signal.reason` when the signal has aborted or aborts while
   *   waiting;
   * - `TypeError` (code `ERR_INVALID_ARG_VALUE`) naming `key`, `key[i]`,
   *   `options`, `options.timeout` or `options.signal` for bad arguments.
   *
   * Once it has rejected, the caller holds nothing: a grant that raced the
   * timeout or abort is passed straight on to the next waiter, never lost.
   *
   * On the Redis reach the queues, `maxPending` and the FIFO order are
   * Redis's, shared with every process; a grant that races the timeout
   * wins (the promise resolves with the lease), one that races an abort is
   * passed on. The lease is renewed by the watchdog every `ttl / 3` and its
   * `signal` aborts with a `LockLostError` if it is lost. It also rejects
   * with an `Error` with code `KEYED_LOCK_REDIS` naming the URL when Redis
   * cannot be reached, `KEYED_LOCK_CLOSED` after `close()`, and a `TypeError`
   * for a symbol key.
   *
   * @param key the key, or a non-empty array of keys taken together
   *   (duplicates by string form are dropped). Stricter than `acquire()`:
   *   only strings, numbers and symbols (on the Redis reach: strings and
   *   numbers).
   *
   * @example
   * await using lease = await lock.lock('account:42', { timeout: 5000 })
   * await db.write('account:42', value, { fencingToken: lease.token })
   * // released at the end of the block
   *
   * @example
   * const lease = await lock.lock(['from', 'to'], { signal: AbortSignal.timeout(1000) })
   * try {
   *   await transfer()
   * } finally {
   *   await lease.release()
   * }
   */
  lock(key: AsyncLock.AsyncLockKey | readonly AsyncLock.AsyncLockKey[], options?: AsyncLock.LockOptions): Promise<AsyncLock.Lease>

  /**
   * Lets go of what the lock's space holds outside this thread. On the
   * isolate and process reaches there is nothing of the kind: it resolves at
   * once, takes nothing from holders or waiters, and the lock stays usable.
   *
   * On the Redis reach the locks of one thread with the same `redis` URL
   * and `prefix` share one connection. Closing a lock ends its own waits
   * still pending with `KEYED_LOCK_CLOSED` (a grant that raced the close is
   * passed straight on), and from then on its calls reject (`isBusy`
   * throws) with `KEYED_LOCK_CLOSED`, even while other locks still share the
   * connection. Closing the last of them also releases every lease still
   * held through it (handing the keys to the next waiters) and closes the
   * connection; closing any other only gives up its share: its leases stay
   * held, and renewed, until released or until the last one closes.
   * Idempotent.
   */
  close(): Promise<void>

  /**
   * Counters and current state of this lock, for a metrics exporter or a
   * debugging session: grants, timeouts, refusals, aborts, lost leases,
   * errors, grants held now, wait-time percentiles since creation, and the
   * busiest keys (most waiters first, at most `options.top`, default 10).
   * Cheap enough to call every second: the counters are kept as calls go
   * (a fixed-size histogram, never a growing array), and only the busy keys
   * are read and sorted here. On the Redis reach it is this process's view.
   * Throws a `TypeError` naming `options` or `options.top` for bad options.
   *
   * @example
   * setInterval(() => {
   *   const { wait, keys } = lock.stats({ top: 5 })
   *   console.log(`p99 wait ${wait.p99} ms`, keys)
   * }, 1000).unref()
   */
  stats(options?: AsyncLock.StatsOptions): AsyncLock.LockStats
}

export = AsyncLock
