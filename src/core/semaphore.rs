//! Counted keys: a lock space whose keys each admit holders up to a fixed
//! number of permits (a keyed, weighted semaphore; a read/write lock is a
//! shared request of weight 1 beside an exclusive one of weight `permits`).
//!
//! [`Semaphores`] is the counted sibling of [`super::Table`], with the same
//! queue discipline: FIFO per key, `skip_queue` to the front, all-or-nothing
//! multi-key requests that stand in one relative order in every queue they
//! share, lazy cancellation. What changes is the grant condition: a request
//! is granted when it heads every queue of its keys and each key has room
//! for its weight there. Grants are strictly in queue order: a head that
//! does not fit blocks the requests behind it, however light (no starvation
//! by weight, no writer starvation). One release may grant several heads in
//! turn. A table with one permit per key is the mutex: the faces keep using
//! [`super::Table`] for it, so that path is unchanged.
//!
//! # Key words
//!
//! A key's word is the number of permits out while nobody waits (0: idle),
//! and [`SEM_CONTENDED`] while waiters are queued; then the table holds the
//! count and only the table changes the word. The owner may, on the table's
//! thread and without calling it, take `k` permits of a key whose word `w`
//! is `>= 0` with `w + k <= permits` (word `+= k`), and give back `k`
//! permits of a key whose word is `>= 0` (word `-= k`). A key has live
//! waiters if and only if its word is `SEM_CONTENDED`, so a release that
//! sees a count has nobody to wake.
//!
//! Holders are not tickets here either: a hold is given back by naming its
//! keys and weights (the owner remembers the weights of its grants).

use std::collections::VecDeque;
use std::sync::Arc;

use super::table::{grow_keys, Acquire, Cancel, KeyId, TicketId, Words};
use super::tickets::{check_keys, Tickets};
use super::CoreError;

/// The word of a counted key with live waiters.
pub const SEM_CONTENDED: i32 = -1;

/// The largest limit: a count must fit a word.
pub const MAX_PERMITS: u32 = i32::MAX as u32;

/// Keys and weights of one request.
type Request = Box<[(KeyId, u32)]>;

/// State of a `SEM_CONTENDED` key; for other words the word is the truth.
#[derive(Default)]
struct KeyQueue {
  out: u32,
  live: u32,
  /// Invariant: the front is never a cancelled ticket.
  queue: VecDeque<TicketId>,
}

/// A lock space of counted keys.
pub struct Semaphores {
  permits: u32,
  words: Arc<Words>,
  queues: Vec<KeyQueue>,
  tickets: Tickets<Request>,
  /// Keys whose heads may have become grantable (reused buffer).
  dirty: Vec<KeyId>,
}

impl Semaphores {
  /// A table whose keys each admit `permits` (clamped to 1..=[`MAX_PERMITS`]).
  pub fn new(permits: u32) -> Self {
    Self::with_key_capacity(permits, 64)
  }

  pub fn with_key_capacity(permits: u32, keys: usize) -> Self {
    let mut queues = Vec::new();
    queues.resize_with(keys, KeyQueue::default);
    Semaphores {
      permits: permits.clamp(1, MAX_PERMITS),
      words: Arc::new(Words::with_len(keys)),
      queues,
      tickets: Tickets::default(),
      dirty: Vec::new(),
    }
  }

  pub fn permits(&self) -> u32 {
    self.permits
  }

