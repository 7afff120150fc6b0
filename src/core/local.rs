//! [`LocalBackend`]: the [`Backend`] over one in-process [`Table`], for
//! tasks of one process. No second queue: every decision is the table's.
//!
//! What it adds to the table:
//!
//! - **Names.** A name is interned to a [`KeyId`] while a lease or a waiter
//!   uses it; then the id is reused, so a name costs memory only while it is
//!   held or waited on ([`LocalBackend::names`]).
//! - **Leases.** A grant is a [`LocalLease`], an id never reused, so a
//!   second release of the same lease finds nothing and answers `false`.
//! - **Wake-ups.** Each waiter has a `tokio::sync::oneshot`. Grants are
//!   collected under the mutex, the guard is dropped, and only then are they
//!   sent: nothing is called while the table is locked. A grant whose
//!   waiter has gone (its future was dropped) is released at once, so it
//!   passes on to the next waiter.
//!
//! Dependencies: `tokio::sync` for the wake-ups (no runtime needed), and
//! `tokio::time` for [`Request::timeout`], so a request with a timeout that
//! has to wait must be polled inside a tokio runtime with time enabled.
//!
//! # Cancel safety
//!
//! Dropping an `acquire` future is exact: a waiter still waiting leaves its
//! queues (which may grant the next waiter), and a grant that raced the drop
//! is released. Waiters are told apart by their lease id, never by ticket
//! id alone, since the table reuses ticket ids.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::backend::{Backend, Outcome, Request};
use super::table::{Acquire, Cancel, CoreError, KeyId, Table, TicketId, UNLIMITED};

/// A grant of a [`LocalBackend`]. Ids are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalLease(u64);

/// One in-process lock space of named locks. See the module docs.
#[derive(Default)]
pub struct LocalBackend {
  state: Mutex<State>,
}

/// A grant to send once the mutex is dropped.
type Delivery = (oneshot::Sender<LocalLease>, LocalLease);

#[derive(Default)]
struct State {
  table: Table,
  ids: HashMap<String, KeyId>,
  /// Indexed by key id; `uses == 0` marks a free id (also in `free_keys`).
  keys: Vec<KeyName>,
  free_keys: Vec<KeyId>,
  waiters: HashMap<TicketId, Waiter>,
  leases: HashMap<u64, Box<[KeyId]>>,
  next_lease: u64,
}

#[derive(Default)]
struct KeyName {
  name: String,
  /// Leases and waiters that name this key.
  uses: u32,
}

struct Waiter {
  /// The id its grant will have; also tells it apart from a later waiter
  /// that gets the same (reused) ticket id.
  lease: u64,
  keys: Box<[KeyId]>,
  wake: oneshot::Sender<LocalLease>,
}

impl State {
  fn pin(&mut self, name: &str) -> KeyId {
    if let Some(&id) = self.ids.get(name) {
      self.keys[id as usize].uses += 1;
      return id;
    }
    let id = match self.free_keys.pop() {
      Some(id) => id,
      None => {
        self.keys.push(KeyName::default());
        self.table.reserve_keys(self.keys.len());
        (self.keys.len() - 1) as KeyId
      }
    };
    self.keys[id as usize] = KeyName {
      name: name.to_owned(),
      uses: 1,
    };
    self.ids.insert(name.to_owned(), id);
    id
  }

  fn unpin(&mut self, keys: &[KeyId]) {
    for &k in keys {
      let key = &mut self.keys[k as usize];
      key.uses -= 1;
      if key.uses == 0 {
        // Nobody holds or waits for it: the table has let it go too.
        self.ids.remove(&std::mem::take(&mut key.name));
        self.free_keys.push(k);
      }
    }
  }

  fn new_lease(&mut self) -> u64 {
    self.next_lease += 1;
    self.next_lease
  }

  /// Turns tickets the table granted into leases to deliver.
  fn hand_out(&mut self, grants: &[TicketId], out: &mut Vec<Delivery>) {
    for ticket in grants {
      if let Some(waiter) = self.waiters.remove(ticket) {
        self.leases.insert(waiter.lease, waiter.keys);
        out.push((waiter.wake, LocalLease(waiter.lease)));
      }
    }
  }

  fn release(&mut self, lease: LocalLease, out: &mut Vec<Delivery>) -> Result<bool, CoreError> {
    let Some(keys) = self.leases.remove(&lease.0) else {
      return Ok(false);
    };
    let mut grants = Vec::new();
    self.table.release(&keys, &mut grants)?;
    self.unpin(&keys);
    self.hand_out(&grants, out);
    Ok(true)
  }

  /// Takes the waiter out of its queues if it is still waiting; false if it
  /// was granted already (its lease is on its way).
  fn leave(&mut self, ticket: TicketId, lease: u64, out: &mut Vec<Delivery>) -> bool {
    if !matches!(self.waiters.get(&ticket), Some(w) if w.lease == lease) {
      return false;
    }
    let Some(waiter) = self.waiters.remove(&ticket) else {
      return false;
    };
    let mut grants = Vec::new();
    let cancelled = self.table.cancel(ticket, &mut grants);
    debug_assert_eq!(cancelled, Cancel::Cancelled, "registered waiters wait");
    self.unpin(&waiter.keys);
    self.hand_out(&grants, out);
    true
  }
}

