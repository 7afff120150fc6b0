//! One acquisition after its first step: the waiter's loop of ACQUIRE
//! re-runs and grant messages ([`route_push`] delivers them from the
//! connection's reader), taking a hand-off only while it is still valid,
//! giving up (timeout, abort) without swallowing a grant, and registering
//! the lease (with its watchdog).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::conn::{next_delay, MIN_RECONNECT_DELAY, OUTAGE_LIMIT};
use super::dispatch::{FirstCall, Job, Submit, Verdict};
use super::reply::{array, int_at, string_at, tokens, tokens_and_pttl, value_string};
use super::watchdog::{watchdog, LeaseStart};
use super::{
  AcquireOptions, Acquired, Counted, Inner, LeaseState, Mode, RedisLock, RedisLockError, Result,
  LIVENESS, RECHECK,
};
use crate::core::Outcome;

/// How long a timed-out or aborted acquisition waits for its CANCEL's
/// answer before it settles as timed out. The CANCEL itself is not given up
/// then: it is awaited (and retried) in the background, and a grant it
/// reports is released (see `settle_abandoned`).
const CANCEL_GRACE: Duration = Duration::from_millis(250);

/// What a waiter is told through its process's grant channel.
#[derive(Debug)]
pub(super) enum Wake {
  /// A single-name grant.
  Granted(Grant),
  /// Re-run ACQUIRE now (multi-name head, or a reconnect).
  Recheck,
  /// The caller gave up (AbortSignal): leave the queues.
  Abort,
}

/// A single-name grant, as its message tells it: `g <waiter> <token>
/// <server µs when granted> <lease ms from then>`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grant {
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

