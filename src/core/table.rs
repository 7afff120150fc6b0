use std::collections::VecDeque;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use super::tickets::{check_keys, Tickets};
use super::{CoreError, CONTENDED, HELD, IDLE};

/// A key, interned by the owner of the table. Ids are dense and reusable.
pub type KeyId = u32;
/// A waiter. Valid from [`Acquire::Queued`] until it is granted or cancelled;
/// the id may then be handed out again.
pub type TicketId = u32;

/// `max_pending` value that means "no limit".
pub const UNLIMITED: u32 = u32::MAX;

/// The per-key words (see the module docs, *Key words*), followed by one
/// count per key: its live waiters (0 unless the word is `CONTENDED`), kept
/// equal to the table's own count so that the owner can refuse a request
/// over `max_pending` without calling the table. Atomic only so that the
/// memory may be aliased by a JS typed array without undefined behaviour;
/// every access is on the table's own thread and uses `Relaxed`.
pub struct Words {
  /// `len` key words, then `len` waiter counts.
  slots: Box<[AtomicI32]>,
  len: usize,
}

impl Words {
  pub(super) fn with_len(len: usize) -> Self {
    Words {
      slots: (0..2 * len).map(|_| AtomicI32::new(IDLE)).collect(),
      len,
    }
  }

  /// How many keys have a word.
  pub fn len(&self) -> usize {
    self.len
  }

  pub fn is_empty(&self) -> bool {
    self.len == 0
  }

  /// i32 slots in the whole array: the words, then the counts.
  pub fn slot_count(&self) -> usize {
    self.slots.len()
  }

  /// The word of `key`; `IDLE` for a key beyond the end.
  pub fn get(&self, key: KeyId) -> i32 {
    if key as usize >= self.len {
      return IDLE;
    }
    self.slots[key as usize].load(Ordering::Relaxed)
  }

  pub(super) fn set(&self, key: KeyId, value: i32) {
    self.slots[key as usize].store(value, Ordering::Relaxed)
  }

  /// The live-waiter count of `key` as the owner reads it.
  pub fn waiters(&self, key: KeyId) -> i32 {
    if key as usize >= self.len {
      return 0;
    }
    self.slots[self.len + key as usize].load(Ordering::Relaxed)
  }

  fn set_waiters(&self, key: KeyId, live: u32) {
    // A table never has 2^31 waiters (each is a heap slot), so this is exact.
    self.slots[self.len + key as usize].store(live as i32, Ordering::Relaxed)
  }

  /// A copy `len` keys long (words and counts), for a table that grows.
  fn grown(&self, len: usize) -> Words {
    let words = Words::with_len(len);
    for k in 0..self.len.min(len) as KeyId {
      words.set(k, self.get(k));
      words.set_waiters(k, self.waiters(k) as u32);
    }
    words
  }

  /// Start of the array, for a caller that exposes it to another runtime.
  pub fn as_mut_ptr(&self) -> *mut i32 {
    // AtomicI32 has the same in-memory representation as i32.
    self.slots.as_ptr() as *mut i32
  }
}

/// Makes key ids `0..keys` valid in a table's words and queues (both
/// tables grow alike). Returns true if the words were replaced.
pub(super) fn grow_keys<Q: Default>(
  words: &mut Arc<Words>,
  queues: &mut Vec<Q>,
  keys: usize,
) -> bool {
  let have = queues.len();
  if keys <= have {
    return false;
  }
  let len = keys.max(have * 2);
  *words = Arc::new(words.grown(len));
  queues.resize_with(len, Q::default);
  true
}

/// What [`Table::acquire`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
  /// Every key was taken; the caller holds them now.
  Granted,
  /// The request waits; it will come back from `release` or `cancel` as a
  /// grant, or leave through `cancel`.
  Queued(TicketId),
  /// `keys[key_index]` already has `max_pending` waiters; nothing changed.
  Rejected { key_index: usize },
}

/// What [`Table::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
  /// The ticket left every queue it stood in.
  Cancelled,
  /// The ticket was not waiting (already granted, already cancelled, or
  /// never issued); nothing changed.
  NotWaiting,
}

