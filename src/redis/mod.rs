//! The Redis reach: keyed FIFO locks shared by every process that uses the
//! same Redis and prefix. Pure Rust on tokio; `crate::binding::redis` is its
//! N-API face.
//!
//! The queue lives in Redis (key names in `keys.rs` and
//! `docs/redis-keys.md`, values in `lua/common.lua`) and every state change
//! is one Lua script, so each step is atomic on the server.
//!
//! # Guarantees
//! - **FIFO across processes.** Waiters are ordered by a server-side ticket;
//!   a free lease goes only to the head of its queue, so nobody barges
//!   (`skip_queue` is the one way to the front). Within one client,
//!   acquisitions started one after another reach Redis in that order
//!   (`start_acquire`). Tests: `redis-api.test.js` "FIFO within a process",
//!   `__test__/redis-processes.test.js` "FIFO across processes",
//!   `__test__/redis-scripts.test.js` "an expired holder is passed over".
//! - **Hand-off in the release.** RELEASE grants the head and publishes the
//!   grant to the head's process in the same script: a contended acquisition
//!   costs its client two commands (ACQUIRE, RELEASE) and no polling.
//!   Test: `redis-processes.test.js` "two client commands per contended
//!   acquisition".
//! - **Multi-name requests cannot deadlock.** ACQUIRE joins every queue in one
//!   script with one ticket from one counter, so two waiters are in the same
//!   order in every queue they share, and a request is granted only when it
//!   heads every queue with every lease free. On a Cluster the counter is
//!   the slot's, so requests sharing a queue share it. Queueing is all or
//!   nothing: a waiter found in some of its queues only (reaped from the
//!   others while its process stalled) leaves them all and joins all again,
//!   rather than keep a free lock reserved for a request that cannot be
//!   granted. Tests: `redis-scripts.test.js` "opposite key orders cannot
//!   deadlock"; `redis-hardening.test.js` "a multi-key waiter SIGSTOPped",
//!   "ACQUIRE of a waiter found in some of its queues only".
//! - **Fencing.** Each grant carries a token per name that strictly increases
//!   per name: `max(last + 1, server time in µs)`, so it keeps increasing
//!   across a Redis restart that lost the counter (unless the server clock
//!   went back). Tests: `redis-scripts.test.js` "tokens keep increasing when
//!   Redis loses the counter", `redis-faults.test.js` "Redis killed and
//!   restarted empty".
//! - **Nothing stranded.** A waiter re-runs ACQUIRE (idempotent) every
//!   [`RECHECK`] and after every reconnect: that is its heartbeat (a waiter
//!   silent for [`LIVENESS`] is reaped, and a lease handed to a waiter
//!   starts at most [`CLAIM`] long, so a crashed process stops blocking the
//!   queue within seconds), its re-enqueue after a server restart, and
//!   its fallback for a lost grant message. A cancel that races a grant
//!   keeps the grant (the caller is told), so no grant is swallowed.
//!   Tests: `redis-scripts.test.js` "waiters that stopped heartbeating are
//!   reaped", "a CANCEL that lost the race to a grant keeps the grant";
//!   `redis-processes.test.js` "a SIGKILLed waiter"; `redis-faults.test.js`
//!   "a connection drop mid-wait is survived".
//! - **A request given up keeps no lease.** However an acquisition ends
//!   without a registered grant or a final answer (its timeout, an abort,
//!   a command timeout, an error), it queues a CANCEL behind the commands
//!   it sent, on the same connection, so Redis runs it after them even if
//!   they were stuck in a stalled server's input buffer; the CANCEL is
//!   retried until Redis answers, and a grant it finds (a late ACQUIRE, or a
//!   hand-off that beat the cancel) goes to the caller if it still waits
//!   ([`CANCEL_GRACE`]), else is released at once. A failed RELEASE is
//!   retried the same way. Tests: `__test__/redis-stall.test.js`.
//! - **A free lease is handed on when it is found free.** RELEASE and EXTEND
//!   hand a lease that already ran out to the next waiter at once, as
//!   ACQUIRE and CANCEL do; and a waiter whose blocker's lease runs out
//!   before its next heartbeat re-runs ACQUIRE when it is due. Tests:
//!   `redis-hardening.test.js` "the release of a lease that already ran
//!   out", "a lease that runs out unreleased".
//! - **Leases are kept alive off the JS thread.** With the watchdog on, a
//!   tokio task extends the lease every ttl/3. If Redis says the lease is
//!   gone, or no extension is confirmed before `sent + ttl − drift` of the
//!   last confirmed one (redlock's drift rule: 1% + 2 ms), the lease is
//!   reported lost exactly once. A hand-off's lease is timed from when
//!   Redis granted it, not from when this process read the grant: the
//!   grant message carries the server time of the grant and the lease's
//!   length, mapped to a local instant no later than the true one through
//!   the server time of the waiter's last ACQUIRE reply (and a grant found
//!   by a re-run or a cancel carries its pttl). A waiter that reads a grant
//!   after its validity (its process stalled) hands it on and queues again.
//!   Tests: `redis-faults.test.js` "Redis stalled (SIGSTOP) past the ttl";
//!   `redis-processes.test.js` "a lost lease's release frees nothing of the
//!   next holder's"; `redis-hardening.test.js` "a waiter SIGSTOPped while
//!   it is handed the key".
//! - **Distinct locks, distinct keys.** (prefix, space, key) is encoded
//!   injectively, with the hash tag chosen by keylock, so no key name can
//!   reach another lock's lease, queue, meta or waiters. Tests:
//!   `cargo test redis::keys`; `redis-hardening.test.js` "keys: …".
//! - **Cluster.** With seed-node URLs every key of a request must share a
//!   hash tag; a request whose names hash to different slots is refused
//!   before any command is sent. Test: `redis-cluster.test.js`.
//!
//! # Memory
//! An idle lock leaves nothing in Redis: meta expires a ttl after the last
//! grant, queue, waiters and ticket counter a liveness window after the
//! last heartbeat of a waiter (`docs/redis-keys.md` says why losing them is
//! harmless). In this process a lock costs memory only while it is held or
//! waited for. Test: `redis-hardening.test.js` "memory".
//!
//! # What is not guaranteed
//! A single Redis gives efficiency-grade exclusion: after a restart without
//! persistence, or a failover to a replica that missed the write, a second
//! holder can be granted before the first learns (within ttl/3) that it lost
//! its lease. The fencing token is the defence: the guarded store must
//! reject a token lower than one it has seen. FIFO order across a Redis
//! restart is the order in which waiters re-enqueue. A hand-off's lease is
//! timed through the server's wall clock (`TIME`) between the waiter's
//! last heartbeat and the grant, at most about a second: a forward step of
//! that clock in between makes the waiter count on its lease for as much
//! longer (leases themselves already end early on such a step, as Redis
//! stores their expiry in wall-clock time).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Script, Value};
use tokio::sync::{mpsc, OnceCell};
use tokio::time::Instant;

use crate::core::{Coded, ErrorCode, Outcome};
pub mod keys;

pub use keys::{lease_key, slot};
use keys::{lock_keys, ticket_key};

pub mod conn;
use conn::COMMAND_TIMEOUT;
pub use conn::{ConnOptions, SentinelOptions, TlsOptions};

