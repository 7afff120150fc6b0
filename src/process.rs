//! The process reach: lock spaces shared by every thread of the process
//! (every `worker_thread` and the main thread) that opens the same name.
//! Pure Rust, no N-API: `binding::process` is the thin layer over it.
//!
//! A [`ProcessSpace`] is one core [`Table`] behind a `parking_lot::Mutex`,
//! plus what the table does not know: which thread (an *owner*, see
//! [`ProcessSpace::join`]) holds each key and owns each waiting ticket, and
//! the key names. Key strings are interned here, not in JS, because a key id
//! must mean the same key on every thread.
//!
//! # Guarantees
//!
//! Everything the core guarantees (see `crate::core`) holds across threads:
//!
//! - **FIFO per key, across threads.** Waiters are queued in the order their
//!   acquisitions took the space's mutex, whatever thread they come from; a
//!   release hands the key straight to the queue head, on whatever thread it
//!   waits. Proved by `tests::fifo_across_threads`.
//! - **Exclusion across threads.** A key is held by at most one owner at a
//!   time (`tests::exclusion_across_threads`, several OS threads hammering
//!   one key with a non-atomic read-modify-write).
//! - **All-or-nothing multi-key, no deadlock** for any key order
//!   (`tests::multi_key_across_threads`).
//! - **Grants to the releasing owner are returned to it; grants to other
//!   owners go to their outbox and wake them once per batch** through their
//!   [`Waker`], called after the mutex is dropped, never under it
//!   (`tests::grants_to_others_wake_them_once_per_batch`,
//!   `tests::own_grants_come_back_to_the_releaser`).
//! - **An owner that goes away gives everything up.** [`ProcessSpace::leave`]
//!   (run by dropping the [`Membership`], which the binding does from the
//!   N-API env cleanup hook when a worker exits, is terminated, calls
//!   `process.exit()` or dies of an uncaught exception) cancels the owner's
//!   waiting tickets, releases every key it holds (including grants still in
//!   its outbox, never delivered) so they pass to the next waiters, and
//!   unpins its key names. Nothing is stranded
//!   (`tests::thread_dying_mid_hold_releases_its_keys`,
//!   `tests::leaving_owner_cancels_its_waiters_and_drops_undelivered_grants`).
//!
//! The scenarios every reach shares (FIFO, multi-key, cancel racing a
//! grant, `max_pending`, `skip_queue`, busy, an owner leaving) run against a
//! space in `tests/conformance.rs` too.
//!
//! What is *not* guaranteed: the order in which woken owners run their
//! grants relative to each other (each runs on its own event loop), and the
//! moment a woken thread runs its grant (whenever its event loop gets to it).
//!
//! # Cancellation
//!
//! [`ProcessSpace::cancel`] by a ticket's owner either takes it out of every
//! queue ([`Cancel::Cancelled`]) or finds that it was already granted
//! ([`Cancel::NotWaiting`]): the grant may be on its way to the owner's
//! outbox, and stands. A cancelled waiter never swallows a grant.
//!
//! # Memory
//!
//! Spaces are created on first use of a name and live as long as the
//! process. A key name stays interned while an owner pins it
//! ([`ProcessSpace::intern`]) or it is busy; then its id is reused. The
//! table's own memory rules apply to queues.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::core::{Acquire, Cancel, Coded, CoreError, ErrorCode, KeyId, Table, TicketId};

/// A thread (in Node: one JS environment) taking part in a space.
pub type OwnerId = u32;

const NO_OWNER: OwnerId = OwnerId::MAX;

/// How a space tells an owner that grants wait in its outbox. Called at most
/// once per batch (until the owner takes its grants), never under the
/// space's mutex, possibly from any thread.
pub trait Waker: Send + Sync {
  fn wake(&self);
}

/// A key as the space knows it. `Private` keys stand for JS symbols: a
/// symbol cannot be named on another thread, so it is a key of its own
/// thread only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProcessKey {
  Name(String),
  Private(u64),
}

static NEXT_PRIVATE: AtomicU64 = AtomicU64::new(0);

impl ProcessKey {
  /// A key no other call will ever return.
  pub fn private() -> Self {
    ProcessKey::Private(NEXT_PRIVATE.fetch_add(1, Ordering::Relaxed))
  }
}

struct KeyEntry {
  name: Option<ProcessKey>,
  /// Pins of all owners.
  pins: u32,
  holder: OwnerId,
}

struct Waiter {
  owner: OwnerId,
  keys: Box<[KeyId]>,
}

struct Owner {
  waker: Arc<dyn Waker>,
  /// Granted tickets not yet taken by the owner. Their keys are held by it.
  outbox: Vec<TicketId>,
  /// The waker was called and the owner has not taken its grants since.
  notified: bool,
  pins: HashMap<KeyId, u32>,
}