/// Keys of one request. One key is by far the common case and costs no
/// allocation.
enum TicketKeys {
  One(KeyId),
  Many(Box<[KeyId]>),
}

impl TicketKeys {
  fn as_slice(&self) -> &[KeyId] {
    match self {
      TicketKeys::One(k) => std::slice::from_ref(k),
      TicketKeys::Many(ks) => ks,
    }
  }
}

/// State of a key whose word is `CONTENDED`. For other words it is empty and
/// `held` is meaningless: the word is the truth.
#[derive(Default)]
struct KeyQueue {
  held: bool,
  /// Waiting tickets in `queue` (cancelled ones are not counted).
  live: u32,
  /// Invariant: the front is never a cancelled ticket.
  queue: VecDeque<TicketId>,
}

/// One lock space: a queue per key and the tickets waiting in them.
pub struct Table {
  words: Arc<Words>,
  queues: Vec<KeyQueue>,
  tickets: Tickets<TicketKeys>,
}

impl Default for Table {
  fn default() -> Self {
    Self::new()
  }
}

impl Table {
  pub fn new() -> Self {
    Self::with_key_capacity(64)
  }

  pub fn with_key_capacity(keys: usize) -> Self {
    let mut queues = Vec::new();
    queues.resize_with(keys, KeyQueue::default);
    Table {
      words: Arc::new(Words::with_len(keys)),
      queues,
      tickets: Tickets::default(),
    }
  }

  /// The key words. Replaced (not resized) by [`Table::reserve_keys`], so a
  /// holder of the old `Arc` must fetch this again after growing.
  pub fn words(&self) -> &Arc<Words> {
    &self.words
  }

  pub fn key_capacity(&self) -> usize {
    self.queues.len()
  }

  /// Makes key ids `0..keys` valid. Returns true if the words were replaced.
  pub fn reserve_keys(&mut self, keys: usize) -> bool {
    grow_keys(&mut self.words, &mut self.queues, keys)
  }

  /// Waiting tickets in the whole table.
  pub fn waiting(&self) -> usize {
    self.tickets.waiting()
  }

  /// Live waiters on `key`.
  pub fn waiting_on(&self, key: KeyId) -> u32 {
    if self.words.get(key) == CONTENDED {
      self.queues[key as usize].live
    } else {
      0
    }
  }

  pub fn is_held(&self, key: KeyId) -> bool {
    match self.words.get(key) {
      IDLE => false,
      HELD => true,
      _ => self.queues[key as usize].held,
    }
  }

  /// Held or waited on.
  pub fn is_busy(&self, key: KeyId) -> bool {
    self.words.get(key) != IDLE
  }

  fn check_keys(&self, keys: &[KeyId]) -> Result<(), CoreError> {
    check_keys(keys.len(), |i| keys[i], self.queues.len())
  }

  /// The uncontended acquire that the owner may also do on the words
  /// itself: succeeds only if every key is `IDLE`.
  pub fn fast_acquire(&mut self, keys: &[KeyId]) -> Result<bool, CoreError> {
    self.check_keys(keys)?;
    if keys.iter().all(|&k| self.words.get(k) == IDLE) {
      keys.iter().for_each(|&k| self.words.set(k, HELD));
      return Ok(true);
    }
    Ok(false)
  }

  /// The uncontended release: succeeds only if the key is `HELD`.
  pub fn fast_release(&mut self, key: KeyId) -> bool {
    if self.words.get(key) == HELD {
      self.words.set(key, IDLE);
      return true;
    }
    false
  }