/// How often a waiter re-runs ACQUIRE (heartbeat + fallback re-check).
pub const RECHECK: Duration = Duration::from_millis(1000);
/// A waiter whose process has not heartbeated for this long is reaped.
pub const LIVENESS: Duration = Duration::from_millis(3000);
/// A lease handed on by a hand-off (RELEASE, CANCEL, or ACQUIRE passing
/// over an expired holder) starts at most this long, `CLAIM_MS` in
/// `lua/common.lua`: a waiter that died since its last heartbeat blocks the
/// key for this long, not for its whole ttl. The new holder's watchdog
/// renews it to the full ttl within a third of it.
pub const CLAIM: Duration = Duration::from_millis(3000);
/// How long a timed-out or aborted acquisition waits for its CANCEL's
/// answer before it settles as timed out. The CANCEL itself is not given up
/// then: it is awaited (and retried) in the background, and a grant it
/// reports is released (see `settle_abandoned`).
const CANCEL_GRACE: Duration = Duration::from_millis(250);
/// First pause between attempts of a background CANCEL or RELEASE that
/// failed; it doubles up to [`RETRY_PAUSE_MAX`]. They retry until Redis
/// answers or the client is closed: a stopped server may still hold the
/// request's ACQUIRE in its input buffer, and run it whenever it resumes.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(1000);

fn script(body: &str) -> Script {
  Script::new(body)
}

macro_rules! with_common {
  ($file:literal) => {
    concat!(include_str!("lua/common.lua"), "\n", include_str!($file))
  };
}

struct Scripts {
  acquire: Script,
  release: Script,
  cancel: Script,
  extend: Script,
  inspect: Script,
}

impl Scripts {
  fn new() -> Self {
    Scripts {
      acquire: script(with_common!("lua/acquire.lua")),
      release: script(with_common!("lua/release.lua")),
      cancel: script(with_common!("lua/cancel.lua")),
      extend: script(with_common!("lua/extend.lua")),
      inspect: script(include_str!("lua/inspect.lua")),
    }
  }
}

/// How an acquisition treats a lock somebody else holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
  /// Answer [`Acquired::Busy`] at once.
  Try,
  /// Join the queue and wait for the grant (or the timeout).
  Wait,
  /// Take it anyway; the previous holder's lease is lost (fast-locky's `force`).
  Force,
}

#[derive(Debug, Clone)]
pub struct AcquireOptions {
  /// Lease time-to-live; the watchdog (if on) renews it every ttl/3.
  pub ttl: Duration,
  /// How long to wait in the queue; `None` waits for ever.
  pub timeout: Option<Duration>,
  pub mode: Mode,
  /// Refuse when a queue already has this many waiters.
  pub max_pending: Option<u32>,
  pub skip_queue: bool,
  /// Stored with the lease and shown by [`RedisLock::inspect`].
  pub owner: String,
  pub watchdog: bool,
  /// The lock space the names belong to (an `AsyncLock`'s `name`; "" for
  /// none): part of every key, so `('a', 'b:c')` and `('a:b', 'c')` are
  /// different locks (see `keys.rs`).
  pub space: String,
}

/// The outcome of an acquisition: expected results are values, not errors.
#[derive(Debug, Clone, PartialEq)]
pub enum Acquired {
  /// `lease` is the handle for `release`/`extend`; one token per name.
  Granted { lease: u32, tokens: Vec<f64> },
  /// Try mode, and somebody holds it: their owner string and lease ms left.
  Busy { holder: Option<String>, pttl: i64 },
  /// The queue of the name at `index` (0-based) already had `max_pending` waiters.
  Rejected { index: usize },
  /// The timeout passed before the grant; the waiter has left every queue.
  TimedOut,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inspected {
  pub owner: Option<String>,
  /// Lease ms left; -2 when free, -1 without expiry.
  pub pttl: i64,
  pub waiters: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisLockError {
  /// The URL could not be parsed.
  Url(String),
  /// Redis could not be reached or answered with an error.
  Redis {
    url: String,
    message: String,
  },
  /// A script replied with something this version does not understand.
  Protocol(String),
  Closed,
  NoLease(u32),
  /// Cluster: the names of one request hash to different slots (index of
  /// the first name that differs from the first name's slot).
  CrossSlot(usize),
}

impl std::fmt::Display for RedisLockError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      RedisLockError::Url(m) => f.write_str(m),
      RedisLockError::Redis { url, message } => write!(f, "{url}: {message}"),
      RedisLockError::Protocol(m) => write!(f, "unexpected reply: {m}"),
      RedisLockError::Closed => write!(f, "the Redis lock client is closed"),
      RedisLockError::NoLease(id) => write!(f, "no lease {id} on this client"),
      RedisLockError::CrossSlot(i) => write!(
        f,
        "keys[{i}] hashes to another Redis Cluster slot than keys[0]: every key of one request must share a hash tag"
      ),
    }
  }
}

impl std::error::Error for RedisLockError {}

impl Coded for RedisLockError {
  fn code(&self) -> ErrorCode {
    match self {
      RedisLockError::Url(_) => ErrorCode::RedisUrl,
      RedisLockError::Redis { .. } => ErrorCode::Redis,
      RedisLockError::Protocol(_) => ErrorCode::RedisProtocol,
      RedisLockError::Closed => ErrorCode::Closed,
      RedisLockError::NoLease(_) => ErrorCode::NoLease,
      RedisLockError::CrossSlot(_) => ErrorCode::CrossSlot,
    }
  }

  fn key_index(&self) -> Option<usize> {
    match self {
      RedisLockError::CrossSlot(i) => Some(*i),
      _ => None,
    }
  }
}

pub type Result<T> = std::result::Result<T, RedisLockError>;

/// Called once per lost lease with the lease handle and why.
pub type LostFn = Box<dyn Fn(u32, String) + Send + Sync>;

/// A single-name grant, as its message tells it: `g <waiter> <token>
/// <server µs when granted> <lease ms from then>`.
#[derive(Debug, Clone, Copy)]
struct Grant {
  token: f64,
  granted_us: f64,
  claim: Duration,
}

impl Grant {
  fn parse<'a>(mut parts: impl Iterator<Item = &'a str>) -> Option<Grant> {
    let token = parts.next()?.parse::<f64>().ok()?;
    let granted_us = parts.next()?.parse::<f64>().ok()?;
    let claim = Duration::from_millis(parts.next()?.parse::<u64>().ok()?);
    Some(Grant {
      token,
      granted_us,
      claim,
    })
  }

  /// When the lease began, on this process's clock, never later than it
  /// truly did: `clock` is (a local instant, the server's µs at some moment
  /// after it). The message may have been read long after it was sent (a
  /// stalled process): the lease's time runs from the grant, not from now.
  fn local_start(&self, clock: (Instant, f64)) -> Instant {
    let (sent, server_us) = clock;
    let ahead = self.granted_us - server_us;
    if !ahead.is_finite() {
      // No server time seen yet: the acquisition's start is no later.
      return sent;
    }
    let by = Duration::from_micros(ahead.abs() as u64);
    if ahead >= 0.0 {
      sent + by
    } else {
      sent.checked_sub(by).unwrap_or(sent)
    }
  }
}

/// When a lease began (no later than the truth) and how long from then it
/// runs unless renewed.
#[derive(Debug, Clone, Copy)]
struct LeaseStart {
  at: Instant,
  length: Duration,
  /// Granted by a hand-off: the lease may be shorter than the ttl.
  handed_on: bool,
}

/// redlock's drift margin: 1% + 2 ms.
fn drift(d: Duration) -> Duration {
  d / 100 + Duration::from_millis(2)
}

impl LeaseStart {
  /// Until when this client may count on the lease without a renewal.
  fn valid_until(&self) -> Instant {
    self.at + self.length.saturating_sub(drift(self.length))
  }
}

/// What a waiter is told through its process's grant channel.
#[derive(Debug)]
enum Wake {
  /// A single-name grant.
  Granted(Grant),
  /// Re-run ACQUIRE now (multi-name head, or a reconnect).
  Recheck,
  /// The caller gave up (AbortSignal): leave the queues.
  Abort,
}

struct LeaseState {
  id: String,
  space: String,
  names: Vec<String>,
  watchdog: Option<tokio::task::AbortHandle>,
}

