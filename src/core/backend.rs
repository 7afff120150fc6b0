//! The one backend trait every reach implements, so that the queue model's
//! guarantees are stated once, here, and proved once, by one suite run
//! against every implementation. Pure Rust: no N-API, no Redis.
//!
//! A [`Backend`] takes a request for some lock *names* and answers with an
//! [`Outcome`]: a lease, or why there is none. Expected results are values;
//! [`Backend::Error`] is for misuse and for failures of the medium (Redis
//! unreachable), never for a busy lock or a timeout.
//!
//! | implementation | reach | where the queue lives |
//! | --- | --- | --- |
//! | [`LocalBackend`](super::LocalBackend) | in-process | one core [`Table`](super::Table) behind a mutex |
//! | [`RedisBackend`](crate::backend::RedisBackend) | every process on one Redis | Redis keys + Lua scripts (`crate::redis`) |
//!
//! # Guarantees
//!
//! Every implementation keeps all of these. Each is proved by the test of
//! the same name in `tests/backend.rs`, which is written once, generic over
//! `B: Backend`, and run as `local::<name>` and `redis::<name>` (the latter
//! on a throwaway `redis-server` the suite starts itself).
//!
//! - **FIFO per name.** Waiters on one name are granted in the order they
//!   were enqueued (`fifo_per_name`).
//! - **No barging.** A release hands the name straight to the head of its
//!   queue, so a newcomer that asks right after the release, even with
//!   `wait: false`, finds it [`Outcome::Busy`]; a name with waiters is busy
//!   to a newcomer even when nobody holds it (`no_barging`).
//!   [`Request::skip_queue`] is the only way to the front; several skippers
//!   go the latest first, as async-lock does (`skip_queue_goes_to_the_front`).
//! - **All-or-nothing multi-name.** A request for several names is granted
//!   all of them at once, and waits for all of them together
//!   (`multi_name_all_or_nothing`). Two requests sharing names stand in the
//!   same order in every queue they share, so opposite name orders (`[a, b]`
//!   and `[b, a]`) never deadlock (`opposite_orders_do_not_deadlock`).
//! - **Capacity.** With [`Request::max_pending`] `= Some(n)`, a request that
//!   would wait is refused when a queue it would join already has `n`
//!   waiters: [`Outcome::Rejected`] names that queue by its index in the
//!   request (the first full one), and nothing changes — no name is taken
//!   or queued for (`max_pending_names_the_full_queue`).
//! - **A timed-out waiter never swallows a grant.** When
//!   [`Request::timeout`] passes, the waiter leaves every queue and gets
//!   [`Outcome::TimedOut`]; if it was what kept a free name from moving (a
//!   multi-name head), the next waiter is granted at once. If the grant
//!   raced the timeout, the waiter gets [`Outcome::Granted`] and must release
//!   it; either way the name passes on (`timeout_never_swallows_a_grant`).
//! - **Release is idempotent.** [`Backend::release`] of a lease answers
//!   `true` the first time and `false` after that, and never touches anybody
//!   else's lease (`release_twice_is_false`).
//!
//! # Cancel safety
//!
//! Give up through [`Request::timeout`]: that path is exact on every
//! backend. Dropping an `acquire` future mid-wait is exact on
//! [`LocalBackend`](super::LocalBackend) (the waiter leaves its queues, and a
//! grant that raced the drop is released). On Redis it is best effort: the
//! abandoned waiter is reaped after `crate::redis::LIVENESS`, and a grant
//! that raced the drop stays held until its lease ttl runs out.
//!
//! # What is not guaranteed
//!
//! - Exclusion is as strong as the medium: absolute in process, efficiency
//!   grade on one Redis (a lease can be lost; see `crate::redis`).
//! - [`Outcome::Busy`] does not say who holds the name; the reaches that
//!   know (Redis) say so through their own API.
//! - The moment a granted waiter runs: a grant is delivered to a task, and
//!   the task runs when its executor gets to it.

use std::fmt;
use std::future::Future;
use std::time::Duration;

/// How to ask for names. [`Request::wait`] and [`Request::no_wait`] are the
/// two starting points; the `with_*` methods refine them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
  /// Join the queue and wait (`true`), or answer [`Outcome::Busy`] at once
  /// when any name is held or waited on (`false`).
  pub wait: bool,
  /// How long to wait in the queue; `None` waits for ever. Ignored without
  /// `wait`.
  pub timeout: Option<Duration>,
  /// Refuse to wait behind a queue that already has this many waiters;
  /// `None` means no limit. `Some(0)` never waits but still takes free
  /// names.
  pub max_pending: Option<u32>,
  /// Wait at the front of every queue instead of the back.
  pub skip_queue: bool,
}

impl Request {
  /// Wait as long as it takes, at the back of the queue, with no limit.
  pub const fn wait() -> Self {
    Request {
      wait: true,
      timeout: None,
      max_pending: None,
      skip_queue: false,
    }
  }

  /// Take the names if nobody holds or waits for any of them, else
  /// [`Outcome::Busy`].
  pub const fn no_wait() -> Self {
    Request {
      wait: false,
      ..Request::wait()
    }
  }

  pub const fn with_timeout(self, timeout: Duration) -> Self {
    Request {
      timeout: Some(timeout),
      ..self
    }
  }

  pub const fn with_max_pending(self, max_pending: u32) -> Self {
    Request {
      max_pending: Some(max_pending),
      ..self
    }
  }

  pub const fn with_skip_queue(self) -> Self {
    Request {
      skip_queue: true,
      ..self
    }
  }
}

impl Default for Request {
  fn default() -> Self {
    Request::wait()
  }
}

/// What an acquisition came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<L> {
  /// Every name is the caller's until it releases the lease.
  Granted(L),
  /// `wait: false`, and a name is held or waited on. Nothing changed.
  Busy,
  /// The queue of the name at `index` (0-based, in request order) already
  /// had `max_pending` waiters. Nothing changed.
  Rejected { index: usize },
  /// The timeout passed first; the waiter has left every queue.
  TimedOut,
}

/// One lock space behind a small async interface. See the module docs for
/// the guarantees every implementation keeps.
pub trait Backend: Send + Sync {
  /// The handle of a grant. Clone only so that a caller can try a second
  /// release, which answers `false`.
  type Lease: Clone + fmt::Debug + Send + Sync + 'static;
  /// Misuse (no names, a name twice) or a failure of the medium.
  type Error: fmt::Debug + fmt::Display + Send + 'static;

  /// Takes every name in `names` at once, or waits for all of them
  /// together, as `request` says.
  fn acquire(
    &self,
    names: &[String],
    request: Request,
  ) -> impl Future<Output = Result<Outcome<Self::Lease>, Self::Error>> + Send;

  /// Gives every name of `lease` back, handing each to the head of its
  /// queue. `Ok(false)`: the lease was already released (or, on Redis, lost).
  fn release(&self, lease: Self::Lease) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}
