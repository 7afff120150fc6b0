//! Counted process spaces: a process space opened with `permits > 1` keeps
//! its queues in a core [`Semaphores`] instead of a mutex [`Table`]
//! (docs/semaphores.md), so worker threads that name the space share each
//! key's permits, with weights and the core's queue discipline (FIFO across
//! weights, `skip_queue`, all-or-nothing multi-key, a cancelled head waking
//! whoever fits now). Everything else is the mutex space's: owners, key
//! names and pins, outboxes and wakers, and an owner that leaves giving
//! everything up.
//!
//! What differs, and why:
//!
//! - **A hold has a weight, and several owners hold a key at once**, so an
//!   owner's holds are a weight per key ([`Owner::holds`](super::Owner))
//!   instead of the key's one holder. A release names keys and weights; an
//!   owner may give back at most what it holds (else `NotHeld`).
//! - **Fencing tokens are made here, under the space's mutex, one per
//!   grant.** The mutex space lets each thread read the clock after its
//!   grant (only one holder at a time, so the key's next grant comes after
//!   the release, which comes after that read); two shared holders granted
//!   at once on two threads could read the same microsecond. So the caller
//!   passes its clock reading `now` (µs of one process-wide monotonic
//!   clock: the binding's) and a grant's token is `max(now, last + 1)`:
//!   strictly increasing across every grant of the space, so per key.
//!   Grants to the caller come back with their tokens; grants to other
//!   owners wait in their outbox with theirs ([`Owner::tokens`](super::Owner)).
//!
//! # Guarantees
//!
//! The core's (`core::semaphore`) hold across threads; the tests in
//! `process/tests.rs` named `counted_*` prove them from several OS threads:
//! permits shared by threads (`counted_permits_across_threads`, never more
//! than `N` out, an exclusive holder alone), FIFO with weights across
//! threads (`counted_fifo_with_weights_across_threads`), a cancelled heavy
//! head waking the lighter waiters of other threads
//! (`counted_cancelled_head_wakes_other_threads`), an owner that leaves
//! giving back its weights and leaving the queues
//! (`counted_leaving_owner_gives_back_its_weights`), tokens strictly
//! increasing per grant (`counted_tokens_increase_per_grant`), and a space
//! opened with another limit refused (`counted_permits_must_agree`).

use super::{
  wake_all, Acquire, Cancel, KeyId, OwnerId, ProcessSpace, SpaceError, State, Tag, TicketId, Wakes,
};
use crate::core::Semaphores;

/// A fencing token: microseconds of the process's monotonic clock, made
/// strictly increasing per space.
pub type Token = u64;

/// A grant of a counted space: the waiter's tag and its fencing token.
pub type Grant = (Tag, Token);

/// A key and a weight of it.
type Hold = (KeyId, u32);

/// What a counted space keeps beside the mutex space's state.
pub(super) struct Counted {
  pub(super) table: Semaphores,
  /// Permits out over every key (the space is busy while it is not 0).
  out: u64,
  last_token: Token,
}

impl Counted {
  pub(super) fn new(permits: u32) -> Self {
    Counted {
      table: Semaphores::new(permits),
      out: 0,
      last_token: 0,
    }
  }

  pub(super) fn reserve_keys(&mut self, keys: usize) {
    self.table.reserve_keys(keys);
  }

  pub(super) fn busy(&self) -> bool {
    self.out > 0 || self.table.waiting() > 0
  }

  fn token(&mut self, now: Token) -> Token {
    self.last_token = now.max(self.last_token + 1);
    self.last_token
  }
}

impl ProcessSpace {
  /// [`Semaphores::acquire`] on behalf of `owner`: `request` is its keys
  /// (interned, distinct) with a weight each. A grant at once comes with its
  /// token (made from `now`, the caller's clock in µs); otherwise the token
  /// is 0. A waiter's ticket is a tag, as in a mutex space.
  pub fn acquire_counted(
    &self,
    owner: OwnerId,
    request: &[(KeyId, u32)],
    max_pending: u32,
    skip_queue: bool,
    now: Token,
  ) -> Result<(Acquire, Token), SpaceError> {
    self
      .state
      .lock()
      .acquire_counted(owner, request, max_pending, skip_queue, now)
  }

  /// Gives back `owner`'s weights on `request`'s keys. Grants to `owner` are
  /// appended to `mine`; others' go to their outboxes, with their tokens.
  pub fn release_counted(
    &self,
    owner: OwnerId,
    request: &[(KeyId, u32)],
    now: Token,
    mine: &mut Vec<Grant>,
  ) -> Result<(), SpaceError> {
    let mut wakes = Wakes::new();
    let result = {
      let mut s = self.state.lock();
      s.release_counted(owner, request, now, mine, &mut wakes)
    };
    wake_all(wakes);
    result
  }