#[derive(Default)]
struct State {
  table: Table,
  ids: HashMap<ProcessKey, KeyId>,
  keys: Vec<KeyEntry>,
  free_keys: Vec<KeyId>,
  /// Indexed by ticket: who waits and for what.
  tickets: Vec<Option<Waiter>>,
  owners: Vec<Option<Owner>>,
  free_owners: Vec<OwnerId>,
  /// Keys currently held, by anyone.
  held: usize,
}

/// One named, process-wide lock space.
pub struct ProcessSpace {
  name: String,
  state: Mutex<State>,
}

/// What a space call asks its caller to do once the mutex is dropped.
type Wakes = Vec<Arc<dyn Waker>>;

fn wake_all(wakes: Wakes) {
  for w in wakes {
    w.wake();
  }
}

impl ProcessSpace {
  /// The space named `name`, created on first use.
  pub fn open(name: &str) -> Arc<ProcessSpace> {
    static SPACES: OnceLock<Mutex<HashMap<String, Arc<ProcessSpace>>>> = OnceLock::new();
    let mut spaces = SPACES.get_or_init(Default::default).lock();
    spaces
      .entry(name.to_owned())
      .or_insert_with(|| {
        Arc::new(ProcessSpace {
          name: name.to_owned(),
          state: Mutex::new(State::default()),
        })
      })
      .clone()
  }

  pub fn name(&self) -> &str {
    &self.name
  }

  /// Adds an owner; `waker` is how it learns of grants made by others.
  pub fn join(&self, waker: Arc<dyn Waker>) -> OwnerId {
    let mut s = self.state.lock();
    let owner = Owner {
      waker,
      outbox: Vec::new(),
      notified: false,
      pins: HashMap::new(),
    };
    match s.free_owners.pop() {
      Some(id) => {
        s.owners[id as usize] = Some(owner);
        id
      }
      None => {
        s.owners.push(Some(owner));
        (s.owners.len() - 1) as OwnerId
      }
    }
  }

  /// Joins and returns a guard that leaves when dropped.
  pub fn membership(self: &Arc<Self>, waker: Arc<dyn Waker>) -> Membership {
    Membership {
      owner: self.join(waker),
      space: self.clone(),
    }
  }

  /// Removes an owner and gives up everything it had: its waiting tickets
  /// leave their queues, its held keys (granted or still in its outbox)
  /// pass to the next waiters, its pins are dropped. Other owners that this
  /// grants to are woken after the mutex is dropped.
  pub fn leave(&self, owner: OwnerId) {
    let mut wakes = Wakes::new();
    {
      let mut s = self.state.lock();
      s.leave(owner, &mut wakes);
    }
    wake_all(wakes);
  }

  /// The id of `key`, pinned once more for `owner` (the id keeps meaning
  /// `key` until every pin is dropped and the key is idle).
  pub fn intern(&self, owner: OwnerId, key: ProcessKey) -> Result<KeyId, SpaceError> {
    let mut s = self.state.lock();
    s.check_owner(owner)?;
    Ok(s.intern(owner, key))
  }

  /// Drops one pin of `owner` on `key`.
  pub fn unpin(&self, owner: OwnerId, key: KeyId) {
    let mut s = self.state.lock();
    s.unpin(owner, key);
  }

  /// [`Table::acquire`] on behalf of `owner`, for interned keys.
  pub fn acquire(
    &self,
    owner: OwnerId,
    keys: &[KeyId],
    max_pending: u32,
    skip_queue: bool,
  ) -> Result<Acquire, SpaceError> {
    let mut s = self.state.lock();
    s.acquire(owner, keys, max_pending, skip_queue)
  }

  /// Releases keys `owner` holds. Tickets of `owner` this grants are
  /// appended to `mine`; other owners' grants go to their outboxes.
  pub fn release(
    &self,
    owner: OwnerId,
    keys: &[KeyId],
    mine: &mut Vec<TicketId>,
  ) -> Result<(), SpaceError> {
    let mut wakes = Wakes::new();
    let result = {
      let mut s = self.state.lock();
      s.release(owner, keys, mine, &mut wakes)
    };
    wake_all(wakes);
    result
  }

