//! Keeping a lease alive off the JS thread: when a lease began
//! ([`LeaseStart`]), how long this client may count on it (redlock's
//! [`drift`] rule), the renewal task ([`watchdog`], every ttl/3), and the
//! one `lost` report when a renewal cannot be confirmed in time.

use std::time::Duration;

use tokio::time::Instant;

use super::reply::int;
use super::{Inner, RedisLock};

/// When a lease began (no later than the truth) and how long from then it
/// runs unless renewed.
#[derive(Debug, Clone, Copy)]
pub(super) struct LeaseStart {
  pub(super) at: Instant,
  pub(super) length: Duration,
  /// Granted by a hand-off: the lease may be shorter than the ttl.
  pub(super) handed_on: bool,
}

/// redlock's drift margin: 1% + 2 ms.
fn drift(d: Duration) -> Duration {
  d / 100 + Duration::from_millis(2)
}

impl LeaseStart {
  /// Until when this client may count on the lease without a renewal.
  pub(super) fn valid_until(&self) -> Instant {
    self.at + self.length.saturating_sub(drift(self.length))
  }
}

/// Keeps one lease alive; reports it lost once and stops. The lease's time
/// runs from `start.at` (for a hand-off, when Redis granted it, not when
/// this process heard of it), so a process that was stalled meanwhile
/// renews at once or learns it lost the lease before anyone else can be
/// granted it.
pub(super) async fn watchdog(
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