  /// As [`ProcessSpace::release_idle`]: gives back the weights on keys
  /// nobody waits for (which grants nothing) and appends the others, with
  /// their weights, to `contended` for a later `release_counted`.
  pub fn release_idle_counted(
    &self,
    owner: OwnerId,
    request: &[(KeyId, u32)],
    contended: &mut Vec<(KeyId, u32)>,
  ) -> Result<(), SpaceError> {
    let mut s = self.state.lock();
    s.check_counted_release(owner, request)?;
    let (idle, busy): (Vec<Hold>, Vec<Hold>) =
      request.iter().partition(|&&(k, _)| s.waiting_on(k) == 0);
    contended.extend(busy);
    let mut none = Vec::new();
    s.give_back(owner, &idle, &mut none)?;
    debug_assert!(none.is_empty(), "a key without waiters grants nothing");
    Ok(())
  }

  /// As [`ProcessSpace::cancel`], for the waiter `tag` of `owner`, with
  /// grants and their tokens.
  pub fn cancel_counted(
    &self,
    owner: OwnerId,
    tag: Tag,
    now: Token,
    mine: &mut Vec<Grant>,
  ) -> (Cancel, Option<usize>) {
    let mut wakes = Wakes::new();
    let result = {
      let mut s = self.state.lock();
      s.cancel_counted(owner, tag, now, mine, &mut wakes)
    };
    wake_all(wakes);
    result
  }

  /// Moves the grants waiting in `owner`'s outbox, with their tokens, to
  /// `out`, in grant order.
  pub fn take_counted_grants(&self, owner: OwnerId, out: &mut Vec<Grant>) {
    let mut s = self.state.lock();
    let State {
      owners, free_tags, ..
    } = &mut *s;
    if let Some(Some(o)) = owners.get_mut(owner as usize) {
      // In the owner's hands now: the tags may name new waiters.
      free_tags.extend_from_slice(&o.outbox);
      out.extend(o.outbox.drain(..).zip(o.tokens.drain(..)));
      o.notified = false;
    }
  }

  /// The weights `owner` holds, by key (tests and diagnostics).
  pub fn holds_of(&self, owner: OwnerId) -> Vec<(KeyId, u32)> {
    let s = self.state.lock();
    let mut holds: Vec<(KeyId, u32)> = match s.owners.get(owner as usize) {
      Some(Some(o)) => o.holds.iter().map(|(&k, &w)| (k, w)).collect(),
      _ => Vec::new(),
    };
    holds.sort_unstable();
    holds
  }

  /// Permits of `key` out now, by every owner (0 in a mutex space).
  pub fn out(&self, key: KeyId) -> u32 {
    let s = self.state.lock();
    s.counted.as_ref().map_or(0, |c| c.table.out(key))
  }
}

impl State {
  fn counted_mut(&mut self) -> Result<&mut Counted, SpaceError> {
    self.counted.as_mut().ok_or(SpaceError::WrongKind)
  }

  fn check_request(&self, request: &[(KeyId, u32)]) -> Result<(), SpaceError> {
    for &(k, _) in request {
      if self.keys.get(k as usize).is_none_or(|e| e.name.is_none()) {
        return Err(SpaceError::NoKey(k));
      }
    }
    Ok(())
  }

  fn acquire_counted(
    &mut self,
    owner: OwnerId,
    request: &[(KeyId, u32)],
    max_pending: u32,
    skip_queue: bool,
    now: Token,
  ) -> Result<(Acquire, Token), SpaceError> {
    self.check_owner(owner)?;
    self.check_request(request)?;
    let c = self.counted_mut()?;
    let outcome = c.table.acquire(request, max_pending, skip_queue)?;
    Ok(match outcome {
      Acquire::Granted => {
        let token = c.token(now);
        self.hold_counted(owner, request.iter().copied());
        (outcome, token)
      }
      Acquire::Queued(t) => {
        let keys = request.iter().map(|&(k, _)| k).collect();
        let weights = request.iter().map(|&(_, w)| w).collect();
        (Acquire::Queued(self.enqueue(t, owner, keys, weights)), 0)
      }
      Acquire::Rejected { .. } => (outcome, 0),
    })
  }

  fn hold_counted(&mut self, owner: OwnerId, request: impl Iterator<Item = (KeyId, u32)>) {
    let mut added = 0;
    if let Some(Some(o)) = self.owners.get_mut(owner as usize) {
      for (k, w) in request {
        *o.holds.entry(k).or_insert(0) += w;
        added += u64::from(w);
      }
    }
    if let Some(c) = &mut self.counted {
      c.out += added;
    }
  }

  /// Misuse checks of a release: a counted space, interned keys, each held
  /// by `owner` with at least that weight. Changes nothing.
  fn check_counted_release(
    &self,
    owner: OwnerId,
    request: &[(KeyId, u32)],
  ) -> Result<(), SpaceError> {
    self.check_owner(owner)?;
    self.check_request(request)?;
    if self.counted.is_none() {
      return Err(SpaceError::WrongKind);
    }
    let holds = match self.owners.get(owner as usize) {
      Some(Some(o)) => &o.holds,
      _ => return Err(SpaceError::NoOwner(owner)),
    };
    for &(k, w) in request {
      if w == 0 || holds.get(&k).is_none_or(|&h| h < w) {
        return Err(SpaceError::NotHeld(k));
      }
    }
    Ok(())
  }