  /// Takes every key in `keys` or waits for all of them together.
  ///
  /// Refused (nothing changes) if a key is busy with `max_pending` live
  /// waiters already. Granted at once if every key is idle, or if
  /// `skip_queue` puts the request at the head of queues whose keys are all
  /// free. Otherwise enqueued at the back of every key's queue (the front
  /// with `skip_queue`).
  pub fn acquire(
    &mut self,
    keys: &[KeyId],
    max_pending: u32,
    skip_queue: bool,
  ) -> Result<Acquire, CoreError> {
    self.check_keys(keys)?;
    let mut all_idle = true;
    for (i, &k) in keys.iter().enumerate() {
      let word = self.words.get(k);
      if word != IDLE {
        all_idle = false;
        if self.waiting_on(k) >= max_pending {
          return Ok(Acquire::Rejected { key_index: i });
        }
      }
    }
    if all_idle {
      keys.iter().for_each(|&k| self.words.set(k, HELD));
      return Ok(Acquire::Granted);
    }
    let ticket = self.tickets.wait(match keys {
      [k] => TicketKeys::One(*k),
      _ => TicketKeys::Many(keys.into()),
    });
    // At the back, a request heads all its queues only if each was empty,
    // and since not all its keys were idle, one of them is held: nothing to
    // grant. At the front it may head queues whose keys are free.
    for &k in keys {
      let word = self.words.get(k);
      let q = &mut self.queues[k as usize];
      if word != CONTENDED {
        q.held = word == HELD;
      }
      if skip_queue {
        q.queue.push_front(ticket);
      } else {
        q.queue.push_back(ticket);
      }
      q.live += 1;
      self.words.set_waiters(k, q.live);
      self.words.set(k, CONTENDED);
    }
    if skip_queue && self.try_grant(ticket) {
      return Ok(Acquire::Granted);
    }
    Ok(Acquire::Queued(ticket))
  }

  /// Releases every key in `keys` (all must be held) and appends the tickets
  /// this grants to `grants`, in key order. Keys of one grant are held by it
  /// when this returns.
  pub fn release(&mut self, keys: &[KeyId], grants: &mut Vec<TicketId>) -> Result<(), CoreError> {
    for &k in keys {
      if k as usize >= self.queues.len() {
        return Err(CoreError::KeyOutOfRange(k));
      }
      if !self.is_held(k) {
        return Err(CoreError::NotHeld(k));
      }
    }
    for &k in keys {
      if self.words.get(k) == HELD {
        self.words.set(k, IDLE);
      } else {
        self.queues[k as usize].held = false;
        self.advance(k, grants);
      }
    }
    Ok(())
  }

  /// Takes a waiting ticket out of every queue; grants whatever its leaving
  /// unblocks (appended to `grants`).
  pub fn cancel(&mut self, ticket: TicketId, grants: &mut Vec<TicketId>) -> Cancel {
    let Some(keys) = self.tickets.cancel(ticket, |keys| keys.as_slice().len()) else {
      return Cancel::NotWaiting;
    };
    for &k in keys.as_slice() {
      let q = &mut self.queues[k as usize];
      q.live -= 1;
      self.words.set_waiters(k, q.live);
      if q.queue.front() == Some(&ticket) {
        self.drop_cancelled_heads(k);
        if !self.queues[k as usize].held {
          self.advance(k, grants);
          continue;
        }
      }
      self.settle_word(k);
    }
    Cancel::Cancelled
  }

  /// Key `k` is `CONTENDED` and not held: grant its head if that head can
  /// have all its keys now, then bring the word up to date.
  fn advance(&mut self, k: KeyId, grants: &mut Vec<TicketId>) {
    if let Some(&head) = self.queues[k as usize].queue.front() {
      if self.try_grant(head) {
        grants.push(head);
        return;
      }
    }
    self.settle_word(k);
  }

  /// Grants `ticket` if it heads the queue of every one of its keys and none
  /// is held. Settles the words of its keys when it does.
  fn try_grant(&mut self, ticket: TicketId) -> bool {
    let Some(keys) = self.tickets.request(ticket) else {
      return false;
    };
    let grantable = keys.as_slice().iter().all(|&k| {
      let q = &self.queues[k as usize];
      !q.held && q.queue.front() == Some(&ticket)
    });
    if !grantable {
      return false;
    }
    let Some(keys) = self.tickets.grant(ticket) else {
      return false;
    };
    for &k in keys.as_slice() {
      let q = &mut self.queues[k as usize];
      q.queue.pop_front();
      q.live -= 1;
      self.words.set_waiters(k, q.live);
      q.held = true;
      self.drop_cancelled_heads(k);
      self.settle_word(k);
    }
    true
  }