  /// Releases the keys of `keys` (all held by `owner`) that nobody waits
  /// for, which grants nothing, and appends the others to `contended`, for
  /// a later [`ProcessSpace::release`]. One step under the mutex, so a key is
  /// never judged idle while a waiter is being queued on it.
  pub fn release_idle(
    &self,
    owner: OwnerId,
    keys: &[KeyId],
    contended: &mut Vec<KeyId>,
  ) -> Result<(), SpaceError> {
    let mut s = self.state.lock();
    s.check_owner(owner)?;
    s.check_keys(keys)?;
    s.check_held(owner, keys)?;
    let (idle, busy): (Vec<KeyId>, Vec<KeyId>) =
      keys.iter().partition(|&&k| s.table.waiting_on(k) == 0);
    contended.extend(busy);
    let mut none = Vec::new();
    s.table.release(&idle, &mut none)?;
    debug_assert!(none.is_empty(), "a key without waiters grants nothing");
    for &k in &idle {
      s.keys[k as usize].holder = NO_OWNER;
      s.maybe_free(k);
    }
    s.held -= idle.len();
    Ok(())
  }

  /// Takes a waiting ticket of `owner` out of its queues. Also returns the
  /// position, in the ticket's keys, of the first key it was still waiting
  /// for (`None` when it was not waiting). Grants as `release` does.
  pub fn cancel(
    &self,
    owner: OwnerId,
    ticket: TicketId,
    mine: &mut Vec<TicketId>,
  ) -> (Cancel, Option<usize>) {
    let mut wakes = Wakes::new();
    let result = {
      let mut s = self.state.lock();
      s.cancel(owner, ticket, mine, &mut wakes)
    };
    wake_all(wakes);
    result
  }

  /// Moves the grants waiting in `owner`'s outbox to `out`, in grant order.
  pub fn take_grants(&self, owner: OwnerId, out: &mut Vec<TicketId>) {
    let mut s = self.state.lock();
    if let Some(Some(o)) = s.owners.get_mut(owner as usize) {
      out.append(&mut o.outbox);
      o.notified = false;
    }
  }

  /// Whether `key` is held or waited on, by anyone.
  pub fn is_busy(&self, key: &ProcessKey) -> bool {
    let s = self.state.lock();
    s.ids.get(key).is_some_and(|&k| s.table.is_busy(k))
  }

  /// As `is_busy`, by id.
  pub fn is_busy_id(&self, key: KeyId) -> bool {
    self.state.lock().table.is_busy(key)
  }

  /// Whether any key is held or waited on.
  pub fn busy(&self) -> bool {
    let s = self.state.lock();
    s.held > 0 || s.table.waiting() > 0
  }

  /// Every busy key with its number of live waiters.
  pub fn snapshot(&self) -> Vec<(KeyId, ProcessKey, u32)> {
    let s = self.state.lock();
    s.keys
      .iter()
      .enumerate()
      .filter_map(|(k, e)| {
        let k = k as KeyId;
        let name = e.name.as_ref()?;
        s.table
          .is_busy(k)
          .then(|| (k, name.clone(), s.table.waiting_on(k)))
      })
      .collect()
  }

  /// Keys held by `owner` (tests and diagnostics).
  pub fn held_by(&self, owner: OwnerId) -> Vec<KeyId> {
    let s = self.state.lock();
    (0..s.keys.len() as KeyId)
      .filter(|&k| s.keys[k as usize].holder == owner)
      .collect()
  }
}

// Compile-time proof that a space may be shared by every thread.
const _: fn() = || {
  fn send_sync<T: Send + Sync>() {}
  send_sync::<ProcessSpace>();
  send_sync::<Membership>();
};

/// An owner's place in a space; leaving is dropping it (so a thread that
/// unwinds or returns gives its locks up).
pub struct Membership {
  space: Arc<ProcessSpace>,
  owner: OwnerId,
}

impl Membership {
  pub fn space(&self) -> &Arc<ProcessSpace> {
    &self.space
  }
  pub fn owner(&self) -> OwnerId {
    self.owner
  }
}

impl Drop for Membership {
  fn drop(&mut self) {
    self.space.leave(self.owner);
  }
}

/// Misuse of a process space by its caller. Never the result of a race.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceError {
  /// The owner left the space (or never joined).
  NoOwner(OwnerId),
  /// A key id that is not interned.
  NoKey(KeyId),
  /// A release of a key this owner does not hold.
  NotHeld(KeyId),
  Core(CoreError),
}

impl From<CoreError> for SpaceError {
  fn from(e: CoreError) -> Self {
    SpaceError::Core(e)
  }
}

impl std::fmt::Display for SpaceError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      SpaceError::NoOwner(o) => write!(f, "owner {o} is not in the lock space"),
      SpaceError::NoKey(k) => write!(f, "key id {k} is not interned"),
      SpaceError::NotHeld(k) => write!(f, "key id {k} is not held by this thread"),
      SpaceError::Core(e) => e.fmt(f),
    }
  }
}

impl std::error::Error for SpaceError {}