  /// Returns checked holds to the table (appending the tickets that grants
  /// to `grants`, not routed yet) and frees the keys that went idle.
  fn give_back(
    &mut self,
    owner: OwnerId,
    request: &[(KeyId, u32)],
    grants: &mut Vec<TicketId>,
  ) -> Result<(), SpaceError> {
    if request.is_empty() {
      return Ok(());
    }
    // The table checks for a key named twice before changing anything.
    self.counted_mut()?.table.release(request, grants)?;
    let mut returned = 0;
    if let Some(Some(o)) = self.owners.get_mut(owner as usize) {
      for &(k, w) in request {
        if let Some(h) = o.holds.get_mut(&k) {
          *h -= w;
          if *h == 0 {
            o.holds.remove(&k);
          }
        }
        returned += u64::from(w);
      }
    }
    if let Some(c) = &mut self.counted {
      c.out -= returned;
    }
    for &(k, _) in request {
      self.maybe_free(k);
    }
    Ok(())
  }

  fn release_counted(
    &mut self,
    owner: OwnerId,
    request: &[(KeyId, u32)],
    now: Token,
    mine: &mut Vec<Grant>,
    wakes: &mut Wakes,
  ) -> Result<(), SpaceError> {
    self.check_counted_release(owner, request)?;
    let mut grants = Vec::new();
    self.give_back(owner, request, &mut grants)?;
    self.route_counted(&grants, owner, now, mine, wakes);
    Ok(())
  }

  fn cancel_counted(
    &mut self,
    owner: OwnerId,
    tag: Tag,
    now: Token,
    mine: &mut Vec<Grant>,
    wakes: &mut Wakes,
  ) -> (Cancel, Option<usize>) {
    // Not waiting: granted, its grant on its way to the owner, and it stands.
    let Some(ticket) = self.waiting_ticket(owner, tag) else {
      return (Cancel::NotWaiting, None);
    };
    let Some(c) = &mut self.counted else {
      return (Cancel::NotWaiting, None);
    };
    let blocking = c.table.blocking_index(ticket);
    let mut grants = Vec::new();
    let outcome = c.table.cancel(ticket, &mut grants);
    if outcome == Cancel::Cancelled {
      if let Some(w) = self.cancelled_waiter(ticket) {
        self.route_counted(&grants, owner, now, mine, wakes);
        for &k in w.keys.iter() {
          self.maybe_free(k);
        }
      }
    }
    (outcome, blocking)
  }

  /// As `route`, for a counted space: each grant gets its token and its
  /// owner holds its weights.
  fn route_counted(
    &mut self,
    grants: &[TicketId],
    caller: OwnerId,
    now: Token,
    mine: &mut Vec<Grant>,
    wakes: &mut Wakes,
  ) {
    for &t in grants {
      let Some(w) = self.granted_waiter(t) else {
        continue;
      };
      let Some(c) = &mut self.counted else {
        return;
      };
      let token = c.token(now);
      self.hold_counted(
        w.owner,
        w.keys.iter().copied().zip(w.weights.iter().copied()),
      );
      if w.owner == caller {
        // Returned by this very call: in the owner's hands.
        mine.push((w.tag, token));
        self.free_tags.push(w.tag);
      } else if let Some(Some(o)) = self.owners.get_mut(w.owner as usize) {
        o.outbox.push(w.tag);
        o.tokens.push(token);
        if !o.notified {
          o.notified = true;
          wakes.push(o.waker.clone());
        }
      }
    }
  }

  /// A counted space's part of `leave`: the owner's tickets leave their
  /// queues, then every weight it holds (granted, or still in its outbox)
  /// goes back, waking whoever can run now.
  pub(super) fn give_up_counted(&mut self, owner: OwnerId, wakes: &mut Wakes) {
    // No clock here (the leaving thread's JS is gone): these grants' tokens
    // are `last + 1`, still above every earlier token of the space.
    let now = 0;
    // Its tickets first: a cancel may grant another of its own tickets,
    // which then counts as a hold given back below.
    let mut own = Vec::new();
    for tag in self.waiting_tags(owner) {
      self.cancel_counted(owner, tag, now, &mut own, wakes);
    }
    let holds: Vec<(KeyId, u32)> = match self.owners.get(owner as usize) {
      Some(Some(o)) => o.holds.iter().map(|(&k, &w)| (k, w)).collect(),
      _ => return,
    };
    if !holds.is_empty() {
      let _ = self.release_counted(owner, &holds, now, &mut own, wakes);
    }
  }
}
