//! The waiter bookkeeping that [`super::Table`] (the mutex) and
//! [`super::Semaphores`] (counted keys) share: ticket slots with a free
//! list, lazy cancellation, and the per-key FIFO queues of ticket ids. What
//! a waiting ticket asks for (`R`: its keys, or its keys and weights) and
//! when it may be granted stay with each table.
//!
//! # Lazy cancellation
//!
//! A cancelled ticket leaves the queues it heads at once, but stays in the
//! others (removing it from the middle of a queue is O(n)) as a
//! `Cancelled { refs }` slot counting the queues that still name it. Its
//! id is reused only once the last of them has dropped it, so a queue never
//! names a ticket that has since been handed to someone else. A queue's
//! front is never a cancelled ticket ([`Tickets::drop_cancelled_heads`]).

use std::collections::VecDeque;

use super::table::{KeyId, TicketId};

/// Queues bigger than this are freed, not kept for reuse, when they empty:
/// a drained burst of a million waiters must not pin 4 MB per key.
const KEEP_QUEUE_CAPACITY: usize = 64;

const NO_TICKET: u32 = u32::MAX;

enum Slot<R> {
  Vacant {
    next_free: u32,
  },
  Waiting(R),
  /// Cancelled, but still standing in `refs` queues (not at their heads).
  Cancelled {
    refs: u32,
  },
}

/// Ticket slots: a waiting ticket's request, by ticket id.
pub(super) struct Tickets<R> {
  slots: Vec<Slot<R>>,
  free_slot: u32,
  waiting: usize,
}

impl<R> Default for Tickets<R> {
  fn default() -> Self {
    Tickets {
      slots: Vec::new(),
      free_slot: NO_TICKET,
      waiting: 0,
    }
  }
}

impl<R> Tickets<R> {
  /// Waiting tickets.
  pub(super) fn waiting(&self) -> usize {
    self.waiting
  }

  /// A new waiting ticket for `request`, in a reused slot if one is free.
  pub(super) fn wait(&mut self, request: R) -> TicketId {
    self.waiting += 1;
    if self.free_slot != NO_TICKET {
      let t = self.free_slot;
      if let Slot::Vacant { next_free } = self.slots[t as usize] {
        self.free_slot = next_free;
      }
      self.slots[t as usize] = Slot::Waiting(request);
      return t;
    }
    self.slots.push(Slot::Waiting(request));
    (self.slots.len() - 1) as TicketId
  }

  /// The request of a waiting ticket.
  pub(super) fn request(&self, ticket: TicketId) -> Option<&R> {
    match self.slots.get(ticket as usize) {
      Some(Slot::Waiting(request)) => Some(request),
      _ => None,
    }
  }

  /// A waiting ticket is granted: its slot is free again (it stands in no
  /// queue once the caller has popped it from each). Its request is returned.
  pub(super) fn grant(&mut self, ticket: TicketId) -> Option<R> {
    let slot = self.slots.get_mut(ticket as usize)?;
    if !matches!(slot, Slot::Waiting(_)) {
      return None;
    }
    let Slot::Waiting(request) = std::mem::replace(
      slot,
      Slot::Vacant {
        next_free: self.free_slot,
      },
    ) else {
      return None;
    };
    self.free_slot = ticket;
    self.waiting -= 1;
    Some(request)
  }

  /// A waiting ticket is cancelled: it stays named by the `refs(&request)`
  /// queues it stands in until each drops it. `None` if it was not waiting.
  pub(super) fn cancel(&mut self, ticket: TicketId, refs: impl FnOnce(&R) -> usize) -> Option<R> {
    let slot = self.slots.get_mut(ticket as usize)?;
    let Slot::Waiting(request) = slot else {
      return None;
    };
    let standing = refs(request) as u32;
    let Slot::Waiting(request) = std::mem::replace(slot, Slot::Cancelled { refs: standing }) else {
      return None;
    };
    self.waiting -= 1;
    Some(request)
  }

  /// One queue no longer names the cancelled `ticket`.
  fn unref_cancelled(&mut self, ticket: TicketId) {
    if let Some(Slot::Cancelled { refs }) = self.slots.get_mut(ticket as usize) {
      *refs -= 1;
      if *refs == 0 {
        self.slots[ticket as usize] = Slot::Vacant {
          next_free: self.free_slot,
        };
        self.free_slot = ticket;
      }
    }
  }

  /// Restores the invariant that a queue's front is a live ticket.
  pub(super) fn drop_cancelled_heads(&mut self, queue: &mut VecDeque<TicketId>) {
    while let Some(&head) = queue.front() {
      if !matches!(self.slots.get(head as usize), Some(Slot::Cancelled { .. })) {
        break;
      }
      queue.pop_front();
      self.unref_cancelled(head);
    }
  }

  /// Empties the queue of a key whose last live waiter left: its cancelled
  /// leftovers are dropped, and a big buffer is freed.
  pub(super) fn clear_queue(&mut self, queue: &mut VecDeque<TicketId>) {
    let mut leftovers = std::mem::take(queue);
    while let Some(t) = leftovers.pop_front() {
      self.unref_cancelled(t);
    }
    if leftovers.capacity() <= KEEP_QUEUE_CAPACITY {
      *queue = leftovers;
    }
  }
}

/// Checks a request's keys as both tables do: at least one, each below
/// `capacity`, none twice. `key_at(i)` is the request's `i`th key.
pub(super) fn check_keys(
  len: usize,
  key_at: impl Fn(usize) -> KeyId,
  capacity: usize,
) -> Result<(), super::CoreError> {
  use super::CoreError;
  if len == 0 {
    return Err(CoreError::NoKeys);
  }
  for i in 0..len {
    let k = key_at(i);
    if k as usize >= capacity {
      return Err(CoreError::KeyOutOfRange(k));
    }
    if (0..i).any(|j| key_at(j) == k) {
      return Err(CoreError::DuplicateKey(k));
    }
  }
  Ok(())
}