impl LocalBackend {
  pub fn new() -> Self {
    Self::default()
  }

  /// Names held or waited on now: the only ones that cost memory.
  pub fn names(&self) -> usize {
    self.state.lock().ids.len()
  }

  /// Live waiters on `name`.
  pub fn waiting_on(&self, name: &str) -> u32 {
    let state = self.state.lock();
    state
      .ids
      .get(name)
      .map_or(0, |&k| state.table.waiting_on(k))
  }

  /// Sends grants, outside the mutex. A grant whose waiter has gone is
  /// released, which may grant others: repeat until all are delivered.
  fn deliver(&self, mut deliveries: Vec<Delivery>) {
    while !deliveries.is_empty() {
      let orphans: Vec<LocalLease> = deliveries
        .drain(..)
        .filter_map(|(wake, lease)| wake.send(lease).err())
        .collect();
      if orphans.is_empty() {
        return;
      }
      let mut state = self.state.lock();
      for lease in orphans {
        // An orphan is a lease the table granted: releasing it cannot fail.
        let _ = state.release(lease, &mut deliveries);
      }
    }
  }

  fn release_lease(&self, lease: LocalLease) -> Result<bool, CoreError> {
    let mut deliveries = Vec::new();
    let released = self.state.lock().release(lease, &mut deliveries);
    self.deliver(deliveries);
    released
  }

  fn leave(&self, ticket: TicketId, lease: u64) -> bool {
    let mut deliveries = Vec::new();
    let left = self.state.lock().leave(ticket, lease, &mut deliveries);
    self.deliver(deliveries);
    left
  }

  /// Takes the names at once, or enqueues a waiter and returns how to wait
  /// for it.
  fn start(&self, names: &[String], request: Request) -> Result<Started<'_>, CoreError> {
    let mut state = self.state.lock();
    let keys: Box<[KeyId]> = names.iter().map(|name| state.pin(name)).collect();
    if keys.is_empty() {
      return Err(CoreError::NoKeys);
    }
    if let Some(i) = (1..keys.len()).find(|&i| keys[..i].contains(&keys[i])) {
      state.unpin(&keys);
      return Err(CoreError::DuplicateKey(keys[i]));
    }
    // A name with waiters is busy even when free: no barging.
    if !request.wait && keys.iter().any(|&k| state.table.is_busy(k)) {
      state.unpin(&keys);
      return Ok(Started::Done(Outcome::Busy));
    }
    let max_pending = request.max_pending.unwrap_or(UNLIMITED);
    match state.table.acquire(&keys, max_pending, request.skip_queue) {
      Ok(Acquire::Granted) => {
        let lease = state.new_lease();
        state.leases.insert(lease, keys);
        Ok(Started::Done(Outcome::Granted(LocalLease(lease))))
      }
      Ok(Acquire::Rejected { key_index }) => {
        state.unpin(&keys);
        Ok(Started::Done(Outcome::Rejected { index: key_index }))
      }
      Ok(Acquire::Queued(ticket)) => {
        let lease = state.new_lease();
        let (wake, granted) = oneshot::channel();
        state.waiters.insert(ticket, Waiter { lease, keys, wake });
        Ok(Started::Waiting(Waiting {
          backend: self,
          ticket,
          lease,
          granted,
          settled: false,
        }))
      }
      Err(e) => {
        state.unpin(&keys);
        Err(e)
      }
    }
  }

  async fn acquire_names(
    &self,
    names: &[String],
    request: Request,
  ) -> Result<Outcome<LocalLease>, CoreError> {
    let mut waiting = match self.start(names, request)? {
      Started::Done(outcome) => return Ok(outcome),
      Started::Waiting(waiting) => waiting,
    };
    let granted = match request.timeout {
      None => (&mut waiting.granted).await,
      Some(timeout) => match tokio::time::timeout(timeout, &mut waiting.granted).await {
        Ok(granted) => granted,
        Err(_) => {
          if self.leave(waiting.ticket, waiting.lease) {
            waiting.settled = true;
            return Ok(Outcome::TimedOut);
          }
          // The grant won the race and is on its way: keep it.
          (&mut waiting.granted).await
        }
      },
    };
    waiting.settled = true;
    // The sender is dropped unsent only by `leave`, which this waiter did
    // not call on this path.
    Ok(granted.map_or(Outcome::TimedOut, Outcome::Granted))
  }
}

enum Started<'a> {
  Done(Outcome<LocalLease>),
  Waiting(Waiting<'a>),
}

/// A queued waiter; dropping it unsettled gives up its place or its grant.
struct Waiting<'a> {
  backend: &'a LocalBackend,
  ticket: TicketId,
  lease: u64,
  granted: oneshot::Receiver<LocalLease>,
  settled: bool,
}

