//! One scenario suite over every reach as it ships: the core [`Table`] (the
//! isolate reach, as `binding` drives it), the [`ProcessSpace`] (the process
//! reach) and the [`RedisLock`] client (the Redis reach, against a
//! `redis-server` each test starts on a free loopback port and stops by
//! pid). Each scenario is written once, generic over [`Reach`], a test-only
//! driver; nothing in the shipped code calls the reaches through a trait.
//!
//! Where the reaches differ by design, the test says so by name (each
//! `DIFFERENCE:` comment), and asserts the difference rather than skipping:
//! - **try mode**: Redis answers `BUSY` (with the holder); in process a try
//!   is `maxPending: 0`, refused as `REJECTED` (`try_on_a_held_key_is_refused`);
//! - **fencing tokens** are made by Redis on the Redis reach; in process
//!   they are made by JS (`tokens()` in `lib/spaces/isolate.js` and
//!   `lib/spaces/process.js`), so the core grants carry none
//!   (`tokens_strictly_increase`);
//! - **close**: an isolate table has none (it is dropped with its lock); a
//!   process member leaves, a Redis client closes (`close_frees_everything`).
//!
//! The Redis half fails, never skips, when `redis-server` cannot be started.
//! On Redis, a test waits for a waiter to show in the queue before the next
//! one starts (`joined`): the order in which waiters join is what the tests
//! are about, and only the server can say when a waiter has joined.

use std::time::Duration;

use keyed_lock::core::UNLIMITED;

// A crate root looks for modules beside it; the drivers live in a folder of
// their own so that `tests/` holds one file per suite.
#[path = "conformance/reaches.rs"]
mod reaches;

use reaches::{IsolateReach, ProcessReach, RedisReach, RedisServer};

/// A test that takes longer than this has deadlocked.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// How a request asks.
#[derive(Debug, Clone, Copy)]
struct How {
  /// false: try mode (do not wait).
  wait: bool,
  max_pending: Option<u32>,
  skip_queue: bool,
}

const WAIT: How = How {
  wait: true,
  max_pending: None,
  skip_queue: false,
};
const TRY: How = How {
  wait: false,
  max_pending: None,
  skip_queue: false,
};

/// A grant: who holds which keys, and the fencing token per key (Redis).
#[derive(Debug)]
struct Held {
  client: usize,
  keys: Vec<String>,
  lease: u32,
  tokens: Vec<f64>,
}

#[derive(Debug)]
enum Asked<W> {
  Granted(Held),
  Queued(W),
  Rejected(usize),
  Busy,
}

/// What a scenario may do on a reach. `client` numbers the parties (a JS
/// thread in process, a Redis client on Redis; one table's caller for the
/// isolate reach).
trait Reach {
  type Waiter: std::fmt::Debug;
  const NAME: &'static str;

  async fn acquire(&mut self, client: usize, keys: &[&str], how: How) -> Asked<Self::Waiter>;
  /// The grant of `waiter` if it has one now; `None` if it still waits.
  async fn grant(&mut self, waiter: &mut Self::Waiter) -> Option<Held>;
  /// Waits (on Redis) for `waiter`'s grant; the in-process reaches must
  /// have granted it already.
  async fn granted(&mut self, waiter: Self::Waiter) -> Held;
  async fn release(&mut self, held: Held);
  /// Takes a waiter out; `Some` when the grant won the race (it holds).
  async fn cancel(&mut self, waiter: Self::Waiter) -> Option<Held>;
  async fn is_busy(&mut self, key: &str) -> bool;
  /// Returns once `key` has `n` live waiters (asserts it in process).
  async fn joined(&mut self, key: &str, n: u32);
  /// `client` goes away: its holds pass on, its waiters leave. `None`:
  /// the reach has no close.
  async fn close(&mut self, client: usize) -> Option<()>;
}