impl Coded for SpaceError {
  fn code(&self) -> ErrorCode {
    match self {
      SpaceError::NoOwner(_) => ErrorCode::NoOwner,
      // The isolate table says the same for an id it never saw.
      SpaceError::NoKey(_) => ErrorCode::KeyOutOfRange,
      SpaceError::NotHeld(_) => ErrorCode::NotHeld,
      SpaceError::Core(e) => e.code(),
    }
  }
}

impl State {
  fn check_owner(&self, owner: OwnerId) -> Result<(), SpaceError> {
    match self.owners.get(owner as usize) {
      Some(Some(_)) => Ok(()),
      _ => Err(SpaceError::NoOwner(owner)),
    }
  }

  fn intern(&mut self, owner: OwnerId, key: ProcessKey) -> KeyId {
    let k = match self.ids.get(&key) {
      Some(&k) => k,
      None => {
        let k = match self.free_keys.pop() {
          Some(k) => k,
          None => {
            self.keys.push(KeyEntry {
              name: None,
              pins: 0,
              holder: NO_OWNER,
            });
            (self.keys.len() - 1) as KeyId
          }
        };
        self.table.reserve_keys(k as usize + 1);
        self.keys[k as usize].name = Some(key.clone());
        self.ids.insert(key, k);
        k
      }
    };
    self.keys[k as usize].pins += 1;
    if let Some(Some(o)) = self.owners.get_mut(owner as usize) {
      *o.pins.entry(k).or_insert(0) += 1;
    }
    k
  }

  fn unpin(&mut self, owner: OwnerId, k: KeyId) {
    let Some(Some(o)) = self.owners.get_mut(owner as usize) else {
      return;
    };
    let Some(n) = o.pins.get_mut(&k) else {
      return;
    };
    *n -= 1;
    if *n == 0 {
      o.pins.remove(&k);
    }
    self.keys[k as usize].pins -= 1;
    self.maybe_free(k);
  }

  /// Frees the id of a key nobody pins and nobody holds or waits on.
  fn maybe_free(&mut self, k: KeyId) {
    let Some(e) = self.keys.get_mut(k as usize) else {
      return;
    };
    if e.pins > 0 || e.name.is_none() || self.table.is_busy(k) {
      return;
    }
    if let Some(name) = e.name.take() {
      self.ids.remove(&name);
    }
    self.free_keys.push(k);
  }

  fn check_keys(&self, keys: &[KeyId]) -> Result<(), SpaceError> {
    for &k in keys {
      if self.keys.get(k as usize).is_none_or(|e| e.name.is_none()) {
        return Err(SpaceError::NoKey(k));
      }
    }
    Ok(())
  }

  fn check_held(&self, owner: OwnerId, keys: &[KeyId]) -> Result<(), SpaceError> {
    match keys
      .iter()
      .find(|&&k| self.keys[k as usize].holder != owner)
    {
      Some(&k) => Err(SpaceError::NotHeld(k)),
      None => Ok(()),
    }
  }

  fn acquire(
    &mut self,
    owner: OwnerId,
    keys: &[KeyId],
    max_pending: u32,
    skip_queue: bool,
  ) -> Result<Acquire, SpaceError> {
    self.check_owner(owner)?;
    self.check_keys(keys)?;
    let outcome = self.table.acquire(keys, max_pending, skip_queue)?;
    match outcome {
      Acquire::Granted => self.hold(owner, keys),
      Acquire::Queued(t) => {
        let t = t as usize;
        if self.tickets.len() <= t {
          self.tickets.resize_with(t + 1, || None);
        }
        self.tickets[t] = Some(Waiter {
          owner,
          keys: keys.into(),
        });
      }
      Acquire::Rejected { .. } => {}
    }
    Ok(outcome)
  }

  fn hold(&mut self, owner: OwnerId, keys: &[KeyId]) {
    for &k in keys {
      self.keys[k as usize].holder = owner;
    }
    self.held += keys.len();
  }

  fn release(
    &mut self,
    owner: OwnerId,
    keys: &[KeyId],
    mine: &mut Vec<TicketId>,
    wakes: &mut Wakes,
  ) -> Result<(), SpaceError> {
    self.check_owner(owner)?;
    self.check_keys(keys)?;
    self.check_held(owner, keys)?;
    let mut grants = Vec::new();
    self.table.release(keys, &mut grants)?;
    for &k in keys {
      self.keys[k as usize].holder = NO_OWNER;
    }
    self.held -= keys.len();
    self.route(&grants, owner, mine, wakes);
    for &k in keys {
      self.maybe_free(k);
    }
    Ok(())
  }

