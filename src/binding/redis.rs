//! N-API layer of the Redis reach: forwards to [`crate::redis`].
//!
//! A client is a handle (an index into a process-wide registry), so the
//! async calls can be free functions that own an `Arc` while their future
//! runs on napi's tokio runtime. Crossing costs do not matter here: every
//! call is a Redis round trip (about 100 µs), not a 20 ns decision.
//!
//! Lost leases are reported through one weak ThreadsafeFunction per client:
//! a lease alone does not keep the event loop alive (an `acquire` still in
//! flight does, through its promise).
//!
//! Errors, thrown or rejected, go through `binding::to_napi_error`: a
//! rejection is built on the JS thread ([`promise`]) because napi's own
//! async bridge would give every rejection the code `GenericFailure`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use parking_lot::Mutex;
use redis::Value;

use super::{napi_failure, to_napi_error, Code};
use crate::core::{Coded, Outcome};
use crate::redis::{
  AcquireOptions, Acquired, ConnOptions, Counted, Mode, RedisLock, RedisLockError, SentinelOptions,
  TlsOptions,
};

#[napi(object)]
pub struct NativeLostEvent {
  pub lease: u32,
  pub reason: String,
}

/// TLS settings for `rediss://` (validated and turned into buffers by
/// `lib/redis/options.js`): PEM bytes, as Node's `tls.connect` takes them.
#[napi(object)]
pub struct NativeTlsOptions {
  pub ca: Option<Buffer>,
  pub cert: Option<Buffer>,
  pub key: Option<Buffer>,
  pub reject_unauthorized: bool,
  /// The name the certificate must be valid for, when it is not the URL's host.
  pub servername: Option<String>,
}

/// A Sentinel-managed master: its name, and a URL giving the scheme,
/// credentials and db to reach it with (its host and port are replaced by
/// what the sentinels say).
#[napi(object)]
pub struct NativeSentinelOptions {
  pub name: String,
  pub master_url: String,
}

#[napi(object)]
pub struct NativeConnOptions {
  pub tls: Option<NativeTlsOptions>,
  /// With this, `urls` are the sentinels'.
  pub sentinel: Option<NativeSentinelOptions>,
}

impl From<NativeConnOptions> for ConnOptions {
  fn from(o: NativeConnOptions) -> Self {
    ConnOptions {
      tls: o.tls.map(|t| TlsOptions {
        ca: t.ca.map(|b| b.to_vec()),
        cert: t.cert.map(|b| b.to_vec()),
        key: t.key.map(|b| b.to_vec()),
        reject_unauthorized: t.reject_unauthorized,
        servername: t.servername,
      }),
      sentinel: o.sentinel.map(|s| SentinelOptions {
        name: s.name,
        master_url: s.master_url,
      }),
    }
  }
}

/// napi's tokio runtime, which only the Redis reach uses, with one worker
/// thread instead of one per core. Its tasks only wait for Redis: one
/// thread keeps a call's tasks (the caller's, the dispatcher, the
/// connection's reader and writer) on one thread, where a second worker
/// is woken now and then for nothing. Measured on 2 cores: 8.6 voluntary
/// context switches per uncontended acquire + release with two workers,
/// 6.4 with one (`process.resourceUsage()` around a loop of them).
#[napi_derive::module_init]
fn one_worker_runtime() {
  let runtime = tokio::runtime::Builder::new_multi_thread()
    .worker_threads(1)
    .thread_name("keyed-lock-redis")
    .enable_all()
    .build();
  // Without it napi builds its default runtime: slower, not wrong.
  if let Ok(runtime) = runtime {
    napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
  }
}

type LostCallback =
  ThreadsafeFunction<NativeLostEvent, Unknown<'static>, NativeLostEvent, Status, false, true>;

static CLIENTS: Mutex<Vec<Option<RedisLock>>> = Mutex::new(Vec::new());

fn client(handle: u32) -> std::result::Result<RedisLock, RedisLockError> {
  CLIENTS
    .lock()
    .get(handle as usize)
    .and_then(|c| c.clone())
    .ok_or(RedisLockError::Closed)
}

impl From<RedisLockError> for Error<Code> {
  fn from(e: RedisLockError) -> Self {
    to_napi_error(&e)
  }
}

/// A promise settled by `work`: its value, or a rejection through the one
/// error mapping (with `keyIndex` when the error names a key).
fn promise<T, F>(env: &Env, work: F) -> Result<PromiseRaw<'_, T>, Code>
where
  T: ToNapiValue + Send + 'static,
  F: Future<Output = std::result::Result<T, RedisLockError>> + Send + 'static,
{
  env
    .spawn_future_with_callback(async move { Ok(work.await) }, |env, settled| {
      settled.map_err(|e| rejection(env, &e))
    })
    .map_err(napi_failure)
}