/// One process's (one JS thread's) connection to the locks under a prefix.
#[derive(Clone)]
pub struct RedisLock {
  inner: Arc<Inner>,
}

struct Inner {
  /// For messages: the URL without its password.
  url: String,
  client: Client,
  prefix: String,
  client_id: String,
  channel: String,
  conn: OnceCell<Conn>,
  scripts: Scripts,
  waiters: Mutex<HashMap<String, mpsc::UnboundedSender<Wake>>>,
  leases: Mutex<HashMap<u32, LeaseState>>,
  /// Requests aborted before their acquisition started.
  aborted_early: Mutex<std::collections::HashSet<u32>>,
  /// First ACQUIREs, in the order acquisitions were started (see
  /// `start_acquire`); drained by one dispatcher task.
  submit: mpsc::UnboundedSender<Job>,
  submissions: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
  /// Background CANCELs and RELEASEs of given-up requests still running;
  /// close() waits for them (bounded).
  cleanups: AtomicUsize,
  seq: AtomicU32,
  /// close() has begun: no new acquisitions, and grants still in flight
  /// are handed back rather than given out.
  closing: AtomicBool,
  closed: AtomicBool,
  on_lost: LostFn,
}

/// A URL as messages show it, without its password, for every form keylock
/// accepts or builds. It never parses (it must also hide the password of a
/// URL that does not parse), and hides too much rather than too little;
/// `lib/redis-url.js` `redactUrl` applies the same rules in JS:
/// - no `://`: not a URL at all (perhaps a password pasted in the wrong
///   place), shown as `(not a URL)`;
/// - `scheme://userinfo@host…`: the userinfo runs to the *last* `@` (a
///   password may hold an unencoded `@`; URL parsers read it that way too),
///   and only the user name before its first `:` is kept;
/// - the query (how `redis+unix://` and `unix://` URLs carry credentials,
///   e.g. `?pass=`): from the first parameter whose name contains `pass` on,
///   the rest is hidden (an unencoded `&` in a password would otherwise show
///   its tail).
fn redact(url: &str) -> String {
  let Some(scheme_end) = url.find("://") else {
    return "(not a URL)".to_string();
  };
  let mut rest = &url[scheme_end + 3..];
  let mut out = format!("{}://", &url[..scheme_end]);
  // A unix socket URL has no authority: an `@` there is in the path.
  if !rest.starts_with('/') {
    if let Some(at) = rest.rfind('@') {
      match rest[..at].find(':') {
        Some(colon) => {
          out.push_str(&rest[..colon]);
          out.push_str(":***@");
        }
        None => out.push_str("***@"),
      }
      rest = &rest[at + 1..];
    }
  }
  let Some(q) = rest.find('?') else {
    out.push_str(rest);
    return out;
  };
  out.push_str(&rest[..=q]);
  for (i, param) in rest[q + 1..].split('&').enumerate() {
    if i > 0 {
      out.push('&');
    }
    let name = param.split('=').next().unwrap_or("");
    if name.to_ascii_lowercase().contains("pass") {
      out.push_str(name);
      out.push_str("=***");
      return out;
    }
    out.push_str(param);
  }
  out
}

fn random_id() -> String {
  use std::collections::hash_map::RandomState;
  use std::hash::{BuildHasher, Hasher};
  let mut h = RandomState::new().build_hasher();
  h.write_u128(
    std::time::SystemTime::now()
      .duration_since(std::time::UNIX_EPOCH)
      .map(|d| d.as_nanos())
      .unwrap_or(0),
  );
  h.write_u32(std::process::id());
  format!("{:016x}", h.finish())
}

/// A single Redis (standalone, or a Sentinel-managed master by URL) or a
/// Redis Cluster.
enum Client {
  Single(redis::Client),
  /// Seed nodes; the client is built on connect, with this client's push
  /// channel.
  Cluster(Vec<redis::ConnectionInfo>, ConnOptions),
  /// A Sentinel-managed master, found (and followed) through the sentinels.
  Sentinel(Arc<conn::SentinelTarget>),
}

#[derive(Clone)]
enum Conn {
  Single(ConnectionManager),
  Cluster(ClusterConnection),
  Sentinel(conn::SentinelConn),
}

impl RedisLock {
  /// A client for the Redis Cluster reached through any of `urls` (seed
  /// nodes); connects lazily. Grants travel by PUBLISH, which a cluster
  /// delivers on every node, so one subscription per client still hears
  /// its own grants; names of one request must share a hash tag.
  pub fn new_cluster(urls: &[String], prefix: &str, on_lost: LostFn) -> Result<Self> {
    Self::new_cluster_with(urls, prefix, &ConnOptions::default(), on_lost)
  }

  /// [`RedisLock::new_cluster`] with TLS settings (see [`conn`]).
  pub fn new_cluster_with(
    urls: &[String],
    prefix: &str,
    opts: &ConnOptions,
    on_lost: LostFn,
  ) -> Result<Self> {
    let shown = urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(",");
    let infos = conn::cluster_nodes(urls, opts)?;
    if infos.is_empty() {
      return Err(RedisLockError::Url("no cluster node URL".into()));
    }
    // The per-slot counter names take a few ms to find: found now, off the
    // JS thread, while the client has not connected yet.
    std::thread::spawn(|| keys::ticket_key("", Some(0)));
    Ok(Self::with_client(
      shown,
      Client::Cluster(infos, opts.clone()),
      prefix,
      on_lost,
    ))
  }

  /// A client for the master the sentinels at `urls` name
  /// (`opts.sentinel`), following it across failovers (see [`conn`]);
  /// connects lazily.
  pub fn new_sentinel(
    urls: &[String],
    prefix: &str,
    opts: &ConnOptions,
    on_lost: LostFn,
  ) -> Result<Self> {
    let name = opts
      .sentinel
      .as_ref()
      .map(|s| s.name.as_str())
      .unwrap_or("");
    let shown = format!(
      "{} (Sentinel master {name})",
      urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(",")
    );
    let target = conn::SentinelTarget::new(urls, opts)?;
    Ok(Self::with_client(
      shown,
      Client::Sentinel(Arc::new(target)),
      prefix,
      on_lost,
    ))
  }

  /// Parses `url` (`redis://`, `rediss://`, `redis+unix://`, `unix://`);
  /// connects lazily, on the first command.
  pub fn new(url: &str, prefix: &str, on_lost: LostFn) -> Result<Self> {
    Self::new_with(url, prefix, &ConnOptions::default(), on_lost)
  }

  /// [`RedisLock::new`] with TLS settings (see [`conn`]).
  pub fn new_with(url: &str, prefix: &str, opts: &ConnOptions, on_lost: LostFn) -> Result<Self> {
    let shown = redact(url);
    let client = conn::single_client(url, &shown, opts)?;
    Ok(Self::with_client(
      shown,
      Client::Single(client),
      prefix,
      on_lost,
    ))
  }

  fn with_client(shown: String, client: Client, prefix: &str, on_lost: LostFn) -> Self {
    let client_id = random_id();
    let (submit, submissions) = mpsc::unbounded_channel();
    RedisLock {
      inner: Arc::new(Inner {
        url: shown,
        client,
        prefix: prefix.to_string(),
        channel: format!("{prefix}:c:{client_id}"),
        client_id,
        conn: OnceCell::new(),
        scripts: Scripts::new(),
        waiters: Mutex::new(HashMap::new()),
        leases: Mutex::new(HashMap::new()),
        aborted_early: Mutex::new(Default::default()),
        submit,
        submissions: Mutex::new(Some(submissions)),
        cleanups: AtomicUsize::new(0),
        seq: AtomicU32::new(0),
        closing: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        on_lost,
      }),
    }
  }

  pub fn is_cluster(&self) -> bool {
    matches!(self.inner.client, Client::Cluster(..))
  }