fn max_pending(how: How) -> u32 {
  // DIFFERENCE (try mode): in process a try is maxPending 0.
  match (how.wait, how.max_pending) {
    (false, _) => 0,
    (true, Some(n)) => n,
    (true, None) => UNLIMITED,
  }
}

fn strings(keys: &[&str]) -> Vec<String> {
  keys.iter().map(|k| k.to_string()).collect()
}

async fn granted_now<R: Reach>(r: &mut R, client: usize, keys: &[&str], how: How) -> Held {
  match r.acquire(client, keys, how).await {
    Asked::Granted(h) => h,
    other => panic!("{}: {keys:?} should be granted, got {other:?}", R::NAME),
  }
}

async fn queued<R: Reach>(r: &mut R, client: usize, keys: &[&str], how: How) -> R::Waiter {
  match r.acquire(client, keys, how).await {
    Asked::Queued(w) => w,
    other => panic!("{}: {keys:?} should be queued, got {other:?}", R::NAME),
  }
}

async fn still_waits<R: Reach>(r: &mut R, w: &mut R::Waiter) {
  if let Some(h) = r.grant(w).await {
    panic!("{}: {w:?} should still wait, holds {h:?}", R::NAME);
  }
}

// ---------------------------------------------------------------------------
// The scenarios.

/// Waiters on one key are granted in the order they joined; a release hands
/// the key to the head, so a newcomer cannot barge in.
async fn fifo_and_no_barging<R: Reach>(r: &mut R) {
  let first = granted_now(r, 0, &["k"], WAIT).await;
  let mut waiters = Vec::new();
  for (i, client) in [1, 2, 3].into_iter().enumerate() {
    waiters.push(queued(r, client, &["k"], WAIT).await);
    r.joined("k", i as u32 + 1).await;
  }
  r.release(first).await;
  let mut order = Vec::new();
  let mut rest = waiters.into_iter();
  while let Some(w) = rest.next() {
    let held = r.granted(w).await;
    // A newcomer now queues behind the ones still waiting.
    match r.acquire(9, &["k"], TRY).await {
      Asked::Granted(h) => panic!("{}: a newcomer barged in: {h:?}", R::NAME),
      Asked::Queued(w) => panic!("{}: a try queued: {w:?}", R::NAME),
      Asked::Rejected(_) | Asked::Busy => {}
    }
    let mut others: Vec<R::Waiter> = rest.collect();
    for w in &mut others {
      still_waits(r, w).await;
    }
    rest = others.into_iter();
    order.push(held.client);
    r.release(held).await;
  }
  assert_eq!(order, [1, 2, 3], "{}: grant order", R::NAME);
  assert!(!r.is_busy("k").await, "{}: k is free at the end", R::NAME);
}

/// A multi-key request waits for all its keys holding none of them, yet a
/// newcomer on one of them queues behind it; opposite key orders do not
/// deadlock.
async fn multi_key_all_or_nothing<R: Reach>(r: &mut R) {
  let y = granted_now(r, 0, &["y"], WAIT).await;
  let mut xy = queued(r, 1, &["x", "y"], WAIT).await;
  r.joined("x", 1).await;
  let mut x = queued(r, 2, &["x"], WAIT).await;
  r.joined("x", 2).await;
  still_waits(r, &mut xy).await;
  r.release(y).await;
  let both = r.granted(xy).await;
  assert_eq!(both.keys, ["x", "y"], "{}: granted together", R::NAME);
  still_waits(r, &mut x).await;
  r.release(both).await;
  let x = r.granted(x).await;
  r.release(x).await;

  // Opposite orders.
  let a = granted_now(r, 0, &["a"], WAIT).await;
  let b = granted_now(r, 1, &["b"], WAIT).await;
  let mut ab = queued(r, 2, &["a", "b"], WAIT).await;
  r.joined("a", 1).await;
  let mut ba = queued(r, 3, &["b", "a"], WAIT).await;
  r.joined("a", 2).await;
  r.release(a).await;
  still_waits(r, &mut ab).await;
  still_waits(r, &mut ba).await;
  r.release(b).await;
  let ab = r.granted(ab).await;
  still_waits(r, &mut ba).await;
  r.release(ab).await;
  let ba = r.granted(ba).await;
  r.release(ba).await;
  assert!(!r.is_busy("a").await && !r.is_busy("b").await);
}

