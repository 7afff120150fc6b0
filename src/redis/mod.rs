//! The Redis reach: keyed FIFO locks shared by every process that uses the
//! same Redis and prefix. Pure Rust on tokio; `crate::binding::redis` is its
//! N-API face.
//!
//! The queue lives in Redis (key names in `keys.rs` and
//! `docs/redis-keys.md`, values in `lua/common.lua`) and every state change
//! is one Lua script, so each step is atomic on the server.
//!
//! This file is the public API ([`RedisLock`], its options and outcomes)
//! and the guarantees below. The rest, by job: `client.rs` (constructors,
//! the lazy connection, running a script), `conn.rs` (URLs, TLS, Sentinel,
//! back-off), `keys.rs` (key names), `scripts.rs` (loading the Lua),
//! `acquire.rs` (a waiter's loop, grant messages, giving up),
//! `dispatch.rs` (first ACQUIREs in start order; cancels and releases
//! settled in the background), `watchdog.rs` (lease renewal and loss),
//! `reply.rs` (reading script replies), `error.rs` (errors, URL redaction).
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
//!   per name: `last + 1` while the lock's meta key lives, else the server
//!   time in µs, so it keeps increasing across a Redis restart that lost the
//!   counter (unless the server clock went back). Tests: `redis-scripts.test.js` "tokens keep increasing when
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
//!   (`CANCEL_GRACE`), else is released at once. A failed RELEASE is
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
//!   injectively, with the hash tag chosen by keyed-lock, so no key name can
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
//! # Counted keys
//! With [`AcquireOptions::counted`] (a lock's `permits` > 1,
//! docs/semaphores.md) a request runs the same protocol on a counted lock's
//! own keys, through the SEM_ twins of the scripts (`lua/sem_*.lua`, picked
//! from the keys by `Scripts::pick`): every guarantee above holds per
//! grant, with up to `permits` of weight out per name, one lease per
//! holder (each renewed by its own watchdog; a crashed holder's permits
//! come back when its lease runs out), and one release granting every head
//! that fits. A request naming another limit than the one stored for a
//! name ends with [`Acquired::OtherLimit`], nothing queued. Tests:
//! `__test__/redis-semaphore.test.js`,
//! `__test__/redis-semaphore-processes.test.js`.
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
use tokio::sync::{mpsc, OnceCell};
use tokio::time::Instant;

mod acquire;
mod client;
pub mod conn;
mod dispatch;
mod error;
pub mod keys;
mod reply;
mod scripts;
mod watchdog;

use acquire::{Started, Wake};
use client::{Client, Conn};
use conn::COMMAND_TIMEOUT;
pub use conn::{ConnOptions, SentinelOptions, TlsOptions};
use dispatch::Job;
pub use error::{RedisLockError, Result};
use keys::lock_keys;
pub use keys::{lease_key, slot};
use reply::{array, int, int_at, string_at};
use scripts::Scripts;

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
  /// A counted lock (`permits` > 1, docs/semaphores.md): its own keys and
  /// the SEM_ scripts. `None`: the mutex, exactly as before.
  pub counted: Option<Counted>,
}