  pub fn url(&self) -> &str {
    &self.inner.url
  }

  fn error(&self, e: impl std::fmt::Display) -> RedisLockError {
    RedisLockError::Redis {
      url: self.inner.url.clone(),
      message: e.to_string(),
    }
  }

  /// Connects and subscribes to this client's grant channel (once; a failed
  /// attempt is retried by the next call).
  async fn conn(&self) -> Result<Conn> {
    if self.inner.closed.load(Ordering::Acquire) {
      return Err(RedisLockError::Closed);
    }
    let inner = &self.inner;
    let conn = inner
      .conn
      .get_or_try_init(|| async {
        // Grants are routed in the connection's reader, straight to the
        // waiter: no task in between to wake.
        let weak = Arc::downgrade(&self.inner);
        let tx = move |push: PushInfo| {
          if let Some(inner) = weak.upgrade() {
            route_push(&inner, push);
          }
          Ok::<(), ()>(())
        };
        let connect = async {
          match &inner.client {
            Client::Single(client) => {
              let conn =
                conn::connect_manager(client.clone(), tx, &inner.channel, &inner.scripts.acquire)
                  .await?;
              Ok::<_, redis::RedisError>(Conn::Single(conn))
            }
            Client::Sentinel(target) => {
              let conn = conn::SentinelConn::connect(
                target.clone(),
                tx,
                &inner.channel,
                &inner.scripts.acquire,
              )
              .await?;
              Ok(Conn::Sentinel(conn))
            }
            Client::Cluster(nodes, opts) => {
              let client = conn::cluster_client(nodes, opts, tx)?;
              let mut conn = client.get_async_connection().await?;
              conn.subscribe(&inner.channel).await?;
              Ok(Conn::Cluster(conn))
            }
          }
        };
        let conn = tokio::time::timeout(COMMAND_TIMEOUT, connect)
          .await
          .map_err(|_| self.error("timed out connecting"))?
          .map_err(|e| self.error(conn::describe(&e)))?;
        Ok::<_, RedisLockError>(conn)
      })
      .await?;
    Ok(conn.clone())
  }

  /// The KEYS of a request: lease, meta, queue, waiters per name (see
  /// `keys.rs`), then the ticket counter. On a cluster every key must be in
  /// one slot, so the names must share a hash tag (checked here, before any
  /// command is sent) and the counter is that slot's; a single Redis has
  /// one counter for all names.
  fn keys_of(&self, space: &str, names: &[String]) -> Result<Vec<String>> {
    let prefix = self.inner.prefix.as_str();
    let mut keys = Vec::with_capacity(names.len() * 4 + 1);
    for name in names {
      keys.extend(lock_keys(prefix, space, name));
    }
    let counter = if self.is_cluster() {
      let want = keys.first().map(|k| slot(k));
      if let Some(want) = want {
        if let Some(i) = keys.iter().step_by(4).position(|k| slot(k) != want) {
          return Err(RedisLockError::CrossSlot(i));
        }
      }
      ticket_key(prefix, Some(want.unwrap_or(0)))
    } else {
      ticket_key(prefix, None)
    };
    keys.push(counter);
    Ok(keys)
  }

  async fn run(&self, script: &Script, keys: &[String], args: &[&str]) -> Result<Value> {
    let mut conn = self.conn().await?;
    let mut invocation = script.prepare_invoke();
    for k in keys {
      invocation.key(k);
    }
    for a in args {
      invocation.arg(*a);
    }
    match &mut conn {
      Conn::Single(c) => invocation.invoke_async(c).await,
      Conn::Cluster(c) => invocation.invoke_async(c).await,
      Conn::Sentinel(c) => invocation.invoke_async(c).await,
    }
    .map_err(|e| self.error(e))
  }

  /// Takes every name at once (or queues for all of them at once); see the
  /// module docs for the guarantees. `request` names this acquisition for
  /// [`RedisLock::abort`]; it must be unique among this client's requests
  /// in flight.
  pub async fn acquire(
    &self,
    request: u32,
    names: Vec<String>,
    opts: AcquireOptions,
  ) -> Result<Acquired> {
    self.start_acquire(request, names, opts).await
  }

