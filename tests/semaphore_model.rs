//! Property test of counted keys: random sequences of acquire (weights and
//! modes: a shared request takes 1 permit, an exclusive one all `N`),
//! release (through the table or the owner's fast path), cancel (what a
//! timeout, an abort or maxOccupationTime does to a waiter) and fast acquire
//! on a `Semaphores` table, with several keys, skipQueue and maxPending,
//! checked after every step against a reference model that recomputes the
//! grants by scanning every waiter until nothing changes.
//!
//! Invariants after every step: never more than `N` permits out per key; an
//! exclusive holder is alone on each of its keys; the table's grants are
//! the model's, and per key they come in queue order (FIFO across weights
//! and modes); no waiter is left grantable; words agree with the counts.

use std::collections::VecDeque;

use keyed_lock::core::{Acquire, Cancel, Semaphores, TicketId, SEM_CONTENDED, UNLIMITED};
use proptest::prelude::*;

const KEYS: u32 = 4;

#[derive(Debug, Clone, Copy)]
enum Mode {
  /// `weight` permits (1 is a shared holder of a read/write lock)
  Weight(u32),
  /// all `N` permits
  Exclusive,
}

#[derive(Debug, Clone)]
enum Op {
  Acquire {
    keys: Vec<(u32, Mode)>,
    skip: bool,
    max_pending: u32,
  },
  /// Release the n-th holder; through the fast path when the owner may.
  Release(usize, bool),
  /// Cancel (time out) the n-th waiter.
  Cancel(usize),
  FastAcquire(u32, Mode),
}

fn mode() -> impl Strategy<Value = Mode> {
  prop_oneof![
    3 => Just(Mode::Weight(1)),
    2 => (1u32..=4).prop_map(Mode::Weight),
    2 => Just(Mode::Exclusive),
  ]
}

fn op() -> impl Strategy<Value = Op> {
  prop_oneof![
    5 => (
      proptest::sample::subsequence((0..KEYS).collect::<Vec<_>>(), 1..=3).prop_shuffle(),
      proptest::collection::vec(mode(), 3),
      proptest::bool::weighted(0.15),
      prop_oneof![4 => Just(UNLIMITED), 1 => 0u32..3],
    )
      .prop_map(|(keys, modes, skip, max_pending)| Op::Acquire {
        keys: keys.into_iter().zip(modes).collect(),
        skip,
        max_pending,
      }),
    4 => (any::<usize>(), any::<bool>()).prop_map(|(n, fast)| Op::Release(n, fast)),
    2 => any::<usize>().prop_map(Op::Cancel),
    1 => (0..KEYS, mode()).prop_map(|(k, m)| Op::FastAcquire(k, m)),
  ]
}

/// Weights clamped to the case's limit (a weight above it is the faces'
/// TypeError, never sent to the table).
fn weigh(request: &[(u32, Mode)], permits: u32) -> Vec<(u32, u32)> {
  request
    .iter()
    .map(|&(k, m)| match m {
      Mode::Weight(w) => (k, w.min(permits)),
      Mode::Exclusive => (k, permits),
    })
    .collect()
}

/// The obviously-correct model: per-key FIFO deques of live request ids and
/// a count per key; grants are found by scanning until nothing changes.
struct Model {
  permits: u32,
  queues: Vec<VecDeque<u64>>,
  out: Vec<u32>,
  waiting: Vec<(u64, Vec<(u32, u32)>)>,
  next: u64,
}

impl Model {
  fn new(permits: u32) -> Self {
    Model {
      permits,
      queues: vec![VecDeque::new(); KEYS as usize],
      out: vec![0; KEYS as usize],
      waiting: Vec::new(),
      next: 0,
    }
  }

  fn fits(&self, k: u32, w: u32) -> bool {
    self.out[k as usize] + w <= self.permits
  }