/// The JS error for `e`, made here on the JS thread so that napi rejects
/// with it as it is.
fn rejection(env: &Env, e: &RedisLockError) -> Error {
  let raw = JsError::from(to_napi_error(e)).into_unknown(Env::from_raw(env.raw()));
  let mut error = Object::from_raw(env.raw(), raw.raw());
  if let Some(i) = e.key_index() {
    // Best effort: the error stands without it.
    let _ = error.set_named_property("keyIndex", i as u32);
  }
  Error::from(raw)
}

/// Opens a client under `prefix` (no I/O yet: it connects on the first
/// command): for the Redis at `urls[0]`, or, with `cluster`, for the Redis
/// Cluster whose seed nodes are `urls`. `onLost` is called with
/// `{ lease, reason }` once per lease the watchdog could not keep;
/// `options` carries what a URL cannot say (TLS certificates).
#[napi(
  catch_unwind,
  js_name = "redisOpen",
  ts_args_type = "urls: string[], cluster: boolean, prefix: string, onLost: (event: NativeLostEvent) => void, options?: NativeConnOptions"
)]
pub fn redis_open(
  env: &Env,
  urls: Vec<String>,
  cluster: bool,
  prefix: String,
  on_lost: LostCallback,
  options: Option<NativeConnOptions>,
) -> Result<u32, Code> {
  let opts: ConnOptions = options.map(Into::into).unwrap_or_default();
  let on_lost = Arc::new(on_lost);
  let report: crate::redis::LostFn = Box::new(move |lease, reason| {
    // `Closing`: the env is going away and nobody is left to tell.
    let _ = on_lost.call(
      NativeLostEvent { lease, reason },
      ThreadsafeFunctionCallMode::NonBlocking,
    );
  });
  let lock = if opts.sentinel.is_some() {
    RedisLock::new_sentinel(&urls, &prefix, &opts, report)
  } else if cluster {
    RedisLock::new_cluster_with(&urls, &prefix, &opts, report)
  } else {
    let url = urls.first().map(String::as_str).unwrap_or("");
    RedisLock::new_with(url, &prefix, &opts, report)
  }?;
  let handle = {
    let mut clients = CLIENTS.lock();
    clients.push(Some(lock));
    (clients.len() - 1) as u32
  };
  // A process (or worker) that ends while holding leases frees them now,
  // not a ttl later: best effort, bounded so a dead Redis cannot hold the
  // exit up.
  env
    .add_env_cleanup_hook(handle, close_at_exit)
    .map_err(napi_failure)?;
  Ok(handle)
}

const EXIT_GRACE: Duration = Duration::from_millis(500);

/// For the `exit` event (process.exit() runs no env cleanup hook): frees
/// the client's leases now, waiting at most half a second.
#[napi(catch_unwind, js_name = "redisCloseAtExit")]
pub fn redis_close_at_exit(handle: u32) {
  close_at_exit(handle);
}

fn close_at_exit(handle: u32) {
  let lock = CLIENTS
    .lock()
    .get_mut(handle as usize)
    .and_then(Option::take);
  let Some(lock) = lock else { return };
  // Nothing held and no given-up request still being cancelled: nothing
  // would be left in Redis.
  if lock.held() == 0 && lock.cleaning_up() == 0 {
    return;
  }
  // The runtime may already be shutting down with the env: then there is
  // nothing to do but let the leases run out.
  let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    napi::bindgen_prelude::block_on(async move {
      let _ = tokio::time::timeout(EXIT_GRACE, lock.close()).await;
    })
  }));
}

#[napi(object)]
pub struct NativeAcquireOptions {
  pub ttl: f64,
  /// ms; 0 waits for ever
  pub timeout: f64,
  /// 0 try, 1 wait, 2 force
  pub mode: u32,
  /// -1: no limit
  pub max_pending: i64,
  pub skip_queue: bool,
  pub owner: String,
  pub watchdog: bool,
  /// The lock space of the names (an AsyncLock's `name`); none: ""
  pub space: Option<String>,
  /// A counted lock's limit (docs/semaphores.md); none: the mutex
  pub permits: Option<u32>,
  /// With `permits`: the permits taken of each name, in order
  pub weights: Option<Vec<u32>>,
}