impl Drop for Waiting<'_> {
  fn drop(&mut self) {
    if self.settled {
      return;
    }
    // After `close`, a grant is either already in the channel (give it
    // back) or its send will fail (and `deliver` gives it back).
    self.granted.close();
    if let Ok(lease) = self.granted.try_recv() {
      let _ = self.backend.release_lease(lease);
      return;
    }
    self.backend.leave(self.ticket, self.lease);
  }
}

impl Backend for LocalBackend {
  type Lease = LocalLease;
  type Error = CoreError;

  async fn acquire(
    &self,
    names: &[String],
    request: Request,
  ) -> Result<Outcome<LocalLease>, CoreError> {
    self.acquire_names(names, request).await
  }

  async fn release(&self, lease: LocalLease) -> Result<bool, CoreError> {
    self.release_lease(lease)
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::future::Future;
  use std::pin::pin;
  use std::task::{Context, Poll, Waker};

  fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
  }

  fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
  }

  fn granted(b: &LocalBackend, list: &[&str]) -> LocalLease {
    let list = names(list);
    let fut = pin!(b.acquire(&list, Request::wait()));
    match poll_once(fut) {
      Poll::Ready(Ok(Outcome::Granted(lease))) => lease,
      other => panic!("expected an immediate grant, got {other:?}"),
    }
  }

  #[test]
  fn dropping_a_waiter_leaves_the_queue() {
    let b = LocalBackend::new();
    let holder = granted(&b, &["k"]);
    {
      let k = names(&["k"]);
      let fut = pin!(b.acquire(&k, Request::wait()));
      assert!(poll_once(fut).is_pending());
      assert_eq!(b.waiting_on("k"), 1);
    }
    assert_eq!(b.waiting_on("k"), 0, "the dropped waiter left");
    assert_eq!(b.release_lease(holder), Ok(true));
    assert_eq!(b.names(), 0, "nothing left behind");
  }

  #[test]
  fn a_grant_that_raced_a_drop_passes_on() {
    let b = LocalBackend::new();
    let holder = granted(&b, &["k"]);
    let k = names(&["k"]);
    let mut next = Box::pin(b.acquire(&k, Request::wait()));
    {
      let mut fut = pin!(b.acquire(&k, Request::wait()));
      assert!(poll_once(fut.as_mut()).is_pending());
      assert!(poll_once(next.as_mut()).is_pending());
      // The grant is sent to the first waiter, which is dropped unread.
      assert_eq!(b.release_lease(holder), Ok(true));
    }
    match poll_once(next.as_mut()) {
      Poll::Ready(Ok(Outcome::Granted(lease))) => {
        assert_eq!(b.release_lease(lease), Ok(true))
      }
      other => panic!("the next waiter should hold the key, got {other:?}"),
    }
    assert_eq!(b.names(), 0);
  }

  #[test]
  fn a_send_to_a_closed_waiter_passes_on() {
    let b = LocalBackend::new();
    let holder = granted(&b, &["k"]);
    let k = names(&["k"]);
    let mut next = Box::pin(b.acquire(&k, Request::wait()));
    // A waiter whose receiver is closed before its grant is sent: the
    // window between `hand_out` and `deliver`, made wide.
    let (wake, mut granted_rx) = oneshot::channel();
    granted_rx.close();
    let (ticket, lease) = {
      let mut state = b.state.lock();
      let key = state.pin("k");
      let Ok(Acquire::Queued(ticket)) = state.table.acquire(&[key], UNLIMITED, true) else {
        panic!("k is held")
      };
      let lease = state.new_lease();
      state.waiters.insert(
        ticket,
        Waiter {
          lease,
          keys: Box::new([key]),
          wake,
        },
      );
      (ticket, lease)
    };
    assert!(poll_once(next.as_mut()).is_pending());
    assert_eq!(b.release_lease(holder), Ok(true));
    assert!(!b.leave(ticket, lease), "it was granted, not waiting");
    match poll_once(next.as_mut()) {
      Poll::Ready(Ok(Outcome::Granted(lease))) => {
        assert_eq!(b.release_lease(lease), Ok(true))
      }
      other => panic!("the orphaned grant should have passed on, got {other:?}"),
    }
    assert_eq!(b.names(), 0);
  }

  #[test]
  fn misuse_is_an_error_and_pins_nothing() {
    let b = LocalBackend::new();
    let fut = pin!(b.acquire(&[], Request::wait()));
    assert!(matches!(
      poll_once(fut),
      Poll::Ready(Err(CoreError::NoKeys))
    ));
    let twice = names(&["a", "a"]);
    let fut = pin!(b.acquire(&twice, Request::no_wait()));
    assert!(matches!(
      poll_once(fut),
      Poll::Ready(Err(CoreError::DuplicateKey(_)))
    ));
    assert_eq!(b.names(), 0);
  }

  #[test]
  fn key_ids_are_reused_once_a_name_is_idle() {
    let b = LocalBackend::new();
    let a = granted(&b, &["a"]);
    assert_eq!(b.release_lease(a), Ok(true));
    let c = granted(&b, &["c"]);
    assert_eq!(b.state.lock().keys.len(), 1, "one id, reused");
    assert_eq!(b.release_lease(c), Ok(true));
    assert_eq!(b.release_lease(c), Ok(false));
  }
}