  /// None: rejected at that key index; Some(None): granted; Some(Some(id)): queued.
  fn acquire(
    &mut self,
    r: &[(u32, u32)],
    skip: bool,
    max_pending: u32,
  ) -> Result<Option<u64>, usize> {
    let mut at_once = true;
    for (i, &(k, w)) in r.iter().enumerate() {
      let blocks = (!self.queues[k as usize].is_empty() && !skip) || !self.fits(k, w);
      if blocks {
        at_once = false;
        if self.queues[k as usize].len() as u64 >= max_pending as u64 {
          return Err(i);
        }
      }
    }
    if at_once {
      for &(k, w) in r {
        self.out[k as usize] += w;
      }
      return Ok(None);
    }
    let id = self.next;
    self.next += 1;
    for &(k, _) in r {
      if skip {
        self.queues[k as usize].push_front(id)
      } else {
        self.queues[k as usize].push_back(id)
      }
    }
    self.waiting.push((id, r.to_vec()));
    Ok(Some(id))
  }

  /// Grants every waiter that heads all its queues and fits, until none does.
  fn settle(&mut self) -> Vec<u64> {
    let mut granted = Vec::new();
    loop {
      let pick = self.waiting.iter().position(|(id, r)| {
        r.iter()
          .all(|&(k, w)| self.queues[k as usize].front() == Some(id) && self.fits(k, w))
      });
      let Some(i) = pick else { break };
      let (id, r) = self.waiting.remove(i);
      for (k, w) in r {
        self.queues[k as usize].pop_front();
        self.out[k as usize] += w;
      }
      granted.push(id);
    }
    granted
  }

  fn release(&mut self, r: &[(u32, u32)]) -> Vec<u64> {
    for &(k, w) in r {
      self.out[k as usize] -= w;
    }
    self.settle()
  }

  fn cancel(&mut self, id: u64) -> Vec<u64> {
    let i = self
      .waiting
      .iter()
      .position(|(w, _)| *w == id)
      .expect("waiting");
    let (_, r) = self.waiting.remove(i);
    for (k, _) in r {
      self.queues[k as usize].retain(|w| *w != id);
    }
    self.settle()
  }
}

struct Waiter {
  id: u64,
  ticket: TicketId,
  request: Vec<(u32, u32)>,
}