  /// The key words; replaced by [`Semaphores::reserve_keys`].
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
    if self.words.get(key) == SEM_CONTENDED {
      self.queues[key as usize].live
    } else {
      0
    }
  }

  /// Permits of `key` held now.
  pub fn out(&self, key: KeyId) -> u32 {
    match self.words.get(key) {
      SEM_CONTENDED => self.queues[key as usize].out,
      n => n as u32,
    }
  }

  /// Held or waited on.
  pub fn is_busy(&self, key: KeyId) -> bool {
    self.words.get(key) != 0
  }

  fn check(&self, request: &[(KeyId, u32)]) -> Result<(), CoreError> {
    check_keys(request.len(), |i| request[i].0, self.queues.len())?;
    match request.iter().find(|&&(_, w)| w == 0 || w > self.permits) {
      Some(&(k, _)) => Err(CoreError::BadWeight(k)),
      None => Ok(()),
    }
  }

  fn fits(&self, k: KeyId, w: u32) -> bool {
    self.out(k) + w <= self.permits
  }

  /// The uncontended acquire the owner may also do on the words: every key
  /// has no waiters and room for its weight.
  pub fn fast_acquire(&mut self, request: &[(KeyId, u32)]) -> Result<bool, CoreError> {
    self.check(request)?;
    let free = request
      .iter()
      .all(|&(k, w)| self.words.get(k) != SEM_CONTENDED && self.fits(k, w));
    if free {
      for &(k, w) in request {
        self.words.set(k, self.words.get(k) + w as i32);
      }
    }
    Ok(free)
  }

  /// The uncontended release: succeeds only if nobody waits for `key` and
  /// it has `weight` permits out.
  pub fn fast_release(&mut self, key: KeyId, weight: u32) -> bool {
    let word = self.words.get(key);
    if word != SEM_CONTENDED && word as u32 >= weight && weight > 0 {
      self.words.set(key, word - weight as i32);
      return true;
    }
    false
  }

  /// Takes `w` permits of every key `k` of `request`, or waits for all of
  /// them together. Granted at once if no key has live waiters and each has
  /// room (or, with `skip_queue`, if the request fits at the front).
  /// Refused (nothing changes) at the first key that makes it wait and has
  /// `max_pending` live waiters already.
  pub fn acquire(
    &mut self,
    request: &[(KeyId, u32)],
    max_pending: u32,
    skip_queue: bool,
  ) -> Result<Acquire, CoreError> {
    self.check(request)?;
    let mut at_once = true;
    for (i, &(k, w)) in request.iter().enumerate() {
      let contended = self.words.get(k) == SEM_CONTENDED;
      let blocks = (contended && !skip_queue) || !self.fits(k, w);
      if blocks {
        at_once = false;
        if self.waiting_on(k) >= max_pending {
          return Ok(Acquire::Rejected { key_index: i });
        }
      }
    }
    if at_once {
      self.take(request);
      return Ok(Acquire::Granted);
    }
    let ticket = self.tickets.wait(request.into());
    for &(k, _) in request {
      let word = self.words.get(k);
      let q = &mut self.queues[k as usize];
      if word != SEM_CONTENDED {
        q.out = word as u32;
      }
      if skip_queue {
        q.queue.push_front(ticket);
      } else {
        q.queue.push_back(ticket);
      }
      q.live += 1;
      self.words.set(k, SEM_CONTENDED);
    }
    Ok(Acquire::Queued(ticket))
  }

  /// Adds a grant's weights to the counts of keys that have no queue entry
  /// for it (an immediate grant).
  fn take(&mut self, request: &[(KeyId, u32)]) {
    for &(k, w) in request {
      let word = self.words.get(k);
      if word == SEM_CONTENDED {
        self.queues[k as usize].out += w;
      } else {
        self.words.set(k, word + w as i32);
      }
    }
  }

  /// Gives back `w` permits of every key `k` of `request` (each must have
  /// that many out) and appends the tickets this grants to `grants`, in
  /// grant order. Those grants hold their permits when this returns.
  pub fn release(
    &mut self,
    request: &[(KeyId, u32)],
    grants: &mut Vec<TicketId>,
  ) -> Result<(), CoreError> {
    // A release of no keys is nothing to do, not an error (the mutex's
    // release says the same).
    if !request.is_empty() {
      check_keys(request.len(), |i| request[i].0, self.queues.len())?;
    }
    if let Some(&(k, _)) = request.iter().find(|&&(k, w)| w == 0 || self.out(k) < w) {
      return Err(CoreError::NotHeld(k));
    }
    for &(k, w) in request {
      let word = self.words.get(k);
      if word == SEM_CONTENDED {
        self.queues[k as usize].out -= w;
        self.dirty.push(k);
      } else {
        self.words.set(k, word - w as i32);
      }
    }
    self.grant_heads(grants);
    Ok(())
  }

  /// Takes a waiting ticket out of every queue and grants whatever its
  /// leaving unblocks (appended to `grants`).
  pub fn cancel(&mut self, ticket: TicketId, grants: &mut Vec<TicketId>) -> Cancel {
    let Some(request) = self.tickets.cancel(ticket, |request| request.len()) else {
      return Cancel::NotWaiting;
    };
    for &(k, _) in request.iter() {
      let q = &mut self.queues[k as usize];
      q.live -= 1;
      if q.queue.front() == Some(&ticket) {
        self.drop_cancelled_heads(k);
        self.dirty.push(k);
      } else {
        self.settle_word(k);
      }
    }
    self.grant_heads(grants);
    Cancel::Cancelled
  }

  /// Grants, strictly in queue order, every head that fits, starting from
  /// the keys in `dirty`; a grant makes its other keys dirty too, since
  /// their queues moved. Settles the word of every key it looked at.
  fn grant_heads(&mut self, grants: &mut Vec<TicketId>) {
    while let Some(k) = self.dirty.pop() {
      if self.words.get(k) != SEM_CONTENDED {
        continue;
      }
      let granted = match self.queues[k as usize].queue.front() {
        Some(&head) if self.grantable(head) => {
          self.grant(head);
          grants.push(head);
          true
        }
        _ => false,
      };
      if !granted {
        self.settle_word(k);
      }
    }
  }

  fn grantable(&self, ticket: TicketId) -> bool {
    let Some(request) = self.tickets.request(ticket) else {
      return false;
    };
    request.iter().all(|&(k, w)| {
      let q = &self.queues[k as usize];
      q.queue.front() == Some(&ticket) && q.out + w <= self.permits
    })
  }

  fn grant(&mut self, ticket: TicketId) {
    let Some(request) = self.tickets.grant(ticket) else {
      return;
    };
    for &(k, w) in request.iter() {
      let q = &mut self.queues[k as usize];
      q.queue.pop_front();
      q.live -= 1;
      q.out += w;
      self.drop_cancelled_heads(k);
      // The next head of every key may fit too (or this key may settle).
      self.dirty.push(k);
    }
  }

  fn drop_cancelled_heads(&mut self, k: KeyId) {
    self
      .tickets
      .drop_cancelled_heads(&mut self.queues[k as usize].queue);
  }

  /// A contended key whose last live waiter left goes back to a count word.
  fn settle_word(&mut self, k: KeyId) {
    let q = &mut self.queues[k as usize];
    if q.live > 0 {
      return;
    }
    let out = q.out;
    self.tickets.clear_queue(&mut q.queue);
    q.out = 0;
    self.words.set(k, out as i32);
  }

  /// Position, in a waiting ticket's request, of the first key it cannot
  /// have yet (another waiter ahead of it, or no room). Timeout messages
  /// name it.
  pub fn blocking_index(&self, ticket: TicketId) -> Option<usize> {
    let request = self.tickets.request(ticket)?;
    request.iter().position(|&(k, w)| {
      let q = &self.queues[k as usize];
      q.queue.front() != Some(&ticket) || q.out + w > self.permits
    })
  }

  /// Keys and weights of a waiting ticket, for introspection and tests.
  pub fn ticket_request(&self, ticket: TicketId) -> Option<&[(KeyId, u32)]> {
    self.tickets.request(ticket).map(|request| &request[..])
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::core::UNLIMITED;

  fn acq(t: &mut Semaphores, r: &[(KeyId, u32)]) -> Acquire {
    t.acquire(r, UNLIMITED, false).expect("valid request")
  }

  fn queued(t: &mut Semaphores, r: &[(KeyId, u32)]) -> TicketId {
    match acq(t, r) {
      Acquire::Queued(id) => id,
      other => panic!("expected a queued ticket, got {other:?}"),
    }
  }

  fn release(t: &mut Semaphores, r: &[(KeyId, u32)]) -> Vec<TicketId> {
    let mut grants = Vec::new();
    t.release(r, &mut grants).expect("permits are out");
    grants
  }

  #[test]
  fn admits_up_to_the_limit_then_queues() {
    let mut t = Semaphores::new(3);
    for _ in 0..3 {
      assert_eq!(acq(&mut t, &[(0, 1)]), Acquire::Granted);
    }
    assert_eq!(t.words().get(0), 3, "the word counts permits out");
    let a = queued(&mut t, &[(0, 1)]);
    assert_eq!(t.words().get(0), SEM_CONTENDED);
    assert_eq!(release(&mut t, &[(0, 1)]), vec![a]);
    assert_eq!(t.out(0), 3);
    assert_eq!(t.words().get(0), 3, "no waiters left: back to a count");
  }

  #[test]
  fn a_heavy_head_is_not_overtaken() {
    let mut t = Semaphores::new(4);
    assert_eq!(acq(&mut t, &[(0, 2)]), Acquire::Granted);
    let heavy = queued(&mut t, &[(0, 4)]);
    // Two permits are free, but the heavy head waits first.
    let light = queued(&mut t, &[(0, 1)]);
    assert_eq!(t.out(0), 2);
    assert_eq!(release(&mut t, &[(0, 2)]), vec![heavy]);
    assert_eq!(release(&mut t, &[(0, 4)]), vec![light]);
  }

  #[test]
  fn an_exclusive_release_starts_every_shared_waiter_that_fits() {
    let n = 3;
    let mut t = Semaphores::new(n);
    assert_eq!(acq(&mut t, &[(0, n)]), Acquire::Granted);
    let r1 = queued(&mut t, &[(0, 1)]);
    let r2 = queued(&mut t, &[(0, 1)]);
    let w = queued(&mut t, &[(0, n)]);
    let r3 = queued(&mut t, &[(0, 1)]);
    assert_eq!(
      release(&mut t, &[(0, n)]),
      vec![r1, r2],
      "the writer blocks r3"
    );
    assert!(release(&mut t, &[(0, 1)]).is_empty());
    assert_eq!(release(&mut t, &[(0, 1)]), vec![w]);
    assert_eq!(release(&mut t, &[(0, n)]), vec![r3]);
  }

  #[test]
  fn skip_queue_goes_to_the_front_and_may_fit_at_once() {
    let mut t = Semaphores::new(2);
    assert_eq!(acq(&mut t, &[(0, 1)]), Acquire::Granted);
    let heavy = queued(&mut t, &[(0, 2)]);
    // One permit is free: a skipper of weight 1 fits at the front.
    assert_eq!(t.acquire(&[(0, 1)], UNLIMITED, true), Ok(Acquire::Granted));
    let Ok(Acquire::Queued(s)) = t.acquire(&[(0, 1)], UNLIMITED, true) else {
      panic!("no room: the skipper waits at the front")
    };
    assert_eq!(release(&mut t, &[(0, 1)]), vec![s]);
    assert!(release(&mut t, &[(0, 1)]).is_empty());
    assert_eq!(release(&mut t, &[(0, 1)]), vec![heavy]);
  }

  #[test]
  fn cancel_of_a_heavy_head_wakes_the_light_ones() {
    let mut t = Semaphores::new(4);
    assert_eq!(acq(&mut t, &[(0, 3)]), Acquire::Granted);
    let heavy = queued(&mut t, &[(0, 4)]);
    let a = queued(&mut t, &[(0, 1)]);
    let b = queued(&mut t, &[(0, 1)]);
    let mut grants = Vec::new();
    assert_eq!(t.cancel(heavy, &mut grants), Cancel::Cancelled);
    assert_eq!(
      grants,
      vec![a],
      "one permit was free: the next head fits, b does not"
    );
    assert_eq!(t.blocking_index(b), Some(0));
    assert_eq!(t.cancel(heavy, &mut grants), Cancel::NotWaiting);
  }

  #[test]
  fn multi_key_is_all_or_nothing_with_per_key_weights() {
    let mut t = Semaphores::new(2);
    assert_eq!(acq(&mut t, &[(1, 2)]), Acquire::Granted);
    let ab = queued(&mut t, &[(0, 2), (1, 1)]);
    assert_eq!(t.out(0), 0, "a waiting multi-key request holds nothing");
    let a = queued(&mut t, &[(0, 1)]);
    assert_eq!(t.blocking_index(ab), Some(1));
    assert_eq!(release(&mut t, &[(1, 2)]), vec![ab]);
    assert_eq!((t.out(0), t.out(1)), (2, 1));
    assert_eq!(release(&mut t, &[(0, 2), (1, 1)]), vec![a]);
  }

  #[test]
  fn opposite_orders_do_not_deadlock() {
    let mut t = Semaphores::new(2);
    assert_eq!(acq(&mut t, &[(0, 2)]), Acquire::Granted);
    assert_eq!(acq(&mut t, &[(1, 2)]), Acquire::Granted);
    let ab = queued(&mut t, &[(0, 1), (1, 2)]);
    let ba = queued(&mut t, &[(1, 1), (0, 2)]);
    assert!(release(&mut t, &[(0, 2)]).is_empty());
    assert_eq!(release(&mut t, &[(1, 2)]), vec![ab]);
    assert_eq!(release(&mut t, &[(0, 1), (1, 2)]), vec![ba]);
    assert!(release(&mut t, &[(1, 1), (0, 2)]).is_empty());
    assert!(!t.is_busy(0) && !t.is_busy(1));
    assert_eq!(t.waiting(), 0);
  }

  #[test]
  fn max_pending_refuses_only_requests_that_would_wait() {
    let mut t = Semaphores::new(2);
    assert_eq!(t.acquire(&[(0, 1)], 0, false), Ok(Acquire::Granted));
    assert_eq!(
      t.acquire(&[(0, 1)], 0, false),
      Ok(Acquire::Granted),
      "room left: a try succeeds"
    );
    assert_eq!(
      t.acquire(&[(0, 1)], 0, false),
      Ok(Acquire::Rejected { key_index: 0 })
    );
    queued(&mut t, &[(0, 1)]);
    assert_eq!(
      t.acquire(&[(1, 1), (0, 1)], 1, false),
      Ok(Acquire::Rejected { key_index: 1 })
    );
    assert_eq!(t.out(1), 0, "a refusal changes nothing");
  }

  #[test]
  fn fast_path_words() {
    let mut t = Semaphores::new(3);
    assert_eq!(t.fast_acquire(&[(0, 2)]), Ok(true));
    assert_eq!(t.fast_acquire(&[(0, 2)]), Ok(false));
    assert!(t.fast_release(0, 2));
    assert_eq!(t.words().get(0), 0);
    assert!(!t.fast_release(0, 1), "nothing out");
  }

  #[test]
  fn misuse_is_an_error_not_a_panic() {
    let mut t = Semaphores::with_key_capacity(2, 2);
    assert_eq!(t.acquire(&[], UNLIMITED, false), Err(CoreError::NoKeys));
    assert_eq!(
      t.acquire(&[(0, 0)], UNLIMITED, false),
      Err(CoreError::BadWeight(0))
    );
    assert_eq!(
      t.acquire(&[(0, 3)], UNLIMITED, false),
      Err(CoreError::BadWeight(0))
    );
    assert_eq!(
      t.acquire(&[(5, 1)], UNLIMITED, false),
      Err(CoreError::KeyOutOfRange(5))
    );
    assert_eq!(
      t.acquire(&[(1, 1), (1, 1)], UNLIMITED, false),
      Err(CoreError::DuplicateKey(1))
    );
    assert_eq!(
      t.release(&[(0, 1)], &mut Vec::new()),
      Err(CoreError::NotHeld(0))
    );
    assert_eq!(t.acquire(&[(0, 1)], UNLIMITED, false), Ok(Acquire::Granted));
    assert_eq!(
      t.release(&[(0, 2)], &mut Vec::new()),
      Err(CoreError::NotHeld(0))
    );
    assert_eq!(t.out(0), 1, "a refused release changes nothing");
  }

  #[test]
  fn queue_memory_is_returned() {
    let mut t = Semaphores::new(2);
    assert_eq!(acq(&mut t, &[(0, 2)]), Acquire::Granted);
    for _ in 0..10_000 {
      queued(&mut t, &[(0, 2)]);
    }
    for _ in 0..10_000 {
      assert_eq!(release(&mut t, &[(0, 2)]).len(), 1);
    }
    release(&mut t, &[(0, 2)]);
    assert_eq!(t.queues[0].queue.capacity(), 0);
    assert_eq!(t.words().get(0), 0);
  }

  #[test]
  fn reserve_keys_keeps_words() {
    let mut t = Semaphores::with_key_capacity(4, 2);
    assert_eq!(acq(&mut t, &[(1, 3)]), Acquire::Granted);
    assert!(t.reserve_keys(3));
    assert_eq!(t.words().get(1), 3);
  }
}
