//! The process reach: lock spaces shared by every thread of the process
//! (every `worker_thread` and the main thread) that opens the same name.
//! Pure Rust, no N-API: `binding::process` is the thin layer over it.
//!
//! A [`ProcessSpace`] is one core [`Table`] (or, for a space opened with
//! `permits > 1`, a counted `Semaphores`: see `counted`) behind a
//! `parking_lot::Mutex`, plus what the table does not know: which thread (an *owner*, see
//! [`ProcessSpace::join`]) holds each key and owns each waiting ticket, and
//! the key names. Key strings are interned here, not in JS, because a key id
//! must mean the same key on every thread.
//!
//! # Guarantees
//!
//! Everything the core guarantees (see `crate::core`) holds across threads
//! (the `tests::` named below are in `process/tests.rs`):
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
//! # Tickets are tags
//!
//! The ticket an owner is given for a waiter (and finds in its grants, and
//! cancels by) is a *tag* of the space, not the table's ticket: the table
//! frees a ticket's slot when it grants it and hands the slot to the next
//! waiter at once, while the grant may still sit in its owner's outbox. An
//! owner that queued again before taking that grant could be given the same
//! ticket, and would then start the wrong waiter (and the right one never),
//! or cancel the wrong one. A tag is freed only once its owner has the
//! grant in hand (taken from its outbox, or returned by its own call) or
//! the waiter was cancelled (`tests::a_granted_ticket_is_not_reused_before_its_owner_takes_it`).
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

mod counted;
use counted::Counted;
pub use counted::{Grant, Token};

/// A thread (in Node: one JS environment) taking part in a space.
pub type OwnerId = u32;

/// What an owner knows a waiter by (see *Tickets are tags*): the ticket of
/// [`Acquire::Queued`], of grants and of [`ProcessSpace::cancel`].
pub type Tag = u32;

/// `State::tags` of a tag that is not waiting.
const NOT_WAITING: TicketId = TicketId::MAX;

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
  /// A counted space's weight per key (empty in a mutex space).
  weights: Box<[u32]>,
  /// What the owner knows it by.
  tag: Tag,
}

struct Owner {
  waker: Arc<dyn Waker>,
  /// Granted tickets not yet taken by the owner. Their keys are held by it.
  outbox: Vec<TicketId>,
  /// The waker was called and the owner has not taken its grants since.
  notified: bool,
  pins: HashMap<KeyId, u32>,
  /// A counted space's fencing token of each outbox entry (empty in a mutex space).
  tokens: Vec<Token>,
  /// A counted space's permits this owner holds, per key.
  holds: HashMap<KeyId, u32>,
}

#[derive(Default)]
struct State {
  table: Table,
  ids: HashMap<ProcessKey, KeyId>,
  keys: Vec<KeyEntry>,
  free_keys: Vec<KeyId>,
  /// Indexed by ticket: who waits and for what.
  tickets: Vec<Option<Waiter>>,
  /// Indexed by tag: the table ticket of a waiting tag, or [`NOT_WAITING`]
  /// (granted, not yet taken by its owner; or free).
  tags: Vec<TicketId>,
  free_tags: Vec<Tag>,
  owners: Vec<Option<Owner>>,
  free_owners: Vec<OwnerId>,
  /// Keys currently held, by anyone (a mutex space).
  held: usize,
  /// `Some` when the space counts permits (`permits > 1`): then this table,
  /// not `table`, holds the queues.
  counted: Option<Counted>,
}

/// One named, process-wide lock space.
pub struct ProcessSpace {
  name: String,
  /// Fixed when the space is created: 1 for a mutex space.
  permits: u32,
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
  /// The space named `name`, created on first use with `permits` per key
  /// (1: a mutex space; more: a counted one, see `counted`). A space keeps
  /// the limit it was created with for the life of the process: opening it
  /// with another is [`SpaceError::Permits`], and joins nothing.
  pub fn open(name: &str, permits: u32) -> Result<Arc<ProcessSpace>, SpaceError> {
    let mut spaces = spaces().lock();
    let permits = permits.clamp(1, crate::core::MAX_PERMITS);
    let space = spaces.entry(name.to_owned()).or_insert_with(|| {
      Arc::new(ProcessSpace {
        name: name.to_owned(),
        permits,
        state: Mutex::new(State {
          counted: (permits > 1).then(|| Counted::new(permits)),
          ..State::default()
        }),
      })
    });
    if space.permits != permits {
      return Err(SpaceError::Permits {
        have: space.permits,
        want: permits,
      });
    }
    Ok(space.clone())
  }

