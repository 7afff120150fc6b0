//! [`RedisBackend`]: the [`Backend`] over the Redis reach
//! ([`crate::redis::RedisLock`]). Every guarantee is the Lua scripts'; this
//! file only maps a [`Request`] to [`AcquireOptions`] and the answer back.
//!
//! What a [`Request`] cannot say, the backend fixes for all its leases:
//! the lease ttl and whether the watchdog keeps it alive (by default 30 s,
//! kept alive, so a lease lasts until it is released, as in process).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::core::{Backend, Outcome, Request};
use crate::redis::{AcquireOptions, Acquired, Mode, RedisLock, RedisLockError};

/// Request ids this backend gives its client have the top bit set, so they
/// never collide with ids a JS face picks (counting up from 1) on a shared
/// client. Unique among requests in flight unless 2^31 are.
const REQUEST_ID_BIT: u32 = 1 << 31;

/// Default lease ttl; with the watchdog on, renewed every ttl/3.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// A grant on Redis: the client's lease handle and one fencing token per
/// name, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisLease {
  pub handle: u32,
  pub tokens: Vec<f64>,
}

/// The Redis reach as a [`Backend`].
pub struct RedisBackend {
  lock: RedisLock,
  ttl: Duration,
  watchdog: bool,
  owner: String,
  requests: AtomicU32,
}

impl RedisBackend {
  /// Leases of [`DEFAULT_TTL`], kept alive by the watchdog.
  pub fn new(lock: RedisLock) -> Self {
    RedisBackend {
      lock,
      ttl: DEFAULT_TTL,
      watchdog: true,
      owner: String::new(),
      requests: AtomicU32::new(0),
    }
  }

  /// Lease ttl and watchdog for every later grant.
  pub fn with_lease(self, ttl: Duration, watchdog: bool) -> Self {
    RedisBackend {
      ttl,
      watchdog,
      ..self
    }
  }

  /// Stored with every lease, shown by [`RedisLock::inspect`].
  pub fn with_owner(self, owner: &str) -> Self {
    RedisBackend {
      owner: owner.to_owned(),
      ..self
    }
  }

  /// The client, for what the trait does not cover (extend, inspect).
  pub fn lock(&self) -> &RedisLock {
    &self.lock
  }

  fn next_request(&self) -> u32 {
    REQUEST_ID_BIT | self.requests.fetch_add(1, Ordering::Relaxed)
  }
}

impl Backend for RedisBackend {
  type Lease = RedisLease;
  type Error = RedisLockError;

  async fn acquire(
    &self,
    names: &[String],
    request: Request,
  ) -> Result<Outcome<RedisLease>, RedisLockError> {
    let options = AcquireOptions {
      ttl: self.ttl,
      timeout: request.timeout,
      mode: if request.wait { Mode::Wait } else { Mode::Try },
      max_pending: request.max_pending,
      skip_queue: request.skip_queue,
      owner: self.owner.clone(),
      watchdog: self.watchdog,
      space: String::new(),
    };
    let acquired = self
      .lock
      .acquire(self.next_request(), names.to_vec(), options)
      .await?;
    Ok(match acquired {
      Acquired::Granted { lease, tokens } => Outcome::Granted(RedisLease {
        handle: lease,
        tokens,
      }),
      Acquired::Busy { .. } => Outcome::Busy,
      Acquired::Rejected { index } => Outcome::Rejected { index },
      Acquired::TimedOut => Outcome::TimedOut,
    })
  }

  async fn release(&self, lease: RedisLease) -> Result<bool, RedisLockError> {
    self.lock.release(lease.handle).await
  }
}