/// A cancel that loses the race to a grant keeps the grant: nothing is
/// swallowed, and releasing it passes the key on.
async fn cancel_racing_a_grant<R: Reach>(r: &mut R) {
  let first = granted_now(r, 0, &["k"], WAIT).await;
  let second = queued(r, 1, &["k"], WAIT).await;
  r.joined("k", 1).await;
  let third = queued(r, 2, &["k"], WAIT).await;
  r.joined("k", 2).await;
  r.release(first).await; // grants `second`...
  let kept = r.cancel(second).await; // ...which then gives up
  let kept = kept.unwrap_or_else(|| panic!("{}: the grant was swallowed", R::NAME));
  assert_eq!(kept.client, 1);
  r.release(kept).await;
  let third = r.granted(third).await;
  r.release(third).await;

  // A cancel that wins leaves the queue, and the next waiter moves up.
  let first = granted_now(r, 0, &["k"], WAIT).await;
  let second = queued(r, 1, &["k"], WAIT).await;
  r.joined("k", 1).await;
  let third = queued(r, 2, &["k"], WAIT).await;
  r.joined("k", 2).await;
  assert!(r.cancel(second).await.is_none(), "{}: cancelled", R::NAME);
  r.joined("k", 1).await;
  r.release(first).await;
  let third = r.granted(third).await;
  r.release(third).await;
  assert!(!r.is_busy("k").await);
}

/// `maxPending` refuses a request whose key already has that many waiters,
/// naming the key, and changes nothing.
async fn max_pending_names_the_full_key<R: Reach>(r: &mut R) {
  let k = granted_now(r, 0, &["k"], WAIT).await;
  let w = queued(r, 1, &["k"], WAIT).await;
  r.joined("k", 1).await;
  let one = How {
    max_pending: Some(1),
    ..WAIT
  };
  match r.acquire(2, &["j", "k"], one).await {
    Asked::Rejected(index) => assert_eq!(index, 1, "{}: names keys[1]", R::NAME),
    other => panic!("{}: should be refused, got {other:?}", R::NAME),
  }
  assert!(
    !r.is_busy("j").await,
    "{}: a refusal takes nothing",
    R::NAME
  );
  r.release(k).await;
  let w = r.granted(w).await;
  r.release(w).await;
}

/// `skipQueue` goes to the front of the queue.
async fn skip_queue_goes_first<R: Reach>(r: &mut R) {
  let k = granted_now(r, 0, &["k"], WAIT).await;
  let mut plain = queued(r, 1, &["k"], WAIT).await;
  r.joined("k", 1).await;
  let skip = How {
    skip_queue: true,
    ..WAIT
  };
  let skipper = queued(r, 2, &["k"], skip).await;
  r.joined("k", 2).await;
  r.release(k).await;
  let skipper = r.granted(skipper).await;
  assert_eq!(skipper.client, 2);
  still_waits(r, &mut plain).await;
  r.release(skipper).await;
  let plain = r.granted(plain).await;
  r.release(plain).await;
}

/// Try mode on a held key takes nothing.
async fn try_on_a_held_key_is_refused<R: Reach>(r: &mut R) {
  let k = granted_now(r, 0, &["k"], WAIT).await;
  match r.acquire(1, &["k"], TRY).await {
    // DIFFERENCE (try mode): Redis says BUSY; in process, REJECTED.
    Asked::Busy => assert_eq!(R::NAME, "redis"),
    Asked::Rejected(0) => assert_ne!(R::NAME, "redis"),
    other => panic!("{}: a try on a held key got {other:?}", R::NAME),
  }
  r.release(k).await;
  let k = granted_now(r, 1, &["k"], TRY).await;
  r.release(k).await;
}