  /// The limit of the space named `name`, if it was opened.
  pub fn permits_of(name: &str) -> Option<u32> {
    spaces().lock().get(name).map(|s| s.permits)
  }

  pub fn name(&self) -> &str {
    &self.name
  }

  /// Permits per key: 1 for a mutex space.
  pub fn permits(&self) -> u32 {
    self.permits
  }

  /// Adds an owner; `waker` is how it learns of grants made by others.
  pub fn join(&self, waker: Arc<dyn Waker>) -> OwnerId {
    let mut s = self.state.lock();
    let owner = Owner {
      waker,
      outbox: Vec::new(),
      notified: false,
      pins: HashMap::new(),
      tokens: Vec::new(),
      holds: HashMap::new(),
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
    let (idle, busy): (Vec<KeyId>, Vec<KeyId>) = keys.iter().partition(|&&k| s.waiting_on(k) == 0);
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

  /// Takes a waiting ticket (tag) of `owner` out of its queues. Also
  /// returns the position, in the ticket's keys, of the first key it was
  /// still waiting for (`None` when it was not waiting). Grants as `release`
  /// does.
  pub fn cancel(
    &self,
    owner: OwnerId,
    tag: Tag,
    mine: &mut Vec<TicketId>,
  ) -> (Cancel, Option<usize>) {
    let mut wakes = Wakes::new();
    let result = {
      let mut s = self.state.lock();
      s.cancel(owner, tag, mine, &mut wakes)
    };
    wake_all(wakes);
    result
  }

  /// Moves the grants waiting in `owner`'s outbox to `out`, in grant order.
  pub fn take_grants(&self, owner: OwnerId, out: &mut Vec<TicketId>) {
    let mut s = self.state.lock();
    let State {
      owners, free_tags, ..
    } = &mut *s;
    if let Some(Some(o)) = owners.get_mut(owner as usize) {
      // In the owner's hands now: the tags may name new waiters.
      free_tags.extend_from_slice(&o.outbox);
      out.append(&mut o.outbox);
      o.notified = false;
    }
  }

  /// Whether `key` is held or waited on, by anyone.
  pub fn is_busy(&self, key: &ProcessKey) -> bool {
    let s = self.state.lock();
    s.ids.get(key).is_some_and(|&k| s.key_busy(k))
  }

  /// As `is_busy`, by id.
  pub fn is_busy_id(&self, key: KeyId) -> bool {
    self.state.lock().key_busy(key)
  }

  /// Whether any key is held or waited on.
  pub fn busy(&self) -> bool {
    let s = self.state.lock();
    match &s.counted {
      Some(c) => c.busy(),
      None => s.held > 0 || s.table.waiting() > 0,
    }
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
        s.key_busy(k).then(|| (k, name.clone(), s.waiting_on(k)))
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

fn spaces() -> &'static Mutex<HashMap<String, Arc<ProcessSpace>>> {
  static SPACES: OnceLock<Mutex<HashMap<String, Arc<ProcessSpace>>>> = OnceLock::new();
  SPACES.get_or_init(Default::default)
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
  /// The space was opened with another limit (`have`) than `want`.
  Permits {
    have: u32,
    want: u32,
  },
  /// A mutex call on a counted space or a counted call on a mutex space
  /// (the binding's bug: each JS space makes only its own kind of call).
  WrongKind,
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
      SpaceError::Permits { have, want } => write!(
        f,
        "the lock space was opened with {have} permits per key, not {want}"
      ),
      SpaceError::WrongKind => write!(f, "a call of the other kind of lock space"),
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
      SpaceError::Permits { .. } => ErrorCode::Permits,
      SpaceError::WrongKind => ErrorCode::Internal,
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
        match &mut self.counted {
          Some(c) => c.reserve_keys(k as usize + 1),
          None => {
            self.table.reserve_keys(k as usize + 1);
          }
        }
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
    let busy = self.key_busy(k);
    let Some(e) = self.keys.get_mut(k as usize) else {
      return;
    };
    if e.pins > 0 || e.name.is_none() || busy {
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
    if self.counted.is_some() {
      return Err(SpaceError::WrongKind);
    }
    let outcome = self.table.acquire(keys, max_pending, skip_queue)?;
    Ok(match outcome {
      Acquire::Granted => {
        self.hold(owner, keys);
        outcome
      }
      Acquire::Queued(t) => Acquire::Queued(self.enqueue(t, owner, keys.into(), Box::default())),
      Acquire::Rejected { .. } => outcome,
    })
  }

  /// Records the waiter of table ticket `t`; returns its tag.
  fn enqueue(
    &mut self,
    t: TicketId,
    owner: OwnerId,
    keys: Box<[KeyId]>,
    weights: Box<[u32]>,
  ) -> Tag {
    let tag = match self.free_tags.pop() {
      Some(tag) => tag,
      None => {
        self.tags.push(NOT_WAITING);
        (self.tags.len() - 1) as Tag
      }
    };
    self.tags[tag as usize] = t;
    let t = t as usize;
    if self.tickets.len() <= t {
      self.tickets.resize_with(t + 1, || None);
    }
    self.tickets[t] = Some(Waiter {
      owner,
      keys,
      weights,
      tag,
    });
    tag
  }

  /// The table ticket of `owner`'s waiting `tag`.
  fn waiting_ticket(&self, owner: OwnerId, tag: Tag) -> Option<TicketId> {
    let t = *self.tags.get(tag as usize)?;
    match self.tickets.get(t as usize) {
      Some(Some(w)) if w.owner == owner && w.tag == tag => Some(t),
      _ => None,
    }
  }

  /// Table ticket `t` was granted: takes its waiter out, its tag no longer
  /// waiting (still taken until its owner has the grant).
  fn granted_waiter(&mut self, t: TicketId) -> Option<Waiter> {
    let w = self.tickets.get_mut(t as usize).and_then(Option::take)?;
    self.tags[w.tag as usize] = NOT_WAITING;
    Some(w)
  }

  /// Table ticket `t` was cancelled: takes its waiter out and frees its tag.
  fn cancelled_waiter(&mut self, t: TicketId) -> Option<Waiter> {
    let w = self.granted_waiter(t)?;
    self.free_tags.push(w.tag);
    Some(w)
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
    tag: Tag,
    mine: &mut Vec<TicketId>,
    wakes: &mut Wakes,
  ) -> (Cancel, Option<usize>) {
    let Some(ticket) = self.waiting_ticket(owner, tag) else {
      return (Cancel::NotWaiting, None);
    };
    let blocking = self.table.blocking_index(ticket);
    let mut grants = Vec::new();
    let outcome = self.table.cancel(ticket, &mut grants);
    if outcome == Cancel::Cancelled {
      if let Some(w) = self.cancelled_waiter(ticket) {
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
      let Some(w) = self.granted_waiter(t) else {
        continue;
      };
      self.hold(w.owner, &w.keys);
      if w.owner == caller {
        // Returned by this very call: in the owner's hands.
        mine.push(w.tag);
        self.free_tags.push(w.tag);
      } else if let Some(Some(o)) = self.owners.get_mut(w.owner as usize) {
        o.outbox.push(w.tag);
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
    if self.counted.is_some() {
      self.give_up_counted(owner, wakes);
    } else {
      self.give_up(owner, wakes);
    }
    let Some(o) = self.owners[owner as usize].take() else {
      return;
    };
    self.free_owners.push(owner);
    // Grants it never took: their holds went back above.
    self.free_tags.extend_from_slice(&o.outbox);
    for (k, n) in o.pins {
      self.keys[k as usize].pins -= n;
      self.maybe_free(k);
    }
  }

  /// A mutex space's part of `leave`: the owner's tickets and holds.
  fn give_up(&mut self, owner: OwnerId, wakes: &mut Wakes) {
    // Its tickets first: a cancel may grant another of its own tickets (a
    // multi-key head leaving), which then counts as a hold released below.
    let mut own = Vec::new();
    for tag in self.waiting_tags(owner) {
      self.cancel(owner, tag, &mut own, wakes);
    }
    // It waits for nothing now, so releasing its keys only grants others.
    let held: Vec<KeyId> = (0..self.keys.len() as KeyId)
      .filter(|&k| self.keys[k as usize].holder == owner)
      .collect();
    if !held.is_empty() {
      let _ = self.release(owner, &held, &mut own, wakes);
    }
  }

  /// The tags of `owner`'s waiters.
  fn waiting_tags(&self, owner: OwnerId) -> Vec<Tag> {
    self
      .tickets
      .iter()
      .flatten()
      .filter(|w| w.owner == owner)
      .map(|w| w.tag)
      .collect()
  }

  /// Held or waited on, whichever kind of table the space has.
  fn key_busy(&self, k: KeyId) -> bool {
    match &self.counted {
      Some(c) => c.table.is_busy(k),
      None => self.table.is_busy(k),
    }
  }

  /// Live waiters on `k`, whichever kind of table the space has.
  fn waiting_on(&self, k: KeyId) -> u32 {
    match &self.counted {
      Some(c) => c.table.waiting_on(k),
      None => self.table.waiting_on(k),
    }
  }
}

#[cfg(test)]
mod tests;