#[napi(object)]
pub struct NativeAcquired {
  /// GRANTED, BUSY, REJECTED or TIMED_OUT (`outcomeCodes()`)
  pub outcome: i32,
  pub lease: u32,
  pub tokens: Vec<f64>,
  /// rejected: index of the full queue's name
  pub index: i64,
  /// busy: the holder's owner string
  pub holder: Option<String>,
  /// busy: the holder's lease ms left
  pub pttl: f64,
  /// rejected because name `index` is held or waited for with another
  /// limit: that limit (nothing was queued)
  pub permits: Option<f64>,
}

fn ms(v: f64) -> Duration {
  Duration::from_millis(if v.is_finite() && v > 0.0 {
    v as u64
  } else {
    0
  })
}

/// Not an `async fn`: the acquisition is started here, on the calling
/// thread, so calls made one after another reach Redis in that order (see
/// `RedisLock::start_acquire`); the promise settles when it is decided.
#[napi(
  catch_unwind,
  js_name = "redisAcquire",
  ts_return_type = "Promise<NativeAcquired>"
)]
pub fn redis_acquire(
  env: &Env,
  handle: u32,
  request: u32,
  names: Vec<String>,
  opts: NativeAcquireOptions,
) -> Result<PromiseRaw<'_, NativeAcquired>, Code> {
  let lock = client(handle)?;
  let mode = match opts.mode {
    0 => Mode::Try,
    2 => Mode::Force,
    _ => Mode::Wait,
  };
  let options = AcquireOptions {
    ttl: ms(opts.ttl).max(Duration::from_millis(1)),
    // 0, negative or Infinity: no limit.
    timeout: (opts.timeout.is_finite() && opts.timeout > 0.0).then(|| ms(opts.timeout)),
    mode,
    max_pending: u32::try_from(opts.max_pending).ok(),
    skip_queue: opts.skip_queue,
    owner: opts.owner,
    watchdog: opts.watchdog,
    space: opts.space.unwrap_or_default(),
    counted: opts.permits.map(|permits| Counted {
      permits,
      weights: opts.weights.unwrap_or_else(|| vec![1; names.len()]),
    }),
  };
  let started = lock.start_acquire(request, names, options);
  promise(env, async move { started.await.map(native_acquired) })
}

fn native_acquired(acquired: Acquired) -> NativeAcquired {
  let mut out = NativeAcquired {
    outcome: Outcome::Granted.code(),
    lease: 0,
    tokens: Vec::new(),
    index: -1,
    holder: None,
    pttl: -2.0,
    permits: None,
  };
  match acquired {
    Acquired::Granted { lease, tokens } => {
      out.lease = lease;
      out.tokens = tokens;
    }
    Acquired::Busy { holder, pttl } => {
      out.outcome = Outcome::Busy.code();
      out.holder = holder;
      out.pttl = pttl as f64;
    }
    Acquired::Rejected { index } => {
      out.outcome = Outcome::Rejected.code();
      out.index = index as i64;
    }
    Acquired::TimedOut => out.outcome = Outcome::TimedOut.code(),
    Acquired::OtherLimit { index, permits } => {
      out.outcome = Outcome::Rejected.code();
      out.index = index as i64;
      out.permits = Some(permits as f64);
    }
  }
  out
}

/// Makes the acquisition `request` leave its queues (see `RedisLock::abort`).
#[napi(catch_unwind, js_name = "redisAbort")]
pub fn redis_abort(handle: u32, request: u32) -> Result<(), Code> {
  client(handle)?.abort(request);
  Ok(())
}

#[napi(
  catch_unwind,
  js_name = "redisRelease",
  ts_return_type = "Promise<boolean>"
)]
pub fn redis_release(env: &Env, handle: u32, lease: u32) -> Result<PromiseRaw<'_, bool>, Code> {
  let lock = client(handle);
  promise(env, async move { lock?.release(lease).await })
}

#[napi(
  catch_unwind,
  js_name = "redisExtend",
  ts_return_type = "Promise<boolean>"
)]
pub fn redis_extend(
  env: &Env,
  handle: u32,
  lease: u32,
  ttl: f64,
) -> Result<PromiseRaw<'_, bool>, Code> {
  let lock = client(handle);
  promise(env, async move { lock?.extend(lease, ms(ttl)).await })
}

#[napi(object)]
pub struct NativeInspected {
  pub owner: Option<String>,
  pub pttl: f64,
  pub waiters: f64,
}