/// `isBusy` is true while a key is held or waited on, false after.
async fn is_busy_tracks_holds_and_waiters<R: Reach>(r: &mut R) {
  assert!(!r.is_busy("k").await);
  let k = granted_now(r, 0, &["k"], WAIT).await;
  assert!(r.is_busy("k").await);
  let w = queued(r, 1, &["k"], WAIT).await;
  r.joined("k", 1).await;
  r.release(k).await;
  assert!(r.is_busy("k").await, "{}: the waiter holds it now", R::NAME);
  let w = r.granted(w).await;
  r.release(w).await;
  assert!(!r.is_busy("k").await);
}

/// Fencing tokens strictly increase per key, across holders.
async fn tokens_strictly_increase<R: Reach>(r: &mut R) {
  let mut last = f64::NEG_INFINITY;
  let mut seen = 0;
  for client in 0..5 {
    let held = granted_now(r, client % 2, &["k"], WAIT).await;
    // DIFFERENCE (tokens): only Redis makes tokens below JS.
    if R::NAME == "redis" {
      assert_eq!(held.tokens.len(), 1);
      assert!(
        held.tokens[0] > last,
        "token {} after {last}",
        held.tokens[0]
      );
      last = held.tokens[0];
      seen += 1;
    } else {
      assert!(held.tokens.is_empty());
    }
    r.release(held).await;
  }
  assert_eq!(seen, if R::NAME == "redis" { 5 } else { 0 });
}

/// A party that goes away gives up what it holds and leaves the queues.
async fn close_frees_everything<R: Reach>(r: &mut R) {
  let k = granted_now(r, 0, &["k"], WAIT).await;
  let w = queued(r, 0, &["j", "k"], WAIT).await;
  r.joined("k", 1).await;
  let other = queued(r, 1, &["k"], WAIT).await;
  r.joined("k", 2).await;
  match r.close(0).await {
    // DIFFERENCE (close): an isolate table is dropped with its lock.
    None => {
      assert_eq!(R::NAME, "isolate");
      r.release(k).await;
      let w = r.granted(w).await;
      r.release(w).await;
    }
    Some(()) => {
      drop(k);
      drop(w);
    }
  }
  let other = r.granted(other).await;
  assert_eq!(other.client, 1);
  assert!(
    !r.is_busy("j").await,
    "{}: the closed party's waiter left",
    R::NAME
  );
  r.release(other).await;
  assert!(!r.is_busy("k").await);
}

async fn within_deadline(test: impl std::future::Future<Output = ()>) {
  tokio::time::timeout(TEST_DEADLINE, test)
    .await
    .expect("the test finished (no deadlock)");
}

macro_rules! conformance {
  ($($scenario:ident),* $(,)?) => {
    mod isolate {
      $(
        #[tokio::test]
        async fn $scenario() {
          super::within_deadline(super::$scenario(&mut super::IsolateReach::new())).await;
        }
      )*
    }

    mod process {
      $(
        #[tokio::test]
        async fn $scenario() {
          super::within_deadline(super::$scenario(&mut super::ProcessReach::new())).await;
        }
      )*
    }

    mod redis {
      $(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $scenario() {
          let server = super::RedisServer::start();
          let mut reach = super::RedisReach::new(&server);
          super::within_deadline(super::$scenario(&mut reach)).await;
          for lock in reach.locks.values() {
            lock.close().await;
          }
          drop(server);
        }
      )*
    }
  };
}

conformance!(
  fifo_and_no_barging,
  multi_key_all_or_nothing,
  cancel_racing_a_grant,
  max_pending_names_the_full_key,
  skip_queue_goes_first,
  try_on_a_held_key_is_refused,
  is_busy_tracks_holds_and_waiters,
  tokens_strictly_increase,
  close_frees_everything,
);