  fn cancel(
    &mut self,
    owner: OwnerId,
    ticket: TicketId,
    mine: &mut Vec<TicketId>,
    wakes: &mut Wakes,
  ) -> (Cancel, Option<usize>) {
    match self.tickets.get(ticket as usize) {
      Some(Some(w)) if w.owner == owner => {}
      _ => return (Cancel::NotWaiting, None),
    }
    let blocking = self.table.blocking_index(ticket);
    let mut grants = Vec::new();
    let outcome = self.table.cancel(ticket, &mut grants);
    if outcome == Cancel::Cancelled {
      if let Some(w) = self.tickets[ticket as usize].take() {
        self.route(&grants, owner, mine, wakes);
        for &k in w.keys.iter() {
          self.maybe_free(k);
        }
      }
    }
    (outcome, blocking)
  }

  /// Hands granted tickets to their owners: the caller's own into `mine`,
  /// others' into their outbox (waking each once per batch).
  fn route(
    &mut self,
    grants: &[TicketId],
    caller: OwnerId,
    mine: &mut Vec<TicketId>,
    wakes: &mut Wakes,
  ) {
    for &t in grants {
      let Some(w) = self.tickets.get_mut(t as usize).and_then(Option::take) else {
        continue;
      };
      self.hold(w.owner, &w.keys);
      if w.owner == caller {
        mine.push(t);
      } else if let Some(Some(o)) = self.owners.get_mut(w.owner as usize) {
        o.outbox.push(t);
        if !o.notified {
          o.notified = true;
          wakes.push(o.waker.clone());
        }
      }
    }
  }