#[napi(
  catch_unwind,
  js_name = "redisInspect",
  ts_return_type = "Promise<NativeInspected>"
)]
pub fn redis_inspect(
  env: &Env,
  handle: u32,
  name: String,
  space: Option<String>,
) -> Result<PromiseRaw<'_, NativeInspected>, Code> {
  let lock = client(handle);
  let space = space.unwrap_or_default();
  promise(env, async move {
    let found = lock?.inspect(&space, &name).await?;
    Ok(NativeInspected {
      owner: found.owner,
      pttl: found.pttl as f64,
      waiters: found.waiters as f64,
    })
  })
}

/// How long `isBusy` may hold the JS thread waiting for Redis.
const IS_BUSY_WAIT: Duration = Duration::from_millis(2000);

/// Synchronous, for async-lock's `isBusy`: one round trip, on the runtime,
/// while this thread waits for its answer, for at most [`IS_BUSY_WAIT`]
/// (an event loop must not stall for a Redis that does not answer).
#[napi(catch_unwind, js_name = "redisIsBusy")]
pub fn redis_is_busy(
  handle: u32,
  name: String,
  space: Option<String>,
  counted: Option<bool>,
) -> Result<bool, Code> {
  let lock = client(handle)?;
  let space = space.unwrap_or_default();
  let url = lock.url().to_string();
  napi::bindgen_prelude::block_on(async move {
    let asked = async {
      if counted == Some(true) {
        lock.is_busy_counted(&space, &name).await
      } else {
        lock.is_busy(&space, &name).await
      }
    };
    match tokio::time::timeout(IS_BUSY_WAIT, asked).await {
      Ok(answer) => answer,
      Err(_) => Err(RedisLockError::Redis {
        url,
        message: format!("no answer to isBusy within {} ms", IS_BUSY_WAIT.as_millis()),
      }),
    }
  })
  .map_err(Error::from)
}

/// A raw command; the reply comes back as JSON text (bulk strings as
/// strings, nil as null), which is all the facades' bookkeeping needs.
#[napi(
  catch_unwind,
  js_name = "redisCommand",
  ts_return_type = "Promise<string>"
)]
pub fn redis_command(
  env: &Env,
  handle: u32,
  args: Vec<String>,
) -> Result<PromiseRaw<'_, String>, Code> {
  let lock = client(handle);
  promise(env, async move {
    let reply = lock?.command(&args).await?;
    let mut out = String::new();
    json(&reply, &mut out);
    Ok(out)
  })
}

fn json(v: &Value, out: &mut String) {
  use std::fmt::Write;
  match v {
    Value::Nil => out.push_str("null"),
    Value::Int(i) => {
      let _ = write!(out, "{i}");
    }
    Value::Double(d) if d.is_finite() => {
      let _ = write!(out, "{d}");
    }
    Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
    Value::Okay => json_str("OK", out),
    Value::SimpleString(s) => json_str(s, out),
    Value::BulkString(b) => json_str(&String::from_utf8_lossy(b), out),
    Value::VerbatimString { text, .. } => json_str(text, out),
    Value::Array(items) | Value::Set(items) => {
      out.push('[');
      for (i, item) in items.iter().enumerate() {
        if i > 0 {
          out.push(',');
        }
        json(item, out);
      }
      out.push(']');
    }
    Value::Map(pairs) => {
      out.push('[');
      for (i, (k, item)) in pairs.iter().enumerate() {
        if i > 0 {
          out.push(',');
        }
        json(k, out);
        out.push(',');
        json(item, out);
      }
      out.push(']');
    }
    other => json_str(&format!("{other:?}"), out),
  }
}

fn json_str(s: &str, out: &mut String) {
  use std::fmt::Write;
  out.push('"');
  for c in s.chars() {
    match c {
      '"' => out.push_str("\\\""),
      '\\' => out.push_str("\\\\"),
      c if (c as u32) < 0x20 => {
        let _ = write!(out, "\\u{:04x}", c as u32);
      }
      c => out.push(c),
    }
  }
  out.push('"');
}

/// Releases every lease of the client (best effort) and closes it; its
/// waiters end with a `KEYED_LOCK_CLOSED` error.
#[napi(catch_unwind, js_name = "redisClose")]
pub async fn redis_close(handle: u32) -> Result<()> {
  let lock = {
    let mut clients = CLIENTS.lock();
    clients.get_mut(handle as usize).and_then(Option::take)
  };
  if let Some(lock) = lock {
    lock.close().await;
  }
  Ok(())
}

/// The Redis key that holds the lease of lock `name` of `space` ("" or
/// none: no space) under `prefix` (docs/redis-keys.md).
#[napi(catch_unwind, js_name = "redisLeaseKey")]
pub fn redis_lease_key(prefix: String, name: String, space: Option<String>) -> String {
  crate::redis::lease_key(&prefix, &space.unwrap_or_default(), &name)
}
