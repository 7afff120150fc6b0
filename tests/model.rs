//! Property test: random sequences of acquire / release / cancel / fast-path
//! operations on a `Table`, checked after every step against a model that
//! recomputes everything from scratch (a fixpoint scan over the queues).

use std::collections::{BTreeSet, VecDeque};

use keyed_lock::core::{Acquire, Cancel, Table, TicketId, CONTENDED, HELD, IDLE, UNLIMITED};
use proptest::prelude::*;

const KEYS: u32 = 5;

#[derive(Debug, Clone)]
enum Op {
  Acquire {
    keys: Vec<u32>,
    skip: bool,
    max_pending: u32,
  },
  /// Release the n-th current holder (modulo the number of holders).
  Release(usize),
  /// Cancel the n-th current waiter.
  Cancel(usize),
  FastAcquire(u32),
}

fn op() -> impl Strategy<Value = Op> {
  prop_oneof![
    4 => (proptest::sample::subsequence((0..KEYS).collect::<Vec<_>>(), 1..=3), any::<bool>(), prop_oneof![Just(UNLIMITED), 0u32..4])
      .prop_shuffle_keys(),
    4 => any::<usize>().prop_map(Op::Release),
    2 => any::<usize>().prop_map(Op::Cancel),
    1 => (0..KEYS).prop_map(Op::FastAcquire),
  ]
}

trait ShuffleKeys {
  fn prop_shuffle_keys(self) -> BoxedStrategy<Op>;
}

impl<S> ShuffleKeys for S
where
  S: Strategy<Value = (Vec<u32>, bool, u32)> + 'static,
{
  fn prop_shuffle_keys(self) -> BoxedStrategy<Op> {
    self
      .prop_flat_map(|(keys, skip, max_pending)| {
        (Just(keys).prop_shuffle(), Just(skip), Just(max_pending))
      })
      .prop_map(|(keys, skip, max_pending)| Op::Acquire {
        keys,
        skip,
        max_pending,
      })
      .boxed()
  }
}

/// The obviously-correct model: per-key FIFO deques of request ids and a set
/// of held keys; grants are found by scanning until nothing changes.
#[derive(Default)]
struct Model {
  queues: Vec<VecDeque<u64>>,
  held: BTreeSet<u32>,
  /// request id -> keys, for waiting requests
  waiting: Vec<(u64, Vec<u32>)>,
  next: u64,
}

impl Model {
  fn new() -> Self {
    Model {
      queues: vec![VecDeque::new(); KEYS as usize],
      ..Default::default()
    }
  }

  fn busy(&self, k: u32) -> bool {
    self.held.contains(&k) || !self.queues[k as usize].is_empty()
  }

  /// Returns None if rejected, Some(None) if granted, Some(Some(id)) if queued.
  fn acquire(&mut self, keys: &[u32], skip: bool, max_pending: u32) -> Option<Option<u64>> {
    if keys
      .iter()
      .any(|&k| self.busy(k) && self.queues[k as usize].len() as u64 >= max_pending as u64)
    {
      return None;
    }
    let id = self.next;
    self.next += 1;
    for &k in keys {
      if skip {
        self.queues[k as usize].push_front(id)
      } else {
        self.queues[k as usize].push_back(id)
      }
    }
    self.waiting.push((id, keys.to_vec()));
    let granted = self.settle();
    if granted.contains(&id) {
      Some(None)
    } else {
      Some(Some(id))
    }
  }

  fn settle(&mut self) -> Vec<u64> {
    let mut granted = Vec::new();
    loop {
      let pick = self.waiting.iter().position(|(id, keys)| {
        keys
          .iter()
          .all(|&k| !self.held.contains(&k) && self.queues[k as usize].front() == Some(id))
      });
      let Some(i) = pick else { break };
      let (id, keys) = self.waiting.remove(i);
      for k in keys {
        self.queues[k as usize].pop_front();
        self.held.insert(k);
      }
      granted.push(id);
    }
    granted
  }

