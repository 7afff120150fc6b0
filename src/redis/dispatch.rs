//! The ordered dispatcher and the background settling of given-up
//! requests. One task per client sends first ACQUIREs in the order
//! acquisitions were started (so FIFO holds within a process), and queues
//! each given-up request's CANCEL behind its ACQUIRE on the same
//! connection; the CANCEL (or a failed RELEASE) is retried until Redis
//! answers, and a grant it finds goes to the caller if it still waits, else
//! back to Redis.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::reply::{array, int_at, tokens_and_pttl};
use super::watchdog::LeaseStart;
use super::{Inner, RedisLock, RedisLockError, Result};
use crate::core::Outcome;

/// First pause between attempts of a background CANCEL or RELEASE that
/// failed; it doubles up to [`RETRY_PAUSE_MAX`]. They retry until Redis
/// answers or the client is closed: a stopped server may still hold the
/// request's ACQUIRE in its input buffer, and run it whenever it resumes.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(1000);

/// What the dispatcher sends, in the order it was asked to.
pub(super) enum Job {
  /// A first ACQUIRE.
  Acquire(Submit),
  /// The CANCEL of a request its caller gave up (see `RedisLock::abandon`):
  /// queued behind that request's ACQUIRE, so Redis runs it after.
  Abandon(Abandoned),
}

/// A first ACQUIRE waiting to be sent, in start order.
pub(super) struct Submit {
  pub(super) keys: Vec<String>,
  pub(super) args: Vec<String>,
  /// Gets the command back once it is in the write queue (or its answer):
  /// the acquisition awaits the reply itself, with no task in between.
  pub(super) reply: tokio::sync::oneshot::Sender<FirstCall>,
}

pub(super) type FirstCall =
  std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value>> + Send>>;

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
        lock.load_counted(&keys).await;
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

/// A grant a CANCEL found: its tokens, and when its lease started.
type FoundGrant = (Vec<f64>, LeaseStart);

/// Where a grant found by a given-up request's CANCEL goes: to the
/// acquisition (the sender, while it still waits within `CANCEL_GRACE`),
/// or, once it has taken the sender away, back to Redis by a RELEASE. One
/// lock decides, so a grant is handed over or released, never both or
/// neither.
pub(super) struct Verdict(pub(super) Mutex<Option<tokio::sync::oneshot::Sender<FoundGrant>>>);

/// A given-up request whose CANCEL is on its way.
pub(super) struct Abandoned {
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
pub(super) struct Cleanup(Arc<Inner>);

impl Cleanup {
  pub(super) fn start(inner: &Arc<Inner>) -> Self {
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

impl RedisLock {
  pub(super) fn ensure_dispatcher(&self) {
    if let Some(submissions) = self.inner.submissions.lock().take() {
      tokio::spawn(dispatch(Arc::downgrade(&self.inner), submissions));
    }
  }

  /// Cancels request `id` in Redis in the background, after every command
  /// it has sent, retrying until Redis answers (or the client is closed),
  /// and releases whatever the CANCEL finds granted to it, unless
  /// `verdict` still waits to hand that grant to its caller.
  pub(super) fn abandon(&self, id: String, keys: Vec<String>, verdict: Option<Arc<Verdict>>) {
    let job = Abandoned {
      id,
      keys,
      verdict,
      sent: Instant::now(),
      _count: Cleanup::start(&self.inner),
    };
    let _ = self.inner.submit.send(Job::Abandon(job));
  }

  /// RELEASEs the lease of request `id` once Redis answers (retrying).
  pub(super) fn release_in_background(&self, id: String, keys: Vec<String>) {
    let lock = self.clone();
    let count = Cleanup::start(&self.inner);
    tokio::spawn(async move {
      let _count = count;
      release_until_answered(&lock, &id, &keys, true).await;
    });
  }
}