  /// [`RedisLock::acquire`], with its first step taken now: the waiter is
  /// registered and its first ACQUIRE queued for sending before this
  /// returns, so acquisitions started one after another (by one thread)
  /// reach Redis in that order, and FIFO holds within a process as it does
  /// across processes. The returned future does the rest.
  pub fn start_acquire(
    &self,
    request: u32,
    names: Vec<String>,
    opts: AcquireOptions,
  ) -> impl std::future::Future<Output = Result<Acquired>> + Send + 'static {
    let lock = self.clone();
    let started = self.start(request, &names, &opts);
    async move {
      lock.ensure_dispatcher();
      let started = match started {
        Ok(Started::Sent(sent)) => sent,
        Ok(Started::Done(outcome)) => return Ok(outcome),
        Err(e) => return Err(e),
      };
      let acquired = lock.acquire_or_wait(started, names, opts).await?;
      if let Acquired::Granted { lease, .. } = acquired {
        if lock.inner.closing.load(Ordering::Acquire) {
          // Granted while closing (close() aborted the wait, the grant won):
          // pass it on rather than hand out a lease of a closed client.
          let _ = lock.release(lease).await;
          return Err(RedisLockError::Closed);
        }
      }
      Ok(acquired)
    }
  }

  /// The synchronous part of an acquisition (see `start_acquire`).
  fn start(&self, request: u32, names: &[String], opts: &AcquireOptions) -> Result<Started> {
    if self.inner.closing.load(Ordering::Acquire) {
      return Err(RedisLockError::Closed);
    }
    let id = format!("{}:r{}", self.inner.client_id, request);
    let keys = self.keys_of(&opts.space, names)?;
    let (tx, rx) = mpsc::unbounded_channel();
    // Registered before the first ACQUIRE: a grant may be published before
    // the script's own reply reaches us.
    self.inner.waiters.lock().insert(id.clone(), tx);
    let unregister = Unregister(self.inner.clone(), id.clone());
    if self.inner.aborted_early.lock().remove(&request) {
      return Ok(Started::Done(Acquired::TimedOut));
    }
    let mode = match opts.mode {
      Mode::Try => "0",
      Mode::Wait => "1",
      Mode::Force => "2",
    };
    let args = vec![
      self.inner.prefix.clone(),
      id.clone(),
      opts.ttl.as_millis().max(1).to_string(),
      mode.to_string(),
      opts.max_pending.map_or(-1i64, i64::from).to_string(),
      if opts.skip_queue { "1" } else { "0" }.to_string(),
      opts.owner.clone(),
      LIVENESS.as_millis().to_string(),
    ];
    let (reply, first_reply) = tokio::sync::oneshot::channel();
    self
      .inner
      .submit
      .send(Job::Acquire(Submit {
        keys: keys.clone(),
        args: args.clone(),
        reply,
      }))
      .map_err(|_| RedisLockError::Closed)?;
    Ok(Started::Sent(SentAcquire {
      id,
      keys,
      args,
      wakes: rx,
      first_reply,
      _unregister: unregister,
    }))
  }

  fn ensure_dispatcher(&self) {
    if let Some(submissions) = self.inner.submissions.lock().take() {
      tokio::spawn(dispatch(Arc::downgrade(&self.inner), submissions));
    }
  }

  async fn acquire_or_wait(
    &self,
    started: SentAcquire,
    names: Vec<String>,
    opts: AcquireOptions,
  ) -> Result<Acquired> {
    let SentAcquire {
      id,
      keys,
      args,
      wakes: mut rx,
      first_reply,
      _unregister,
    } = started;
    // From here until Redis has answered for good, this request may hold
    // or await a lease in Redis: however the wait ends (timeout, abort, a
    // command timeout, an error), `pending` makes it leave cleanly.
    let mut pending = Pending {
      lock: self.clone(),
      id: id.clone(),
      keys: keys.clone(),
      armed: true,
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let mut first_reply = Some(first_reply);
    let mut first = true;
    // The server's clock as last seen: (when that ACQUIRE was sent, the
    // server's µs while it ran). A grant message says when Redis granted
    // in server time; mapped through this it is a local instant no later
    // than the true one (the script ran after `sent`).
    let mut clock: (Instant, f64);
    loop {
      let sent = Instant::now();
      // The first ACQUIRE went out through the dispatcher, in start order.
      let call: std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value>> + Send + '_>> =
        match first_reply.take() {
          Some(reply) => Box::pin(async move {
            match reply.await {
              Ok(call) => call.await,
              Err(_) => Err(RedisLockError::Closed),
            }
          }),
          None => Box::pin(self.run(&self.inner.scripts.acquire, &keys, &args)),
        };
      let reply = match deadline {
        Some(d) => {
          match tokio::time::timeout_at(d, call).await {
            Ok(r) => r,
            // Not one answer from Redis before the timeout: that is an
            // unreachable (or stalled) Redis, and the error says where.
            // The ACQUIRE may still run when Redis comes back: `pending`
            // cancels it then (and releases what it was granted).
            Err(_) if first => {
              let waited = opts.timeout.unwrap_or_default().as_millis();
              return Err(self.error(format!(
                "no answer within the acquire timeout ({waited} ms)"
              )));
            }
            Err(_) => return self.give_up(&mut pending, names, &opts).await,
          }
        }
        None => call.await,
      };
      let reply = match reply {
        Ok(r) => r,
        // Unreachable at the start: say so at once, naming the URL (a
        // command timeout included: `pending` cancels what may still run).
        Err(e) if first => return Err(e),
        // A drop mid-wait: keep re-running (re-enqueues after a restart)
        // until it answers or the timeout passes.
        Err(e) => {
          if deadline.is_some_and(|d| Instant::now() + Duration::from_millis(100) >= d) {
            return Err(e);
          }
          tokio::time::sleep(Duration::from_millis(100)).await;
          continue;
        }
      };
      first = false;
      let items = array(&reply)?;
      let mut recheck = RECHECK;
      let status = int_at(&items, 0)?;
      match Outcome::from_code(status) {
        Some(Outcome::Granted) => {
          let tokens = tokens(&items[1..])?;
          let start = LeaseStart {
            at: sent,
            length: opts.ttl,
            handed_on: false,
          };
          return self.keep(&mut pending, &names, tokens, &opts, start).await;
        }
        Some(Outcome::HandedOff) => {
          let (tokens, pttl) = tokens_and_pttl(&items, names.len())?;
          let start = LeaseStart {
            at: sent,
            length: pttl,
            handed_on: true,
          };
          if let Some(granted) = self
            .take_hand_off(&mut pending, &names, tokens, &opts, start)
            .await?
          {
            return Ok(granted);
          }
          continue;
        }
        Some(Outcome::Queued) => {
          clock = (sent, int_at(&items, 2).map_or(f64::NAN, |t| t as f64));
          // The expiry of the lease in the way is a hand-off too: look
          // again when it is due rather than at the next heartbeat.
          if let Ok(pttl) = int_at(&items, 1) {
            if (0..RECHECK.as_millis() as i64).contains(&pttl) {
              recheck = Duration::from_millis(pttl as u64 + 2);
            }
          }
        }
        // Refused or busy: the script left nothing of this request behind.
        Some(Outcome::Rejected) => {
          pending.armed = false;
          return Ok(Acquired::Rejected {
            index: (int_at(&items, 1)?.max(1) - 1) as usize,
          });
        }
        Some(Outcome::Busy) => {
          pending.armed = false;
          return Ok(Acquired::Busy {
            holder: string_at(&items, 1),
            pttl: int_at(&items, 2).unwrap_or(-2),
          });
        }
        _ => return Err(RedisLockError::Protocol(format!("ACQUIRE status {status}"))),
      }
      // Queued: wait for our grant message, the re-check, or the timeout.
      let recheck = Instant::now() + recheck;
      let until = deadline.map_or(recheck, |d| d.min(recheck));
      let woke = tokio::time::timeout_at(until, rx.recv()).await;
      match woke {
        Ok(Some(Wake::Granted(grant))) => {
          let start = LeaseStart {
            at: grant.local_start(clock),
            length: grant.claim,
            handed_on: true,
          };
          let tokens = vec![grant.token];
          if let Some(granted) = self
            .take_hand_off(&mut pending, &names, tokens, &opts, start)
            .await?
          {
            return Ok(granted);
          }
        }
        Ok(Some(Wake::Recheck)) => {}
        Ok(Some(Wake::Abort)) => {
          return self.give_up(&mut pending, names, &opts).await;
        }
        Ok(None) => return Err(RedisLockError::Closed),
        Err(_) => {
          if deadline.is_some_and(|d| Instant::now() >= d) {
            return self.give_up(&mut pending, names, &opts).await;
          }
        }
      }
    }
  }

  /// Registers the grant of `pending`; if that fails, `pending` stays armed
  /// and its drop passes the lease on.
  async fn keep(
    &self,
    pending: &mut Pending,
    names: &[String],
    tokens: Vec<f64>,
    opts: &AcquireOptions,
    start: LeaseStart,
  ) -> Result<Acquired> {
    let acquired = self
      .granted(pending.id.clone(), names.to_vec(), tokens, opts, start)
      .await?;
    pending.armed = false;
    Ok(acquired)
  }

  /// A lease handed to this waiter while it was not looking (a grant
  /// message, or a grant found by a re-run or a cancel): registered if it
  /// is still safely valid. A waiter that read it too late (its process
  /// stalled past the lease's validity) must not act on it: the lease is
  /// released (a hand-off, if it is still there) and `None` is returned,
  /// so the caller queues again instead of holding a lease another
  /// process may already have been granted.
  async fn take_hand_off(
    &self,
    pending: &mut Pending,
    names: &[String],
    tokens: Vec<f64>,
    opts: &AcquireOptions,
    start: LeaseStart,
  ) -> Result<Option<Acquired>> {
    if Instant::now() < start.valid_until() {
      return self
        .keep(pending, names, tokens, opts, start)
        .await
        .map(Some);
    }
    // If this fails the lease runs out on its own, within the claim.
    let keys = self.keys_of(&opts.space, names)?;
    let args = [self.inner.prefix.as_str(), pending.id.as_str()];
    let _ = self.run(&self.inner.scripts.release, &keys, &args).await;
    Ok(None)
  }

  /// Makes the acquisition `request` leave its queues: it ends with
  /// [`Acquired::TimedOut`], or [`Acquired::Granted`] if the grant won the
  /// race (the caller then holds the lease and must release it).
  pub fn abort(&self, request: u32) {
    let id = format!("{}:r{}", self.inner.client_id, request);
    let waiters = self.inner.waiters.lock();
    match waiters.get(&id) {
      Some(tx) => {
        let _ = tx.send(Wake::Abort);
      }
      None => {
        self.inner.aborted_early.lock().insert(request);
      }
    }
  }

  /// The timeout passed (or the caller aborted): leave the queues, unless
  /// the grant won the race. The CANCEL goes out behind every command this
  /// request sent (through the dispatcher, on the same connection), so it
  /// runs after them in Redis. Its answer is awaited here for
  /// [`CANCEL_GRACE`]; a grant it reports within that is the caller's, and
  /// one reported later (Redis stalled) is released by the background task
  /// as soon as Redis answers, so a request given up never keeps a lease.
  async fn give_up(
    &self,
    pending: &mut Pending,
    names: Vec<String>,
    opts: &AcquireOptions,
  ) -> Result<Acquired> {
    pending.armed = false;
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let verdict = Arc::new(Verdict(Mutex::new(Some(tx))));
    self.abandon(
      pending.id.clone(),
      pending.keys.clone(),
      Some(verdict.clone()),
    );
    let won = match tokio::time::timeout(CANCEL_GRACE, &mut rx).await {
      Ok(answer) => answer.ok(),
      Err(_) => {
        // Stop waiting under the verdict's lock: a grant sent before this
        // is in `rx`; one found after it is released by the background task.
        verdict.0.lock().take();
        rx.try_recv().ok()
      }
    };
    match won {
      Some((tokens, start)) => {
        pending.armed = true;
        let taken = self
          .take_hand_off(pending, &names, tokens, opts, start)
          .await?;
        if taken.is_none() {
          // Read too late and released by take_hand_off: nothing is held.
          pending.armed = false;
        }
        Ok(taken.unwrap_or(Acquired::TimedOut))
      }
      None => Ok(Acquired::TimedOut),
    }
  }

  /// Cancels request `id` in Redis in the background, after every command
  /// it has sent, retrying until Redis answers (or the client is closed),
  /// and releases whatever the CANCEL finds granted to it, unless
  /// `verdict` still waits to hand that grant to its caller.
  fn abandon(&self, id: String, keys: Vec<String>, verdict: Option<Arc<Verdict>>) {
    let job = Abandoned {
      id,
      keys,
      verdict,
      sent: Instant::now(),
      _count: Cleanup::start(&self.inner),
    };
    let _ = self.inner.submit.send(Job::Abandon(job));
  }

  /// Registers a grant whose lease started no earlier than `start.at` and
  /// runs `start.length` from there (the full ttl, or what a hand-off left).
  async fn granted(
    &self,
    id: String,
    names: Vec<String>,
    tokens: Vec<f64>,
    opts: &AcquireOptions,
    start: LeaseStart,
  ) -> Result<Acquired> {
    let keys = self.keys_of(&opts.space, &names)?;
    if start.handed_on && !opts.watchdog && opts.ttl > start.length {
      // Nobody will renew it: bring it to the ttl the caller asked for now.
      let ttl = opts.ttl.as_millis().to_string();
      self
        .run(
          &self.inner.scripts.extend,
          &keys,
          &[self.inner.prefix.as_str(), id.as_str(), ttl.as_str()],
        )
        .await?;
    }
    let lease = self
      .inner
      .seq
      .fetch_add(1, Ordering::Relaxed)
      .wrapping_add(1);
    let watchdog = opts.watchdog.then(|| {
      let task = tokio::spawn(watchdog(
        Arc::downgrade(&self.inner),
        lease,
        id.clone(),
        keys,
        opts.ttl,
        start,
      ));
      task.abort_handle()
    });
    self.inner.leases.lock().insert(
      lease,
      LeaseState {
        id,
        space: opts.space.clone(),
        names,
        watchdog,
      },
    );
    Ok(Acquired::Granted { lease, tokens })
  }

  /// Releases a lease and hands each name to its next waiter. `Ok(false)`:
  /// the lease had been lost, and nothing of anybody else's was touched
  /// (a name it had held that is now free still passes to its next waiter).
  pub async fn release(&self, lease: u32) -> Result<bool> {
    let state = self.inner.leases.lock().remove(&lease);
    let Some(state) = state else {
      return Ok(false);
    };
    if let Some(w) = &state.watchdog {
      w.abort();
    }
    let keys = self.keys_of(&state.space, &state.names)?;
    match self
      .run(
        &self.inner.scripts.release,
        &keys,
        &[self.inner.prefix.as_str(), state.id.as_str()],
      )
      .await
    {
      Ok(reply) => Ok(int(&reply)? > 0),
      Err(e) => {
        // Redis did not answer (stalled past the command timeout, or the
        // connection dropped, when the RELEASE may never have arrived).
        // Nobody renews the lease any more: retry until Redis answers, so
        // the key passes on then rather than a ttl later. A RELEASE that
        // did arrive makes the retries find nothing to release.
        self.release_in_background(state.id, keys);
        Err(e)
      }
    }
  }

  /// RELEASEs the lease of request `id` once Redis answers (retrying).
  fn release_in_background(&self, id: String, keys: Vec<String>) {
    let lock = self.clone();
    let count = Cleanup::start(&self.inner);
    tokio::spawn(async move {
      let _count = count;
      release_until_answered(&lock, &id, &keys, true).await;
    });
  }

  /// Renews a lease to `ttl`. `Ok(false)`: it had been lost (never revived).
  pub async fn extend(&self, lease: u32, ttl: Duration) -> Result<bool> {
    let (id, space, names) = {
      let leases = self.inner.leases.lock();
      let state = leases.get(&lease).ok_or(RedisLockError::NoLease(lease))?;
      (state.id.clone(), state.space.clone(), state.names.clone())
    };
    let keys = self.keys_of(&space, &names)?;
    let ttl = ttl.as_millis().max(1).to_string();
    let reply = self
      .run(
        &self.inner.scripts.extend,
        &keys,
        &[self.inner.prefix.as_str(), id.as_str(), ttl.as_str()],
      )
      .await?;
    Ok(int(&reply)? == 1)
  }

  /// Who holds lock `name` of `space` ("" without a space), and how many wait.
  pub async fn inspect(&self, space: &str, name: &str) -> Result<Inspected> {
    let [lease, _, queue, _] = lock_keys(&self.inner.prefix, space, name);
    let keys = [lease, queue];
    let reply = self.run(&self.inner.scripts.inspect, &keys, &[]).await?;
    let items = array(&reply)?;
    Ok(Inspected {
      owner: string_at(&items, 0),
      pttl: int_at(&items, 1)?,
      waiters: int_at(&items, 2)?,
    })
  }

  /// Whether anybody holds or waits for `name`, in any process.
  pub async fn is_busy(&self, space: &str, name: &str) -> Result<bool> {
    let found = self.inspect(space, name).await?;
    Ok(found.owner.is_some() || found.waiters > 0)
  }

  /// A raw command, for the facades' own bookkeeping.
  pub async fn command(&self, args: &[String]) -> Result<Value> {
    let Some((name, rest)) = args.split_first() else {
      return Err(RedisLockError::Protocol("empty command".into()));
    };
    let mut conn = self.conn().await?;
    let mut cmd = redis::cmd(name);
    for a in rest {
      cmd.arg(a);
    }
    match &mut conn {
      Conn::Single(c) => cmd.query_async(c).await,
      Conn::Cluster(c) => cmd.query_async(c).await,
      Conn::Sentinel(c) => cmd.query_async(c).await,
    }
    .map_err(|e| self.error(e))
  }

  /// Releases every lease this client holds (best effort) and refuses new
  /// work; waiters in `acquire` end with [`RedisLockError::Closed`].
  pub async fn close(&self) {
    // Waiters leave their queues first: releasing a lease this client also
    // waits for would otherwise hand it to a waiter about to be dropped,
    // stranding the key until its ttl.
    self.inner.closing.store(true, Ordering::Release);
    for tx in self.inner.waiters.lock().values() {
      let _ = tx.send(Wake::Abort);
    }
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    // Given-up requests' CANCELs and RELEASEs finish first too (bounded).
    while (!self.inner.waiters.lock().is_empty() || self.inner.cleanups.load(Ordering::Acquire) > 0)
      && Instant::now() < deadline
    {
      tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let leases: Vec<u32> = self.inner.leases.lock().keys().copied().collect();
    for lease in leases {
      let _ = tokio::time::timeout(COMMAND_TIMEOUT, self.release(lease)).await;
    }
    self.inner.closed.store(true, Ordering::Release);
    // Dropping the senders ends every wait with `Closed`.
    self.inner.waiters.lock().clear();
  }

  /// Lease handles this client holds now.
  pub fn held(&self) -> usize {
    self.inner.leases.lock().len()
  }

  /// Given-up requests whose CANCEL (or RELEASE) is still on its way.
  pub fn cleaning_up(&self) -> usize {
    self.inner.cleanups.load(Ordering::Acquire)
  }
}

struct Unregister(Arc<Inner>, String);

impl Drop for Unregister {
  fn drop(&mut self) {
    self.0.waiters.lock().remove(&self.1);
  }
}

/// What the dispatcher sends, in the order it was asked to.
enum Job {
  /// A first ACQUIRE.
  Acquire(Submit),
  /// The CANCEL of a request its caller gave up (see `RedisLock::abandon`):
  /// queued behind that request's ACQUIRE, so Redis runs it after.
  Abandon(Abandoned),
}

/// A first ACQUIRE waiting to be sent, in start order.
struct Submit {
  keys: Vec<String>,
  args: Vec<String>,
  /// Gets the command back once it is in the write queue (or its answer):
  /// the acquisition awaits the reply itself, with no task in between.
  reply: tokio::sync::oneshot::Sender<FirstCall>,
}

type FirstCall = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value>> + Send>>;

enum Started {
  Sent(SentAcquire),
  /// Settled without a command (aborted before it started).
  Done(Acquired),
}

struct SentAcquire {
  id: String,
  keys: Vec<String>,
  args: Vec<String>,
  wakes: mpsc::UnboundedReceiver<Wake>,
  first_reply: tokio::sync::oneshot::Receiver<FirstCall>,
  _unregister: Unregister,
}

/// Sends first ACQUIREs in start order: each is polled once here, which
/// puts it in the connection's write queue, before the next is taken; it
/// then goes back to its acquisition, which awaits the reply, so requests
/// still overlap on the wire.
async fn dispatch(inner: std::sync::Weak<Inner>, mut jobs: mpsc::UnboundedReceiver<Job>) {
  while let Some(job) = jobs.recv().await {
    let Some(strong) = inner.upgrade() else {
      return;
    };
    let lock = RedisLock { inner: strong };
    // Never connected: nothing of a given-up request was ever sent.
    if matches!(job, Job::Abandon(_)) && lock.inner.conn.get().is_none() {
      continue;
    }
    // Connected first, so that the one poll below reaches the write queue.
    if let Err(e) = lock.conn().await {
      // Redis is unreachable: every request already waiting hears so now,
      // rather than one connection attempt after another. Nothing was ever
      // sent, so a given-up request has nothing to cancel.
      for job in std::iter::once(job).chain(std::iter::from_fn(|| jobs.try_recv().ok())) {
        if let Job::Acquire(job) = job {
          let _ = job.reply.send(Box::pin(std::future::ready(Err(e.clone()))));
        }
      }
      continue;
    }
    match job {
      Job::Acquire(job) => {
        // Its caller gave up before it was sent: never send it (its
        // Abandon, queued behind, finds nothing).
        if job.reply.is_closed() {
          continue;
        }
        let (keys, args) = (job.keys, job.args);
        let call: FirstCall = Box::pin(async move {
          let args: Vec<&str> = args.iter().map(String::as_str).collect();
          lock.run(&lock.inner.scripts.acquire, &keys, &args).await
        });
        let _ = job.reply.send(send_now(call).await);
      }
      Job::Abandon(job) => {
        let (keys, id) = (job.keys.clone(), job.id.clone());
        let cancelling = lock.clone();
        let call: FirstCall = Box::pin(async move {
          let args = [cancelling.inner.prefix.as_str(), id.as_str()];
          let script = &cancelling.inner.scripts.cancel;
          cancelling.run(script, &keys, &args).await
        });
        let call = send_now(call).await;
        tokio::spawn(settle_abandoned(lock, job, call));
      }
    }
  }
}

/// Polls `call` once, which puts its command in the connection's write
/// queue, and returns what is left to await.
async fn send_now(mut call: FirstCall) -> FirstCall {
  let answered = std::future::poll_fn(|cx| match std::future::Future::poll(call.as_mut(), cx) {
    std::task::Poll::Ready(result) => std::task::Poll::Ready(Some(result)),
    std::task::Poll::Pending => std::task::Poll::Ready(None),
  })
  .await;
  match answered {
    Some(result) => Box::pin(std::future::ready(result)),
    None => call,
  }
}

/// An acquisition in flight whose request may hold, or be about to be
/// granted, a lease in Redis. Dropped while `armed` (the wait ended any
/// way other than a grant registered or a final answer from Redis), it
/// cancels the request in the background: see [`RedisLock::abandon`].
struct Pending {
  lock: RedisLock,
  id: String,
  keys: Vec<String>,
  armed: bool,
}

impl Drop for Pending {
  fn drop(&mut self) {
    if self.armed {
      let (id, keys) = (std::mem::take(&mut self.id), std::mem::take(&mut self.keys));
      self.lock.abandon(id, keys, None);
    }
  }
}

/// Where a grant found by a given-up request's CANCEL goes: to the
/// acquisition (the sender, while it still waits within [`CANCEL_GRACE`]),
/// or, once it has taken the sender away, back to Redis by a RELEASE. One
/// lock decides, so a grant is handed over or released, never both or
/// neither.
/// A grant a CANCEL found: its tokens, and when its lease started.
type FoundGrant = (Vec<f64>, LeaseStart);

struct Verdict(Mutex<Option<tokio::sync::oneshot::Sender<FoundGrant>>>);

/// A given-up request whose CANCEL is on its way.
struct Abandoned {
  id: String,
  keys: Vec<String>,
  verdict: Option<Arc<Verdict>>,
  /// Taken before the CANCEL is written: a lease time the reply reports
  /// counts from here, never from later than the script ran.
  sent: Instant,
  _count: Cleanup,
}

impl Drop for Abandoned {
  fn drop(&mut self) {
    // Settled without a grant to hand over: the acquisition stops waiting
    // for one now rather than at the end of its grace.
    if let Some(verdict) = &self.verdict {
      verdict.0.lock().take();
    }
  }
}

/// Counts a background cleanup while it runs (close() waits for them).
struct Cleanup(Arc<Inner>);

impl Cleanup {
  fn start(inner: &Arc<Inner>) -> Self {
    inner.cleanups.fetch_add(1, Ordering::AcqRel);
    Cleanup(inner.clone())
  }
}

impl Drop for Cleanup {
  fn drop(&mut self) {
    self.0.cleanups.fetch_sub(1, Ordering::AcqRel);
  }
}

/// Awaits a given-up request's CANCEL, retrying it until Redis answers: a
/// reply that says the request was granted after all (its ACQUIRE ran
/// late, or a hand-off raced the cancel) is handed to the acquisition if it
/// still waits for it, else the lease is released at once. Retries go out
/// behind the first attempt on the same connection, so they too run after
/// the request's own commands.
async fn settle_abandoned(lock: RedisLock, mut job: Abandoned, mut call: FirstCall) {
  let mut pause = RETRY_PAUSE;
  // A CANCEL's KEYS are four per name plus the ticket counter.
  let names = job.keys.len().saturating_sub(1) / 4;
  loop {
    match call.await {
      Ok(reply) => {
        let granted = array(&reply)
          .ok()
          .filter(|items| {
            int_at(items, 0).ok().and_then(Outcome::from_code) == Some(Outcome::HandedOff)
          })
          .map(|items| tokens_and_pttl(&items, names));
        let Some(granted) = granted else { return };
        if let (Ok((tokens, pttl)), Some(verdict)) = (granted, &job.verdict) {
          if let Some(tx) = verdict.0.lock().take() {
            let start = LeaseStart {
              at: job.sent,
              length: pttl,
              handed_on: true,
            };
            if tx.send((tokens, start)).is_ok() {
              return;
            }
          }
        }
        release_until_answered(&lock, &job.id, &job.keys, false).await;
        return;
      }
      Err(RedisLockError::Closed) => return,
      Err(_) => {
        if lock.inner.closed.load(Ordering::Acquire) {
          return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_PAUSE_MAX);
        let (cancelling, keys, id) = (lock.clone(), job.keys.clone(), job.id.clone());
        job.sent = Instant::now();
        call = Box::pin(async move {
          let args = [cancelling.inner.prefix.as_str(), id.as_str()];
          let script = &cancelling.inner.scripts.cancel;
          cancelling.run(script, &keys, &args).await
        });
      }
    }
  }
}

/// RELEASEs request `id`'s lease, retrying until Redis answers or the
/// client is closed. RELEASE frees only a lease `id` still holds, so a
/// retry never touches anybody else's. `pause_first`: the caller's own
/// attempt just failed.
async fn release_until_answered(lock: &RedisLock, id: &str, keys: &[String], pause_first: bool) {
  let args = [lock.inner.prefix.as_str(), id];
  let mut pause = pause_first.then_some(RETRY_PAUSE);
  loop {
    if let Some(wait) = pause {
      if lock.inner.closed.load(Ordering::Acquire) {
        return;
      }
      tokio::time::sleep(wait).await;
    }
    pause = Some(pause.map_or(RETRY_PAUSE, |p| (p * 2).min(RETRY_PAUSE_MAX)));
    match lock.run(&lock.inner.scripts.release, keys, &args).await {
      Ok(_) | Err(RedisLockError::Closed) => return,
      Err(_) => {}
    }
  }
}

/// Delivers grant messages to the waiters of this client; a disconnection
/// makes every waiter re-run ACQUIRE (its grant may have been published
/// while we could not hear it).
fn route_push(inner: &Inner, push: PushInfo) {
  match push.kind {
    PushKind::Message => {
      let Some(payload) = push.data.get(1).and_then(value_string) else {
        return;
      };
      let mut parts = payload.split(' ');
      let (kind, id) = (parts.next(), parts.next());
      let Some(id) = id else { return };
      let wake = match kind {
        Some("g") => Grant::parse(parts).map(Wake::Granted),
        Some("w") => Some(Wake::Recheck),
        _ => None,
      };
      if let Some(wake) = wake {
        if let Some(tx) = inner.waiters.lock().get(id) {
          let _ = tx.send(wake);
        }
      }
    }
    PushKind::Disconnection => {
      for tx in inner.waiters.lock().values() {
        let _ = tx.send(Wake::Recheck);
      }
    }
    _ => {}
  }
}

/// Keeps one lease alive; reports it lost once and stops. The lease's time
/// runs from `start.at` (for a hand-off, when Redis granted it, not when
/// this process heard of it), so a process that was stalled meanwhile
/// renews at once or learns it lost the lease before anyone else can be
/// granted it.
async fn watchdog(
  inner: std::sync::Weak<Inner>,
  lease: u32,
  id: String,
  keys: Vec<String>,
  ttl: Duration,
  start: LeaseStart,
) {
  let validity = ttl.saturating_sub(drift(ttl));
  let mut valid_until = start.valid_until();
  let mut renew_at = start.at + start.length / 3;
  let ttl_arg = ttl.as_millis().max(1).to_string();
  loop {
    tokio::time::sleep_until(renew_at).await;
    loop {
      let Some(strong) = inner.upgrade() else {
        return;
      };
      let lock = RedisLock { inner: strong };
      let sent = Instant::now();
      let args = [lock.inner.prefix.as_str(), id.as_str(), ttl_arg.as_str()];
      let extend = lock.run(&lock.inner.scripts.extend, &keys, &args);
      match tokio::time::timeout_at(valid_until, extend).await {
        Ok(Ok(reply)) if int(&reply).ok() == Some(1) => {
          valid_until = sent + validity;
          renew_at = sent + ttl / 3;
          break;
        }
        Ok(Ok(_)) => {
          lost(
            &lock,
            lease,
            "the lease is gone from Redis (it expired or was taken)",
          );
          return;
        }
        Ok(Err(_)) if Instant::now() + Duration::from_millis(50) < valid_until => {
          tokio::time::sleep(Duration::from_millis(50)).await;
        }
        _ => {
          lost(
            &lock,
            lease,
            "no extension of the lease could be confirmed before it ran out",
          );
          return;
        }
      }
    }
  }
}

fn lost(lock: &RedisLock, lease: u32, why: &str) {
  let known = lock
    .inner
    .leases
    .lock()
    .get_mut(&lease)
    .map(|state| state.watchdog.take())
    .is_some();
  if known {
    (lock.inner.on_lost)(lease, format!("{}: {why}", lock.inner.url));
  }
}

fn array(v: &Value) -> Result<Vec<Value>> {
  match v {
    Value::Array(items) => Ok(items.clone()),
    other => Err(RedisLockError::Protocol(format!("{other:?}"))),
  }
}

fn int(v: &Value) -> Result<i64> {
  match v {
    Value::Int(i) => Ok(*i),
    Value::BulkString(b) => std::str::from_utf8(b)
      .ok()
      .and_then(|s| s.parse().ok())
      .ok_or_else(|| RedisLockError::Protocol(format!("{v:?}"))),
    other => Err(RedisLockError::Protocol(format!("{other:?}"))),
  }
}

fn int_at(items: &[Value], i: usize) -> Result<i64> {
  items
    .get(i)
    .ok_or_else(|| RedisLockError::Protocol(format!("missing item {i}")))
    .and_then(int)
}

fn value_string(v: &Value) -> Option<String> {
  match v {
    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
    Value::SimpleString(s) => Some(s.clone()),
    Value::VerbatimString { text, .. } => Some(text.clone()),
    _ => None,
  }
}

fn string_at(items: &[Value], i: usize) -> Option<String> {
  items.get(i).and_then(value_string)
}

fn tokens(items: &[Value]) -> Result<Vec<f64>> {
  items.iter().map(|v| int(v).map(|t| t as f64)).collect()
}

/// `{status, token per name, pttl}`: a grant found already made (by a
/// hand-off), with the ms its leases have left.
fn tokens_and_pttl(items: &[Value], names: usize) -> Result<(Vec<f64>, Duration)> {
  let tokens = tokens(items.get(1..=names).unwrap_or(&[]))?;
  if tokens.len() != names {
    return Err(RedisLockError::Protocol(format!("{items:?}")));
  }
  let pttl = int_at(items, names + 1)?.max(0) as u64;
  Ok((tokens, Duration::from_millis(pttl)))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn passwords_never_reach_messages() {
    assert_eq!(redact("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
    assert_eq!(redact("redis://h:1"), "redis://h:1");
    assert_eq!(redact("redis://:secret@h"), "redis://:***@h");
    assert_eq!(redact("redis://secret@h"), "redis://***@h");
    // An unencoded `@` in the password: nothing of it shows.
    assert_eq!(redact("redis://u:se@cret@h:1"), "redis://u:***@h:1");
    assert_eq!(redact("redis://u:se?c#r/et@h"), "redis://u:***@h");
    assert_eq!(
      redact("redis+unix:///run/r.sock?db=1&pass=se&cret&user=u"),
      "redis+unix:///run/r.sock?db=1&pass=***"
    );
    assert_eq!(
      redact("unix:///a@b/r.sock?PASSWORD=x"),
      "unix:///a@b/r.sock?PASSWORD=***"
    );
    assert_eq!(redact("u:secret@h:1"), "(not a URL)");
  }

  #[test]
  fn bad_urls_are_refused_up_front() {
    let made = RedisLock::new("http://nope", "keylock", Box::new(|_, _| {}));
    assert!(matches!(made, Err(RedisLockError::Url(_))));
  }
}