  fn release(&mut self, keys: &[u32]) -> Vec<u64> {
    for k in keys {
      assert!(self.held.remove(k));
    }
    self.settle()
  }

  fn cancel(&mut self, id: u64) -> Vec<u64> {
    let i = self
      .waiting
      .iter()
      .position(|(w, _)| *w == id)
      .expect("waiting");
    let (_, keys) = self.waiting.remove(i);
    for k in keys {
      self.queues[k as usize].retain(|w| *w != id);
    }
    self.settle()
  }
}

proptest! {
  #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

  #[test]
  fn table_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
    let mut table = Table::with_key_capacity(KEYS as usize);
    let mut model = Model::new();
    // (model id, table ticket) of waiting requests; holders as key lists.
    let mut waiters: Vec<(u64, TicketId, Vec<u32>)> = Vec::new();
    let mut holders: Vec<(Option<u64>, Vec<u32>)> = Vec::new();

    for op in ops {
      let mut grants = Vec::new();
      let model_grants: Vec<u64>;
      match op {
        Op::Acquire { keys, skip, max_pending } => {
          let got = table.acquire(&keys, max_pending, skip).expect("valid keys");
          let want = model.acquire(&keys, skip, max_pending);
          match (got, want) {
            (Acquire::Rejected { key_index }, None) => {
              let k = keys[key_index];
              prop_assert!(model.busy(k));
            }
            (Acquire::Granted, Some(None)) => holders.push((None, keys.clone())),
            (Acquire::Queued(t), Some(Some(id))) => waiters.push((id, t, keys.clone())),
            (got, want) => prop_assert!(false, "table {:?} vs model {:?}", got, want),
          }
          model_grants = Vec::new();
        }
        Op::Release(n) => {
          if holders.is_empty() { continue; }
          let (_, keys) = holders.remove(n % holders.len());
          table.release(&keys, &mut grants).expect("held");
          model_grants = model.release(&keys);
        }
        Op::Cancel(n) => {
          if waiters.is_empty() { continue; }
          let (id, t, _) = waiters.remove(n % waiters.len());
          prop_assert_eq!(table.cancel(t, &mut grants), Cancel::Cancelled);
          model_grants = model.cancel(id);
          prop_assert_eq!(table.cancel(t, &mut Vec::new()), Cancel::NotWaiting);
        }
        Op::FastAcquire(k) => {
          let got = table.fast_acquire(&[k]).expect("valid key");
          let want = !model.busy(k);
          prop_assert_eq!(got, want);
          if got {
            model.held.insert(k);
            holders.push((None, vec![k]));
          }
          model_grants = Vec::new();
        }
      }
      // Same grants (as sets: one release may unblock several keys).
      let mut table_ids: Vec<u64> = grants.iter().map(|t| {
        let i = waiters.iter().position(|(_, wt, _)| wt == t).expect("granted ticket was waiting");
        let (id, _, keys) = waiters.remove(i);
        holders.push((Some(id), keys));
        id
      }).collect();
      let mut model_ids = model_grants.clone();
      table_ids.sort();
      model_ids.sort();
      prop_assert_eq!(table_ids, model_ids);

      // Per-key state and words agree with the model.
      for k in 0..KEYS {
        prop_assert_eq!(table.is_held(k), model.held.contains(&k), "held {}", k);
        prop_assert_eq!(table.waiting_on(k) as usize, model.queues[k as usize].len(), "waiting on {}", k);
        let word = table.words().get(k);
        let want = if !model.queues[k as usize].is_empty() { CONTENDED } else if model.held.contains(&k) { HELD } else { IDLE };
        prop_assert_eq!(word, want, "word of {}", k);
      }
      prop_assert_eq!(table.waiting(), waiters.len());
      // Exclusion: no key in two holders.
      let mut seen = BTreeSet::new();
      for (_, keys) in &holders {
        for k in keys { prop_assert!(seen.insert(*k), "key {} held twice", k); }
      }
    }
  }
}