  /// Restores the invariant that a queue's front is a live ticket.
  fn drop_cancelled_heads(&mut self, k: KeyId) {
    self
      .tickets
      .drop_cancelled_heads(&mut self.queues[k as usize].queue);
  }

  /// Sets the word of a key the table has just changed. A key with no live
  /// waiters leaves the table: its cancelled leftovers are dropped and a big
  /// queue buffer is freed.
  fn settle_word(&mut self, k: KeyId) {
    let q = &mut self.queues[k as usize];
    if q.live > 0 {
      self.words.set(k, CONTENDED);
      return;
    }
    let held = q.held;
    self.tickets.clear_queue(&mut q.queue);
    q.held = false;
    self.words.set(k, if held { HELD } else { IDLE });
  }

  /// Position, in a waiting ticket's keys, of the first key it cannot have
  /// yet (held, or another waiter ahead of it). Timeout messages name it.
  pub fn blocking_index(&self, ticket: TicketId) -> Option<usize> {
    let keys = self.ticket_keys(ticket)?;
    keys.iter().position(|&k| {
      let q = &self.queues[k as usize];
      q.held || q.queue.front() != Some(&ticket)
    })
  }

  /// Keys of a waiting ticket, for introspection and tests.
  pub fn ticket_keys(&self, ticket: TicketId) -> Option<&[KeyId]> {
    self.tickets.request(ticket).map(TicketKeys::as_slice)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn granted(t: &mut Table, keys: &[KeyId]) -> bool {
    t.acquire(keys, UNLIMITED, false) == Ok(Acquire::Granted)
  }

  fn queued(t: &mut Table, keys: &[KeyId]) -> TicketId {
    match t.acquire(keys, UNLIMITED, false) {
      Ok(Acquire::Queued(id)) => id,
      other => panic!("expected a queued ticket, got {other:?}"),
    }
  }

  fn release(t: &mut Table, keys: &[KeyId]) -> Vec<TicketId> {
    let mut grants = Vec::new();
    t.release(keys, &mut grants).expect("keys are held");
    grants
  }

  #[test]
  fn fifo_single_key() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[0]));
    let a = queued(&mut t, &[0]);
    let b = queued(&mut t, &[0]);
    let c = queued(&mut t, &[0]);
    assert_eq!(t.words().get(0), CONTENDED);
    assert_eq!(release(&mut t, &[0]), vec![a]);
    assert_eq!(release(&mut t, &[0]), vec![b]);
    assert_eq!(release(&mut t, &[0]), vec![c]);
    assert_eq!(
      t.words().get(0),
      HELD,
      "last grant leaves the key held, uncontended"
    );
    assert!(release(&mut t, &[0]).is_empty());
    assert_eq!(t.words().get(0), IDLE);
  }

  #[test]
  fn no_barging_after_release() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[0]));
    let a = queued(&mut t, &[0]);
    assert_eq!(release(&mut t, &[0]), vec![a]);
    // The key went straight to `a`: a newcomer waits.
    let b = queued(&mut t, &[0]);
    assert!(t.is_held(0));
    assert_eq!(release(&mut t, &[0]), vec![b]);
  }

  #[test]
  fn skip_queue_goes_to_front() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[0]));
    let n1 = queued(&mut t, &[0]);
    let Ok(Acquire::Queued(s1)) = t.acquire(&[0], UNLIMITED, true) else {
      panic!("skipper should wait")
    };
    let n2 = queued(&mut t, &[0]);
    let Ok(Acquire::Queued(s2)) = t.acquire(&[0], UNLIMITED, true) else {
      panic!("skipper should wait")
    };
    let mut order = Vec::new();
    for _ in 0..4 {
      order.extend(release(&mut t, &[0]));
    }
    assert_eq!(
      order,
      vec![s2, s1, n1, n2],
      "async-lock's order: last skipper first"
    );
  }

  #[test]
  fn skip_queue_on_idle_key_is_granted() {
    let mut t = Table::new();
    assert_eq!(t.acquire(&[3], UNLIMITED, true), Ok(Acquire::Granted));
  }

  #[test]
  fn max_pending_counts_live_waiters() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[0]));
    let a = queued(&mut t, &[0]);
    assert_eq!(
      t.acquire(&[0], 1, false),
      Ok(Acquire::Rejected { key_index: 0 })
    );
    assert_eq!(
      t.acquire(&[0], 1, true),
      Ok(Acquire::Rejected { key_index: 0 }),
      "checked before skip_queue"
    );
    assert_eq!(t.cancel(a, &mut Vec::new()), Cancel::Cancelled);
    // The cancelled waiter no longer takes a slot (async-lock's dead entries do).
    assert!(matches!(t.acquire(&[0], 1, false), Ok(Acquire::Queued(_))));
  }

  #[test]
  fn the_waiter_counts_beside_the_words_follow_the_queues() {
    let mut t = Table::new();
    let counts = |t: &Table| (0..3).map(|k| t.words().waiters(k)).collect::<Vec<_>>();
    assert!(granted(&mut t, &[0]));
    let a = queued(&mut t, &[0]);
    let b = queued(&mut t, &[0, 1]);
    let c = queued(&mut t, &[0]);
    assert_eq!(counts(&t), [3, 1, 0], "b waits on key 1 too");
    assert_eq!(t.cancel(b, &mut Vec::new()), Cancel::Cancelled);
    assert_eq!(counts(&t), [2, 0, 0]);
    // Growing the table carries the counts over to the new array.
    assert!(t.reserve_keys(1000));
    assert_eq!(counts(&t), [2, 0, 0]);
    let mut grants = Vec::new();
    t.release(&[0], &mut grants).unwrap();
    assert_eq!(grants, [a]);
    assert_eq!(counts(&t), [1, 0, 0]);
    t.release(&[0], &mut grants).unwrap();
    assert_eq!(grants, [a, c]);
    assert_eq!(counts(&t), [0, 0, 0]);
    for k in 0..3 {
      assert_eq!(t.words().waiters(k) as u32, t.waiting_on(k));
    }
  }

  #[test]
  fn max_pending_zero_refuses_any_waiter_but_not_an_idle_key() {
    let mut t = Table::new();
    assert_eq!(t.acquire(&[0], 0, false), Ok(Acquire::Granted));
    assert_eq!(
      t.acquire(&[0], 0, false),
      Ok(Acquire::Rejected { key_index: 0 })
    );
  }

  #[test]
  fn rejection_names_the_full_key_and_changes_nothing() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[1]));
    queued(&mut t, &[1]);
    assert_eq!(
      t.acquire(&[0, 1], 1, false),
      Ok(Acquire::Rejected { key_index: 1 })
    );
    assert_eq!(t.words().get(0), IDLE);
    assert_eq!(t.waiting(), 1);
  }

  #[test]
  fn multi_key_waits_for_all_and_holds_none_meanwhile() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[1]));
    let ab = queued(&mut t, &[0, 1]);
    assert!(!t.is_held(0), "a waiting multi-key request holds nothing");
    // ...but key 0 is not free for a newcomer either: FIFO.
    let a = queued(&mut t, &[0]);
    assert_eq!(release(&mut t, &[1]), vec![ab]);
    assert!(t.is_held(0) && t.is_held(1));
    assert_eq!(release(&mut t, &[0, 1]), vec![a]);
  }

  #[test]
  fn opposite_orders_do_not_deadlock() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[0]));
    assert!(granted(&mut t, &[1]));
    let ab = queued(&mut t, &[0, 1]);
    let ba = queued(&mut t, &[1, 0]);
    assert!(release(&mut t, &[0]).is_empty(), "ab still waits for 1");
    assert_eq!(release(&mut t, &[1]), vec![ab]);
    assert_eq!(release(&mut t, &[0, 1]), vec![ba]);
    assert!(release(&mut t, &[1, 0]).is_empty());
    assert_eq!(t.waiting(), 0);
    assert!(!t.is_busy(0) && !t.is_busy(1));
  }

  #[test]
  fn cancel_of_a_blocking_head_grants_the_next() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[1]));
    let ab = queued(&mut t, &[0, 1]);
    let a = queued(&mut t, &[0]);
    let mut grants = Vec::new();
    assert_eq!(t.cancel(ab, &mut grants), Cancel::Cancelled);
    assert_eq!(
      grants,
      vec![a],
      "key 0 was free: the next waiter gets it at once"
    );
    assert_eq!(t.words().get(1), HELD);
  }

  #[test]
  fn blocking_index_names_the_first_unavailable_key() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[2]));
    let w = queued(&mut t, &[0, 1, 2]);
    assert_eq!(t.blocking_index(w), Some(2));
    let v = queued(&mut t, &[1]);
    assert_eq!(t.blocking_index(v), Some(0), "waits behind w on key 1");
    assert_eq!(t.blocking_index(999), None);
  }

  #[test]
  fn cancel_in_the_middle_keeps_order() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[0]));
    let a = queued(&mut t, &[0]);
    let b = queued(&mut t, &[0]);
    let c = queued(&mut t, &[0]);
    assert_eq!(t.cancel(b, &mut Vec::new()), Cancel::Cancelled);
    assert_eq!(t.waiting_on(0), 2);
    assert_eq!(release(&mut t, &[0]), vec![a]);
    assert_eq!(release(&mut t, &[0]), vec![c]);
  }

  #[test]
  fn cancel_after_grant_is_a_no_op() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[0]));
    let a = queued(&mut t, &[0]);
    assert_eq!(release(&mut t, &[0]), vec![a]);
    assert_eq!(t.cancel(a, &mut Vec::new()), Cancel::NotWaiting);
    assert!(t.is_held(0), "the grant stands");
    assert_eq!(t.cancel(999, &mut Vec::new()), Cancel::NotWaiting);
  }

  #[test]
  fn cancelled_ticket_id_is_not_reused_while_queued() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[0]));
    let a = queued(&mut t, &[0]);
    let b = queued(&mut t, &[0]);
    t.cancel(b, &mut Vec::new());
    let c = queued(&mut t, &[1, 0]);
    assert_ne!(c, b, "b still stands in key 0's queue");
    assert_eq!(release(&mut t, &[0]), vec![a]);
    assert_eq!(release(&mut t, &[0]), vec![c]);
  }

  #[test]
  fn last_waiter_leaving_returns_key_to_uncontended() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[0]));
    let a = queued(&mut t, &[0]);
    t.cancel(a, &mut Vec::new());
    assert_eq!(t.words().get(0), HELD);
    assert!(t.fast_release(0));
    assert_eq!(t.words().get(0), IDLE);
  }

  #[test]
  fn queue_memory_is_returned() {
    let mut t = Table::new();
    assert!(granted(&mut t, &[0]));
    let tickets: Vec<_> = (0..10_000).map(|_| queued(&mut t, &[0])).collect();
    for _ in &tickets {
      release(&mut t, &[0]);
    }
    release(&mut t, &[0]);
    assert_eq!(t.queues[0].queue.capacity(), 0);
    assert_eq!(t.words().get(0), IDLE);
  }

  #[test]
  fn misuse_is_an_error_not_a_panic() {
    let mut t = Table::with_key_capacity(2);
    assert_eq!(t.acquire(&[], UNLIMITED, false), Err(CoreError::NoKeys));
    assert_eq!(
      t.acquire(&[5], UNLIMITED, false),
      Err(CoreError::KeyOutOfRange(5))
    );
    assert_eq!(
      t.acquire(&[1, 1], UNLIMITED, false),
      Err(CoreError::DuplicateKey(1))
    );
    assert_eq!(t.release(&[0], &mut Vec::new()), Err(CoreError::NotHeld(0)));
    assert_eq!(
      t.release(&[9], &mut Vec::new()),
      Err(CoreError::KeyOutOfRange(9))
    );
  }

  #[test]
  fn reserve_keys_keeps_words() {
    let mut t = Table::with_key_capacity(2);
    assert!(granted(&mut t, &[1]));
    assert!(t.reserve_keys(3));
    assert!(t.key_capacity() >= 4);
    assert_eq!(t.words().get(1), HELD);
    assert!(!t.reserve_keys(2));
  }
}