/// A request on a counted lock: the key's limit, and the permits it takes
/// of each name (one weight per name, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
  pub permits: u32,
  pub weights: Vec<u32>,
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
  /// Counted: the name at `index` (0-based) is held or waited for with
  /// another limit, `permits`; nothing was queued.
  OtherLimit { index: usize, permits: i64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inspected {
  pub owner: Option<String>,
  /// Lease ms left; -2 when free, -1 without expiry.
  pub pttl: i64,
  pub waiters: i64,
}

/// Called once per lost lease with the lease handle and why.
pub type LostFn = Box<dyn Fn(u32, String) + Send + Sync>;

struct LeaseState {
  id: String,
  space: String,
  names: Vec<String>,
  /// A counted lock's lease (its keys are the counted ones).
  counted: bool,
  watchdog: Option<tokio::task::AbortHandle>,
}

/// Aborts that came before their acquisition started. Request ids increase
/// per client (the JS side numbers them), so an abort for an id at or below
/// the last one started came after its acquisition settled: there is
/// nothing to abort, and nothing is kept (else every such late abort would
/// stay here for ever).
#[derive(Default)]
struct EarlyAborts {
  requests: std::collections::HashSet<u32>,
  last_started: u32,
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
  aborted_early: Mutex<EarlyAborts>,
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

impl RedisLock {
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
        let mut early = self.inner.aborted_early.lock();
        if request > early.last_started {
          early.requests.insert(request);
        }
      }
    }
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
    let keys = self.keys_for(&state.space, &state.names, state.counted)?;
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

  /// Renews a lease to `ttl`. `Ok(false)`: it had been lost (never revived).
  pub async fn extend(&self, lease: u32, ttl: Duration) -> Result<bool> {
    let (id, space, names, counted) = {
      let leases = self.inner.leases.lock();
      let state = leases.get(&lease).ok_or(RedisLockError::NoLease(lease))?;
      (
        state.id.clone(),
        state.space.clone(),
        state.names.clone(),
        state.counted,
      )
    };
    let keys = self.keys_for(&space, &names, counted)?;
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

  /// Whether anybody holds or waits for counted lock `name` of `space`, in
  /// any process: its holders hash lives exactly as long as a holder's
  /// lease or its queue (`lua/sem_common.lua`, `sem_tidy`).
  pub async fn is_busy_counted(&self, space: &str, name: &str) -> Result<bool> {
    let holders = keys::lock_key(&self.inner.prefix, space, name, keys::Part::Holders);
    let found = self.command(&["EXISTS".to_string(), holders]).await?;
    Ok(int(&found)? > 0)
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

#[cfg(test)]
mod tests {
  use super::*;

  /// The claim is one number in two languages (Lua grants it, the Rust
  /// watchdog times it): they must agree, or a waiter renews too late.
  #[test]
  fn the_lua_claim_is_the_rust_claim() {
    let common = include_str!("lua/common.lua");
    let lua_ms = common
      .lines()
      .find_map(|l| l.trim().strip_prefix("local CLAIM_MS = "))
      .and_then(|v| v.trim().parse::<u128>().ok());
    assert_eq!(lua_ms, Some(CLAIM.as_millis()));
  }

  /// An abort that lands after its acquisition settled is dropped, not
  /// kept for ever; one that lands before its acquisition starts still
  /// ends it.
  #[test]
  fn late_aborts_are_not_kept() {
    let lock =
      RedisLock::new("redis://127.0.0.1:1", "keyed-lock", Box::new(|_, _| {})).expect("opens");
    let opts = AcquireOptions {
      ttl: Duration::from_secs(1),
      timeout: None,
      mode: Mode::Wait,
      max_pending: None,
      skip_queue: false,
      owner: String::new(),
      watchdog: false,
      space: String::new(),
      counted: None,
    };
    let names = vec!["k".to_string()];
    lock.abort(1);
    let early = lock.start(1, &names, &opts).expect("starts");
    assert!(matches!(early, Started::Done(Acquired::TimedOut)));
    for request in 2..1000 {
      drop(lock.start(request, &names, &opts).expect("starts"));
      // Its acquisition is over (dropped): the abort comes too late.
      lock.abort(request);
    }
    assert!(lock.inner.aborted_early.lock().requests.is_empty());
    // An abort for a request never started is dropped by the next start.
    lock.abort(5000);
    drop(lock.start(5001, &names, &opts).expect("starts"));
    assert!(lock.inner.aborted_early.lock().requests.is_empty());
  }

  #[test]
  fn bad_urls_are_refused_up_front() {
    let made = RedisLock::new("http://nope", "keyed-lock", Box::new(|_, _| {}));
    assert!(matches!(made, Err(RedisLockError::Url(_))));
  }
}