/// Delivers grant messages to the waiters of this client; a disconnection
/// makes every waiter re-run ACQUIRE (its grant may have been published
/// while we could not hear it).
pub(super) fn route_push(inner: &Inner, push: PushInfo) {
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

pub(super) enum Started {
  Sent(SentAcquire),
  /// Settled without a command (aborted before it started).
  Done(Acquired),
}

pub(super) struct SentAcquire {
  id: String,
  keys: Vec<String>,
  args: Vec<String>,
  wakes: mpsc::UnboundedReceiver<Wake>,
  first_reply: tokio::sync::oneshot::Receiver<FirstCall>,
  _unregister: Unregister,
}

struct Unregister(Arc<Inner>, String);

impl Drop for Unregister {
  fn drop(&mut self) {
    self.0.waiters.lock().remove(&self.1);
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

impl RedisLock {
  /// The synchronous part of an acquisition (see `start_acquire`).
  pub(super) fn start(
    &self,
    request: u32,
    names: &[String],
    opts: &AcquireOptions,
  ) -> Result<Started> {
    if self.inner.closing.load(Ordering::Acquire) {
      return Err(RedisLockError::Closed);
    }
    let id = format!("{}:r{}", self.inner.client_id, request);
    let keys = self.keys_for(&opts.space, names, opts.counted.is_some())?;
    let (tx, rx) = mpsc::unbounded_channel();
    // Registered before the first ACQUIRE: a grant may be published before
    // the script's own reply reaches us.
    self.inner.waiters.lock().insert(id.clone(), tx);
    let unregister = Unregister(self.inner.clone(), id.clone());
    let aborted = {
      let mut early = self.inner.aborted_early.lock();
      early.last_started = early.last_started.max(request);
      let aborted = early.requests.remove(&request);
      if !early.requests.is_empty() {
        // Aborted before a start that never came (its call threw first).
        early.requests.retain(|&r| r > request);
      }
      aborted
    };
    if aborted {
      return Ok(Started::Done(Acquired::TimedOut));
    }
    let mode = match opts.mode {
      Mode::Try => "0",
      Mode::Wait => "1",
      Mode::Force => "2",
    };
    let mut args = vec![
      self.inner.prefix.clone(),
      id.clone(),
      opts.ttl.as_millis().max(1).to_string(),
      mode.to_string(),
      opts.max_pending.map_or(-1i64, i64::from).to_string(),
      if opts.skip_queue { "1" } else { "0" }.to_string(),
      opts.owner.clone(),
      LIVENESS.as_millis().to_string(),
    ];
    if let Some(counted) = &opts.counted {
      counted_args(counted, names.len(), &mut args)?;
    }
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

  pub(super) async fn acquire_or_wait(
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
    // Since when Redis has been failing us, and the next back-off pause.
    let mut outage: Option<Instant> = None;
    let mut pause = MIN_RECONNECT_DELAY;
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
            // Not one answer before the timeout from a Redis this client
            // never reached (connecting hangs), or to a try: the error says
            // where. One it had reached is in an outage, which ends a wait
            // as any timeout does. Either way the ACQUIRE may still run when
            // Redis comes back: `pending` cancels it then (and releases
            // what it was granted).
            Err(_) if first && (self.inner.conn.get().is_none() || opts.mode == Mode::Try) => {
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
        Ok(r) => {
          outage = None;
          pause = MIN_RECONNECT_DELAY;
          r
        }
        // An outage of a Redis this client had reached (a failover, a
        // restart, a dropped connection), or any failure once queued: keep
        // re-running (re-resolving the master, reconnecting; re-enqueueing
        // after a restart) with the reconnect back-off, until it answers or
        // the timeout passes, which then ends the wait as any timeout does.
        // Without a timeout, an outage longer than OUTAGE_LIMIT is reported.
        // A try (Mode::Try) waits for nothing, an outage included: it
        // reports it at once (a quorum counts that master as refusing).
        Err(e)
          if !first
            || (opts.mode != Mode::Try && matches!(e, RedisLockError::Unreachable { .. })) =>
        {
          let since = *outage.get_or_insert(sent);
          if deadline.is_none() && since.elapsed() >= OUTAGE_LIMIT {
            return Err(e);
          }
          let retry = Instant::now() + pause;
          pause = next_delay(pause);
          match tokio::time::timeout_at(deadline.map_or(retry, |d| d.min(retry)), rx.recv()).await {
            Ok(Some(Wake::Abort)) => return self.give_up(&mut pending, names, &opts).await,
            Ok(None) => return Err(RedisLockError::Closed),
            // Reconnected, or moved to a new master (or a grant, which the
            // re-run finds): at once.
            Ok(Some(_)) => {}
            Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
              return self.give_up(&mut pending, names, &opts).await
            }
            Err(_) => {}
          }
          continue;
        }
        // Refused at the start (a client that never connected: a wrong
        // address, password or certificate), or a failure that waiting
        // does not fix: at once, naming the URL (`pending` cancels what
        // may still run).
        Err(e) => return Err(e),
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
          let index = (int_at(&items, 1)?.max(1) - 1) as usize;
          if let Ok(permits) = int_at(&items, 2) {
            return Ok(Acquired::OtherLimit { index, permits });
          }
          return Ok(Acquired::Rejected { index });
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
    let keys = self.keys_for(&opts.space, names, opts.counted.is_some())?;
    let args = [self.inner.prefix.as_str(), pending.id.as_str()];
    let _ = self.run(&self.inner.scripts.release, &keys, &args).await;
    Ok(None)
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
    let keys = self.keys_for(&opts.space, &names, opts.counted.is_some())?;
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
        counted: opts.counted.is_some(),
        watchdog,
      },
    );
    Ok(Acquired::Granted { lease, tokens })
  }
}

/// SEM_ACQUIRE's extra ARGV: the key's limit, then one weight per name
/// (each from 1 to the limit; the JS side has said so to the caller
/// already, this keeps a bad call from queueing a request that can never
/// be granted).
fn counted_args(counted: &Counted, names: usize, args: &mut Vec<String>) -> Result<()> {
  let fits = |w: &u32| (1..=counted.permits).contains(w);
  if counted.weights.len() != names || !counted.weights.iter().all(fits) {
    return Err(RedisLockError::Protocol(format!(
      "weights {:?} for {names} names of a lock of {} permits",
      counted.weights, counted.permits
    )));
  }
  args.push(counted.permits.to_string());
  args.extend(counted.weights.iter().map(u32::to_string));
  Ok(())
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn counted_args_are_the_limit_then_a_weight_per_name() {
    let mut args = vec![];
    let counted = Counted {
      permits: 3,
      weights: vec![1, 3],
    };
    assert!(counted_args(&counted, 2, &mut args).is_ok());
    assert_eq!(args, ["3", "1", "3"]);
    for weights in [vec![1], vec![0, 1], vec![1, 4]] {
      let bad = Counted {
        permits: 3,
        weights,
      };
      assert!(matches!(
        counted_args(&bad, 2, &mut vec![]),
        Err(RedisLockError::Protocol(_))
      ));
    }
  }
}