proptest! {
  #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

  #[test]
  fn semaphores_match_model(permits in 1u32..=4, ops in proptest::collection::vec(op(), 1..100)) {
    let mut table = Semaphores::with_key_capacity(permits, KEYS as usize);
    let mut model = Model::new(permits);
    let mut waiters: Vec<Waiter> = Vec::new();
    let mut holders: Vec<Vec<(u32, u32)>> = Vec::new();

    for op in ops {
      let mut grants: Vec<TicketId> = Vec::new();
      // The model's queues before the step: FIFO is judged against them.
      let queues_before = model.queues.clone();
      let model_grants: Vec<u64>;
      match op {
        Op::Acquire { keys, skip, max_pending } => {
          let r = weigh(&keys, permits);
          let got = table.acquire(&r, max_pending, skip).expect("valid request");
          let want = model.acquire(&r, skip, max_pending);
          match (got, want) {
            (Acquire::Rejected { key_index }, Err(i)) => prop_assert_eq!(key_index, i),
            (Acquire::Granted, Ok(None)) => holders.push(r),
            (Acquire::Queued(t), Ok(Some(id))) => waiters.push(Waiter { id, ticket: t, request: r }),
            (got, want) => prop_assert!(false, "table {:?} vs model {:?}", got, want),
          }
          model_grants = model.settle();
          prop_assert!(model_grants.is_empty(), "an acquire never leaves a waiter grantable");
        }
        Op::Release(n, fast) => {
          if holders.is_empty() { continue; }
          let r = holders.remove(n % holders.len());
          let mut rest = r.clone();
          if fast {
            // The owner's fast path on the words, key by key, as the isolate reach does.
            rest.retain(|&(k, w)| !table.fast_release(k, w));
          }
          if !rest.is_empty() {
            table.release(&rest, &mut grants).expect("permits are out");
          }
          model_grants = model.release(&r);
        }
        Op::Cancel(n) => {
          if waiters.is_empty() { continue; }
          let w = waiters.remove(n % waiters.len());
          prop_assert_eq!(table.cancel(w.ticket, &mut grants), Cancel::Cancelled);
          model_grants = model.cancel(w.id);
          prop_assert_eq!(table.cancel(w.ticket, &mut Vec::new()), Cancel::NotWaiting);
        }
        Op::FastAcquire(k, m) => {
          let r = weigh(&[(k, m)], permits);
          let got = table.fast_acquire(&r).expect("valid request");
          let want = model.queues[k as usize].is_empty() && model.fits(k, r[0].1);
          prop_assert_eq!(got, want);
          if got {
            model.out[k as usize] += r[0].1;
            holders.push(r);
          }
          model_grants = Vec::new();
        }
      }

      // Same grants, and the table's come per key in the queue's order.
      let mut got_ids = Vec::new();
      for t in &grants {
        let i = waiters.iter().position(|w| w.ticket == *t);
        prop_assert!(i.is_some(), "granted ticket {} was not waiting", t);
        let w = waiters.remove(i.unwrap_or_default());
        got_ids.push(w.id);
        holders.push(w.request);
      }
      let mut a = got_ids.clone();
      let mut b = model_grants.clone();
      a.sort_unstable();
      b.sort_unstable();
      prop_assert_eq!(a, b, "same grants");
      for k in 0..KEYS {
        let on_k: Vec<u64> = got_ids
          .iter()
          .copied()
          .filter(|id| queues_before[k as usize].contains(id))
          .collect();
        let order: Vec<u64> = queues_before[k as usize]
          .iter()
          .copied()
          .filter(|id| on_k.contains(id))
          .collect();
        prop_assert_eq!(&on_k, &order, "FIFO on key {}", k);
        // Granted in order means a prefix of the live queue.
        let live: Vec<u64> = queues_before[k as usize]
          .iter()
          .copied()
          .filter(|id| model.waiting.iter().any(|(w, _)| w == id) || on_k.contains(id))
          .take(on_k.len())
          .collect();
        prop_assert_eq!(&on_k, &live, "nobody overtaken on key {}", k);
      }

      // Counts, exclusion, words.
      for k in 0..KEYS {
        let out: u32 = holders
          .iter()
          .flat_map(|r| r.iter())
          .filter(|&&(key, _)| key == k)
          .map(|&(_, w)| w)
          .sum();
        prop_assert!(out <= permits, "key {}: {} permits out of {}", k, out, permits);
        prop_assert_eq!(table.out(k), out);
        prop_assert_eq!(model.out[k as usize], out);
        let on_k = holders.iter().filter(|r| r.iter().any(|&(key, _)| key == k)).count();
        let exclusive = holders.iter().any(|r| r.iter().any(|&(key, w)| key == k && w == permits));
        prop_assert!(!exclusive || on_k == 1, "an exclusive holder of key {} is alone", k);
        let queued = model.queues[k as usize].len() as u32;
        prop_assert_eq!(table.waiting_on(k), queued);
        let word = table.words().get(k);
        if queued > 0 {
          prop_assert_eq!(word, SEM_CONTENDED);
        } else {
          prop_assert_eq!(word, out as i32);
        }
      }
      prop_assert_eq!(table.waiting(), waiters.len());
      prop_assert!(model.settle().is_empty(), "no waiter left grantable");
    }
    // Draining every holder leaves the table idle once the waiters are gone.
    while let Some(w) = waiters.pop() {
      let mut grants = Vec::new();
      prop_assert_eq!(table.cancel(w.ticket, &mut grants), Cancel::Cancelled);
      for t in grants {
        let i = waiters.iter().position(|w| w.ticket == t).unwrap_or_default();
        holders.push(waiters.remove(i).request);
      }
    }
    for r in holders.drain(..) {
      table.release(&r, &mut Vec::new()).expect("permits are out");
    }
    for k in 0..KEYS {
      prop_assert!(!table.is_busy(k));
    }
  }
}