  fn leave(&mut self, owner: OwnerId, wakes: &mut Wakes) {
    if self.check_owner(owner).is_err() {
      return;
    }
    // Its tickets first: a cancel may grant another of its own tickets (a
    // multi-key head leaving), which then counts as a hold released below.
    let mut own = Vec::new();
    let tickets: Vec<TicketId> = (0..self.tickets.len() as TicketId)
      .filter(|&t| matches!(&self.tickets[t as usize], Some(w) if w.owner == owner))
      .collect();
    for t in tickets {
      self.cancel(owner, t, &mut own, wakes);
    }
    // It waits for nothing now, so releasing its keys only grants others.
    let held: Vec<KeyId> = (0..self.keys.len() as KeyId)
      .filter(|&k| self.keys[k as usize].holder == owner)
      .collect();
    if !held.is_empty() {
      let _ = self.release(owner, &held, &mut own, wakes);
    }
    let Some(o) = self.owners[owner as usize].take() else {
      return;
    };
    self.free_owners.push(owner);
    for (k, n) in o.pins {
      self.keys[k as usize].pins -= n;
      self.maybe_free(k);
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::core::UNLIMITED;
  use std::sync::atomic::AtomicUsize;
  use std::sync::{mpsc, Barrier};
  use std::thread;
  use std::time::Duration;

  /// Counts wakes and lets a test thread block until one comes.
  #[derive(Default)]
  struct CountingWaker {
    wakes: AtomicUsize,
    signal: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
  }

  impl Waker for CountingWaker {
    fn wake(&self) {
      self.wakes.fetch_add(1, Ordering::SeqCst);
      *self.signal.lock().unwrap_or_else(|e| e.into_inner()) = true;
      self.cv.notify_all();
    }
  }

  impl CountingWaker {
    fn wait(&self) {
      let mut woken = self.signal.lock().unwrap_or_else(|e| e.into_inner());
      while !*woken {
        woken = self
          .cv
          .wait_timeout(woken, Duration::from_secs(10))
          .unwrap_or_else(|e| e.into_inner())
          .0;
      }
      *woken = false;
    }
  }

  /// A space no other test uses.
  fn fresh(name: &str) -> Arc<ProcessSpace> {
    static N: AtomicU64 = AtomicU64::new(0);
    ProcessSpace::open(&format!("{name}#{}", N.fetch_add(1, Ordering::Relaxed)))
  }

  fn key(s: &ProcessSpace, owner: OwnerId, name: &str) -> KeyId {
    s.intern(owner, ProcessKey::Name(name.into()))
      .expect("owner joined")
  }

  /// Acquires, blocking the thread until granted (a grant may come from
  /// another thread, through the waker).
  fn lock(m: &Membership, waker: &CountingWaker, keys: &[KeyId]) {
    let s = m.space();
    match s.acquire(m.owner(), keys, UNLIMITED, false) {
      Ok(Acquire::Granted) => {}
      Ok(Acquire::Queued(t)) => loop {
        let mut got = Vec::new();
        s.take_grants(m.owner(), &mut got);
        if got.contains(&t) {
          return;
        }
        waker.wait();
      },
      other => panic!("unexpected {other:?}"),
    }
  }

  fn unlock(m: &Membership, keys: &[KeyId]) {
    let mut mine = Vec::new();
    m.space().release(m.owner(), keys, &mut mine).expect("held");
    assert!(mine.is_empty(), "these threads queue one request at a time");
  }

  #[test]
  fn shared_space_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ProcessSpace>();
    assert_send_sync::<Arc<ProcessSpace>>();
    assert_send_sync::<Membership>();
  }

  #[test]
  fn same_name_same_space() {
    let a = ProcessSpace::open("same-name-test");
    let b = ProcessSpace::open("same-name-test");
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &ProcessSpace::open("other-name-test")));
    assert_eq!(a.name(), "same-name-test");
  }

  #[test]
  fn key_ids_agree_across_owners_and_are_reused_when_unpinned() {
    let s = fresh("ids");
    let w: Arc<dyn Waker> = Arc::new(CountingWaker::default());
    let a = s.join(w.clone());
    let b = s.join(w);
    let ka = key(&s, a, "k");
    assert_eq!(key(&s, b, "k"), ka);
    let p1 = s.intern(a, ProcessKey::private()).expect("joined");
    let p2 = s.intern(a, ProcessKey::private()).expect("joined");
    assert_ne!(p1, p2, "every private key is its own key");
    s.unpin(a, ka);
    assert_eq!(key(&s, b, "other"), 3, "still pinned by b: not reused");
    s.unpin(b, ka);
    assert_eq!(key(&s, a, "again"), ka, "unpinned and idle: reused");
  }

  #[test]
  fn grants_to_others_wake_them_once_per_batch() {
    let s = fresh("wake");
    let wa = Arc::new(CountingWaker::default());
    let wb = Arc::new(CountingWaker::default());
    let a = s.join(wa.clone());
    let b = s.join(wb.clone());
    let k0 = key(&s, a, "0");
    let k1 = key(&s, a, "1");
    key(&s, b, "0");
    key(&s, b, "1");
    assert_eq!(
      s.acquire(a, &[k0, k1], UNLIMITED, false),
      Ok(Acquire::Granted)
    );
    let Ok(Acquire::Queued(t0)) = s.acquire(b, &[k0], UNLIMITED, false) else {
      panic!("b waits")
    };
    let Ok(Acquire::Queued(t1)) = s.acquire(b, &[k1], UNLIMITED, false) else {
      panic!("b waits")
    };
    let Ok(Acquire::Queued(ta)) = s.acquire(a, &[k0], UNLIMITED, false) else {
      panic!("a waits behind b")
    };
    let mut mine = Vec::new();
    s.release(a, &[k0, k1], &mut mine).expect("a holds both");
    assert!(mine.is_empty(), "b was first in both queues");
    assert_eq!(wb.wakes.load(Ordering::SeqCst), 1, "one wake for the batch");
    assert_eq!(wa.wakes.load(Ordering::SeqCst), 0);
    let mut got = Vec::new();
    s.take_grants(b, &mut got);
    assert_eq!(got, vec![t0, t1]);
    assert_eq!(s.held_by(b), vec![k0, k1]);
    s.release(b, &[k0], &mut mine).expect("b holds k0");
    assert_eq!(mine, Vec::<TicketId>::new(), "a's grant went to a's outbox");
    assert_eq!(wa.wakes.load(Ordering::SeqCst), 1);
    s.take_grants(a, &mut got);
    assert_eq!(got.last(), Some(&ta));
    // Releasing a key someone else holds is misuse, not a hand-off.
    assert_eq!(s.release(a, &[k1], &mut mine), Err(SpaceError::NotHeld(k1)));
  }

  #[test]
  fn own_grants_come_back_to_the_releaser() {
    let s = fresh("own");
    let w: Arc<dyn Waker> = Arc::new(CountingWaker::default());
    let a = s.join(w);
    let k = key(&s, a, "k");
    assert_eq!(s.acquire(a, &[k], UNLIMITED, false), Ok(Acquire::Granted));
    let Ok(Acquire::Queued(t)) = s.acquire(a, &[k], UNLIMITED, false) else {
      panic!("waits")
    };
    let mut mine = Vec::new();
    s.release(a, &[k], &mut mine).expect("held");
    assert_eq!(mine, vec![t]);
    assert!(s.is_busy(&ProcessKey::Name("k".into())));
    s.release(a, &[k], &mut mine).expect("held");
    assert!(!s.busy());
  }

  #[test]
  fn release_idle_frees_only_keys_nobody_waits_for() {
    let s = fresh("idle");
    let w: Arc<dyn Waker> = Arc::new(CountingWaker::default());
    let a = s.join(w.clone());
    let b = s.join(w);
    let k = key(&s, a, "k");
    let j = key(&s, a, "j");
    key(&s, b, "j");
    assert_eq!(
      s.acquire(a, &[k, j], UNLIMITED, false),
      Ok(Acquire::Granted)
    );
    let Ok(Acquire::Queued(t)) = s.acquire(b, &[j], UNLIMITED, false) else {
      panic!("waits")
    };
    let mut contended = Vec::new();
    s.release_idle(a, &[k, j], &mut contended).expect("held");
    assert_eq!(contended, vec![j]);
    assert!(!s.is_busy_id(k));
    assert_eq!(s.held_by(a), vec![j], "the contended key is still a's");
    let mut mine = Vec::new();
    s.release(a, &contended, &mut mine).expect("held");
    let mut got = Vec::new();
    s.take_grants(b, &mut got);
    assert_eq!(got, vec![t]);
  }

  #[test]
  fn cancel_only_by_owner_and_never_after_grant() {
    let s = fresh("cancel");
    let w: Arc<dyn Waker> = Arc::new(CountingWaker::default());
    let a = s.join(w.clone());
    let b = s.join(w);
    let k = key(&s, a, "k");
    assert_eq!(s.acquire(a, &[k], UNLIMITED, false), Ok(Acquire::Granted));
    let Ok(Acquire::Queued(t)) = s.acquire(b, &[k], UNLIMITED, false) else {
      panic!("waits")
    };
    let mut mine = Vec::new();
    assert_eq!(
      s.cancel(a, t, &mut mine).0,
      Cancel::NotWaiting,
      "not a's ticket"
    );
    s.release(a, &[k], &mut mine).expect("held");
    assert_eq!(
      s.cancel(b, t, &mut mine),
      (Cancel::NotWaiting, None),
      "granted on its way: the grant stands"
    );
    assert_eq!(s.held_by(b), vec![k]);
  }

  #[test]
  fn exclusion_across_threads() {
    let s = fresh("exclusion");
    let counter = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..6)
      .map(|_| {
        let s = s.clone();
        let counter = counter.clone();
        thread::spawn(move || {
          let waker = Arc::new(CountingWaker::default());
          let m = s.membership(waker.clone());
          let k = key(&s, m.owner(), "k");
          for _ in 0..500 {
            lock(&m, &waker, &[k]);
            // A non-atomic read-modify-write: lost updates unless exclusive.
            let v = counter.load(Ordering::Relaxed);
            thread::yield_now();
            counter.store(v + 1, Ordering::Relaxed);
            unlock(&m, &[k]);
          }
        })
      })
      .collect();
    for t in threads {
      t.join().expect("no panic");
    }
    assert_eq!(counter.load(Ordering::SeqCst), 3000);
    assert!(!s.busy());
  }

  #[test]
  fn fifo_across_threads() {
    let s = fresh("fifo");
    let main_waker: Arc<dyn Waker> = Arc::new(CountingWaker::default());
    let main = s.membership(main_waker);
    let k = key(&s, main.owner(), "k");
    assert_eq!(
      s.acquire(main.owner(), &[k], UNLIMITED, false),
      Ok(Acquire::Granted)
    );
    let (order_tx, order_rx) = mpsc::channel();
    let mut threads = Vec::new();
    for i in 0..5 {
      let s = s.clone();
      let order_tx = order_tx.clone();
      let (queued_tx, queued_rx) = mpsc::channel();
      threads.push(thread::spawn(move || {
        let waker = Arc::new(CountingWaker::default());
        let m = s.membership(waker.clone());
        let k = key(&s, m.owner(), "k");
        let Ok(Acquire::Queued(t)) = s.acquire(m.owner(), &[k], UNLIMITED, false) else {
          panic!("main holds the key")
        };
        queued_tx.send(()).expect("main listens");
        loop {
          let mut got = Vec::new();
          s.take_grants(m.owner(), &mut got);
          if got.contains(&t) {
            break;
          }
          waker.wait();
        }
        order_tx.send(i).expect("main listens");
        unlock(&m, &[k]);
      }));
      // Thread i is queued before thread i + 1 starts: a known order.
      queued_rx.recv().expect("thread queued");
    }
    drop(order_tx);
    unlock(&main, &[k]);
    let order: Vec<i32> = order_rx.iter().collect();
    assert_eq!(order, vec![0, 1, 2, 3, 4]);
    for t in threads {
      t.join().expect("no panic");
    }
  }

  #[test]
  fn multi_key_across_threads() {
    let s = fresh("multi");
    let in_use = Arc::new([
      AtomicUsize::new(0),
      AtomicUsize::new(0),
      AtomicUsize::new(0),
    ]);
    let start = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
      .map(|i| {
        let (s, in_use, start) = (s.clone(), in_use.clone(), start.clone());
        thread::spawn(move || {
          let waker = Arc::new(CountingWaker::default());
          let m = s.membership(waker.clone());
          let names: Vec<String> = if i % 2 == 0 {
            vec!["a".into(), "b".into(), "c".into()]
          } else {
            vec!["c".into(), "a".into()]
          };
          let keys: Vec<KeyId> = names.iter().map(|n| key(&s, m.owner(), n)).collect();
          start.wait();
          for _ in 0..300 {
            lock(&m, &waker, &keys);
            for n in &names {
              let slot = &in_use[(n.as_bytes()[0] - b'a') as usize];
              assert_eq!(slot.fetch_add(1, Ordering::SeqCst), 0, "key {n} held twice");
            }
            thread::yield_now();
            for n in &names {
              in_use[(n.as_bytes()[0] - b'a') as usize].fetch_sub(1, Ordering::SeqCst);
            }
            unlock(&m, &keys);
          }
        })
      })
      .collect();
    for t in threads {
      t.join().expect("no panic, no deadlock");
    }
    assert!(!s.busy());
  }

  #[test]
  fn thread_dying_mid_hold_releases_its_keys() {
    let s = fresh("dying");
    let waker = Arc::new(CountingWaker::default());
    let main = s.membership(waker.clone());
    let k = key(&s, main.owner(), "k");
    let (held_tx, held_rx) = mpsc::channel();
    let doomed = {
      let s = s.clone();
      thread::spawn(move || {
        let m = s.membership(Arc::new(CountingWaker::default()));
        let k = key(&s, m.owner(), "k");
        assert_eq!(
          s.acquire(m.owner(), &[k], UNLIMITED, false),
          Ok(Acquire::Granted)
        );
        held_tx.send(()).expect("main listens");
        // Dies holding the key: unwinding drops the membership.
        panic!("worker crashed while holding the lock");
      })
    };
    held_rx.recv().expect("doomed thread holds the key");
    let Ok(Acquire::Queued(t)) = s.acquire(main.owner(), &[k], UNLIMITED, false) else {
      panic!("the key is held")
    };
    assert!(doomed.join().is_err(), "the thread panicked");
    waker.wait();
    let mut got = Vec::new();
    s.take_grants(main.owner(), &mut got);
    assert_eq!(
      got,
      vec![t],
      "the dead thread's key passed to the next waiter"
    );
    unlock(&main, &[k]);
    assert!(!s.busy());
  }

  #[test]
  fn leaving_owner_cancels_its_waiters_and_drops_undelivered_grants() {
    let s = fresh("leaving");
    let wa = Arc::new(CountingWaker::default());
    let a = s.membership(wa.clone());
    let b = s.membership(Arc::new(CountingWaker::default()));
    let c = s.membership(Arc::new(CountingWaker::default()));
    let k = key(&s, a.owner(), "k");
    let j = key(&s, a.owner(), "j");
    key(&s, b.owner(), "k");
    key(&s, b.owner(), "j");
    key(&s, c.owner(), "j");
    assert_eq!(
      s.acquire(a.owner(), &[k], UNLIMITED, false),
      Ok(Acquire::Granted)
    );
    assert_eq!(
      s.acquire(a.owner(), &[j], UNLIMITED, false),
      Ok(Acquire::Granted)
    );
    // b waits on k (multi-key with j) and then alone on j.
    let Ok(Acquire::Queued(_)) = s.acquire(b.owner(), &[k, j], UNLIMITED, false) else {
      panic!("waits")
    };
    let Ok(Acquire::Queued(tc)) = s.acquire(c.owner(), &[j], UNLIMITED, false) else {
      panic!("waits")
    };
    // b's waiter is granted into b's outbox, never taken; then b goes.
    let mut mine = Vec::new();
    s.release(a.owner(), &[k, j], &mut mine).expect("held");
    assert_eq!(s.held_by(b.owner()), vec![k, j], "granted, in b's outbox");
    drop(b);
    assert_eq!(
      s.held_by(c.owner()),
      vec![j],
      "b's undelivered grant passed on"
    );
    let mut got = Vec::new();
    s.take_grants(c.owner(), &mut got);
    assert_eq!(got, vec![tc]);
    // c leaves while holding j and with a ticket waiting on j.
    let Ok(Acquire::Queued(_)) = s.acquire(c.owner(), &[k, j], UNLIMITED, false) else {
      panic!("waits for j")
    };
    drop(c);
    assert!(!s.busy(), "nothing stranded");
    assert!(!s.is_busy(&ProcessKey::Name("k".into())));
    drop(a);
  }
}
