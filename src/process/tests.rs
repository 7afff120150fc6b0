//! Unit tests of the process reach (`super`): the guarantees its module docs
//! name, driven from several OS threads.

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
  ProcessSpace::open(&format!("{name}#{}", N.fetch_add(1, Ordering::Relaxed)), 1)
    .expect("a fresh name")
}

/// A counted space (`permits` per key) no other test uses.
fn fresh_counted(name: &str, permits: u32) -> Arc<ProcessSpace> {
  static N: AtomicU64 = AtomicU64::new(0);
  let name = format!("{name}#counted{}", N.fetch_add(1, Ordering::Relaxed));
  ProcessSpace::open(&name, permits).expect("a fresh name")
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
  let open = |name| ProcessSpace::open(name, 1).expect("a mutex space");
  let a = open("same-name-test");
  let b = open("same-name-test");
  assert!(Arc::ptr_eq(&a, &b));
  assert!(!Arc::ptr_eq(&a, &open("other-name-test")));
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

// ---------------------------------------------------------------------------
// Counted spaces (`process::counted`).

/// Acquires with weights, blocking the thread until granted; returns the
/// grant's token.
fn lock_counted(m: &Membership, waker: &CountingWaker, request: &[(KeyId, u32)]) -> Token {
  let s = m.space();
  match s.acquire_counted(m.owner(), request, UNLIMITED, false, 0) {
    Ok((Acquire::Granted, token)) => token,
    Ok((Acquire::Queued(t), _)) => loop {
      let mut got = Vec::new();
      s.take_counted_grants(m.owner(), &mut got);
      if let Some(&(_, token)) = got.iter().find(|g| g.0 == t) {
        return token;
      }
      waker.wait();
    },
    other => panic!("unexpected {other:?}"),
  }
}

fn unlock_counted(m: &Membership, request: &[(KeyId, u32)]) {
  let mut mine = Vec::new();
  m.space()
    .release_counted(m.owner(), request, 0, &mut mine)
    .expect("held");
  assert!(mine.is_empty(), "these threads queue one request at a time");
}

/// Queues a request that must wait; returns its tag.
fn queued_counted(s: &ProcessSpace, owner: OwnerId, request: &[(KeyId, u32)]) -> Tag {
  match s.acquire_counted(owner, request, UNLIMITED, false, 0) {
    Ok((Acquire::Queued(tag), _)) => tag,
    other => panic!("expected a queued ticket, got {other:?}"),
  }
}

#[test]
fn counted_permits_must_agree() {
  let s = fresh_counted("agree", 3);
  assert_eq!(s.permits(), 3);
  assert_eq!(ProcessSpace::permits_of(s.name()), Some(3));
  assert!(Arc::ptr_eq(
    &s,
    &ProcessSpace::open(s.name(), 3).expect("same limit")
  ));
  assert_eq!(
    ProcessSpace::open(s.name(), 2).err(),
    Some(SpaceError::Permits { have: 3, want: 2 })
  );
  assert_eq!(
    ProcessSpace::open(s.name(), 1).err(),
    Some(SpaceError::Permits { have: 3, want: 1 })
  );
  let mutex = fresh("agree-mutex");
  assert_eq!(
    ProcessSpace::open(mutex.name(), 4).err(),
    Some(SpaceError::Permits { have: 1, want: 4 })
  );
  assert_eq!(
    SpaceError::Permits { have: 1, want: 4 }.code(),
    ErrorCode::Permits
  );
  // Each kind of space refuses the other kind's calls.
  let w: Arc<dyn Waker> = Arc::new(CountingWaker::default());
  let a = s.join(w.clone());
  let k = key(&s, a, "k");
  assert_eq!(
    s.acquire(a, &[k], UNLIMITED, false),
    Err(SpaceError::WrongKind)
  );
  let b = mutex.join(w);
  let j = key(&mutex, b, "j");
  assert_eq!(
    mutex.acquire_counted(b, &[(j, 1)], UNLIMITED, false, 0),
    Err(SpaceError::WrongKind)
  );
}

#[test]
fn counted_weights_shared_by_owners_and_misuse_is_an_error() {
  let s = fresh_counted("weights", 4);
  let w: Arc<dyn Waker> = Arc::new(CountingWaker::default());
  let a = s.join(w.clone());
  let b = s.join(w);
  let k = key(&s, a, "k");
  key(&s, b, "k");
  let (g, ta) = s
    .acquire_counted(a, &[(k, 3)], UNLIMITED, false, 10)
    .expect("valid");
  assert_eq!(g, Acquire::Granted);
  assert_eq!(ta, 10, "the caller's clock, above every earlier token");
  let (g, tb) = s
    .acquire_counted(b, &[(k, 1)], UNLIMITED, false, 10)
    .expect("valid");
  assert_eq!(g, Acquire::Granted);
  assert_eq!(tb, 11, "same microsecond: still a larger token");
  assert_eq!(s.out(k), 4);
  assert_eq!(s.holds_of(a), vec![(k, 3)]);
  assert_eq!(s.holds_of(b), vec![(k, 1)]);
  // b cannot give back a's permits, nor more than it holds.
  let mut mine = Vec::new();
  assert_eq!(
    s.release_counted(b, &[(k, 2)], 0, &mut mine),
    Err(SpaceError::NotHeld(k))
  );
  assert_eq!(
    s.release_counted(b, &[(k, 1), (k, 1)], 0, &mut mine),
    Err(SpaceError::Core(CoreError::DuplicateKey(k)))
  );
  assert_eq!(s.out(k), 4, "a refused release changes nothing");
  s.release_counted(a, &[(k, 2)], 0, &mut mine)
    .expect("part of a's hold");
  assert_eq!(s.holds_of(a), vec![(k, 1)]);
  s.release_counted(a, &[(k, 1)], 0, &mut mine).expect("held");
  s.release_counted(b, &[(k, 1)], 0, &mut mine).expect("held");
  assert!(mine.is_empty());
  assert!(!s.busy());
}

#[test]
fn counted_fifo_with_weights_and_release_idle() {
  let s = fresh_counted("fifo-weights", 4);
  let wa = Arc::new(CountingWaker::default());
  let wb = Arc::new(CountingWaker::default());
  let a = s.join(wa.clone());
  let b = s.join(wb.clone());
  let k = key(&s, a, "k");
  let j = key(&s, a, "j");
  key(&s, b, "k");
  key(&s, b, "j");
  assert_eq!(
    s.acquire_counted(a, &[(k, 2), (j, 1)], UNLIMITED, false, 0)
      .map(|r| r.0),
    Ok(Acquire::Granted)
  );
  // Two permits of k are free, but b's heavy head waits first, and a's
  // light request behind it waits too (no starvation by weight).
  let heavy = queued_counted(&s, b, &[(k, 4)]);
  let light = queued_counted(&s, a, &[(k, 1)]);
  let mut contended = Vec::new();
  s.release_idle_counted(a, &[(k, 2), (j, 1)], &mut contended)
    .expect("held");
  assert_eq!(contended, vec![(k, 2)], "j had no waiter: freed at once");
  assert!(!s.is_busy_id(j));
  let mut mine = Vec::new();
  s.release_counted(a, &contended, 5, &mut mine)
    .expect("held");
  assert!(mine.is_empty(), "the heavy head is b's");
  assert_eq!(wb.wakes.load(Ordering::SeqCst), 1);
  let mut got = Vec::new();
  s.take_counted_grants(b, &mut got);
  assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![heavy]);
  s.release_counted(b, &[(k, 4)], 6, &mut mine).expect("held");
  assert!(mine.is_empty(), "the light waiter is a's");
  let mut got_a = Vec::new();
  s.take_counted_grants(a, &mut got_a);
  assert_eq!(got_a.iter().map(|g| g.0).collect::<Vec<_>>(), vec![light]);
  assert!(got_a[0].1 > got[0].1, "tokens increase per grant");
  s.release_counted(a, &[(k, 1)], 0, &mut mine).expect("held");
  assert!(!s.busy());
}

#[test]
fn counted_cancelled_head_wakes_other_threads() {
  let s = fresh_counted("cancel-head", 4);
  let wa = Arc::new(CountingWaker::default());
  let wb = Arc::new(CountingWaker::default());
  let wc = Arc::new(CountingWaker::default());
  let a = s.join(wa.clone());
  let b = s.join(wb.clone());
  let c = s.join(wc.clone());
  let k = key(&s, a, "k");
  assert_eq!(
    s.acquire_counted(a, &[(k, 2)], UNLIMITED, false, 0)
      .map(|r| r.0),
    Ok(Acquire::Granted)
  );
  let heavy = queued_counted(&s, a, &[(k, 4)]);
  let tb = queued_counted(&s, b, &[(k, 1)]);
  let tc = queued_counted(&s, c, &[(k, 1)]);
  let td = queued_counted(&s, c, &[(k, 1)]);
  let mut mine = Vec::new();
  assert_eq!(
    s.cancel_counted(b, heavy, 0, &mut mine),
    (Cancel::NotWaiting, None),
    "only its owner cancels a ticket"
  );
  assert_eq!(
    s.cancel_counted(a, heavy, 0, &mut mine),
    (Cancel::Cancelled, Some(0))
  );
  assert!(mine.is_empty());
  // Two permits were free: b's and c's first waiters run, on two threads.
  assert_eq!(wb.wakes.load(Ordering::SeqCst), 1);
  assert_eq!(wc.wakes.load(Ordering::SeqCst), 1);
  let (mut gb, mut gc) = (Vec::new(), Vec::new());
  s.take_counted_grants(b, &mut gb);
  s.take_counted_grants(c, &mut gc);
  assert_eq!(gb.iter().map(|g| g.0).collect::<Vec<_>>(), vec![tb]);
  assert_eq!(gc.iter().map(|g| g.0).collect::<Vec<_>>(), vec![tc]);
  assert_ne!(gb[0].1, gc[0].1, "every grant its own token");
  assert_eq!(s.out(k), 4);
  // td still waits; a's hold goes back and td gets one permit.
  s.release_counted(a, &[(k, 2)], 0, &mut mine).expect("held");
  let mut gd = Vec::new();
  s.take_counted_grants(c, &mut gd);
  assert_eq!(gd.iter().map(|g| g.0).collect::<Vec<_>>(), vec![td]);
}

#[test]
fn counted_leaving_owner_gives_back_its_weights() {
  let s = fresh_counted("leaving", 3);
  let wa = Arc::new(CountingWaker::default());
  let a = s.membership(wa.clone());
  let b = s.membership(Arc::new(CountingWaker::default()));
  let c = s.membership(Arc::new(CountingWaker::default()));
  let k = key(&s, a.owner(), "k");
  let j = key(&s, a.owner(), "j");
  for m in [&b, &c] {
    key(&s, m.owner(), "k");
    key(&s, m.owner(), "j");
  }
  assert_eq!(
    s.acquire_counted(b.owner(), &[(k, 2)], UNLIMITED, false, 0)
      .map(|r| r.0),
    Ok(Acquire::Granted)
  );
  assert_eq!(
    s.acquire_counted(a.owner(), &[(k, 1)], UNLIMITED, false, 0)
      .map(|r| r.0),
    Ok(Acquire::Granted)
  );
  // c waits on k (3: everything) then b waits on j behind nothing but k's
  // multi-key request; b's second grant goes to its outbox, never taken.
  let tc = queued_counted(&s, c.owner(), &[(k, 3)]);
  let Ok((Acquire::Granted, _)) = s.acquire_counted(b.owner(), &[(j, 3)], UNLIMITED, false, 0)
  else {
    panic!("j is free")
  };
  let tbj = queued_counted(&s, b.owner(), &[(j, 1), (k, 1)]);
  assert_eq!(s.out(k), 3);
  drop(b);
  assert_eq!(s.out(j), 0, "b's weights on j came back");
  assert_eq!(
    s.out(k),
    1,
    "b's 2 permits of k came back; c still waits for a's"
  );
  assert!(
    s.held_by(c.owner()).is_empty() && s.holds_of(c.owner()).is_empty(),
    "c needs all 3"
  );
  let mut mine = Vec::new();
  s.release_counted(a.owner(), &[(k, 1)], 0, &mut mine)
    .expect("held");
  let mut got = Vec::new();
  s.take_counted_grants(c.owner(), &mut got);
  assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![tc]);
  assert_ne!(tc, tbj);
  // c leaves holding everything of k with a request waiting on j and k.
  let _ = queued_counted(&s, c.owner(), &[(j, 1), (k, 1)]);
  drop(c);
  assert!(!s.busy(), "nothing stranded");
  assert!(!s.is_busy(&ProcessKey::Name("k".into())));
  drop(a);
}

#[test]
fn counted_permits_across_threads() {
  // 6 threads × 300 requests of random weights and modes on 3 keys with 4
  // permits: per key, never more than 4 out and an exclusive holder alone,
  // checked inside the critical sections.
  const N: u32 = 4;
  let s = fresh_counted("stress", N);
  let out = Arc::new([
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
  ]);
  let start = Arc::new(Barrier::new(6));
  let threads: Vec<_> = (0..6u32)
    .map(|i| {
      let (s, out, start) = (s.clone(), out.clone(), start.clone());
      thread::spawn(move || {
        let waker = Arc::new(CountingWaker::default());
        let m = s.membership(waker.clone());
        let keys: Vec<KeyId> = ["a", "b", "c"]
          .iter()
          .map(|n| key(&s, m.owner(), n))
          .collect();
        let mut seed = 0x9e37_79b9u32.wrapping_mul(i + 1);
        let mut next = move || {
          seed ^= seed << 13;
          seed ^= seed >> 17;
          seed ^= seed << 5;
          seed
        };
        start.wait();
        let mut last_token = 0;
        for _ in 0..300 {
          let first = (next() % 3) as usize;
          let mut request = vec![(keys[first], 1 + next() % N)];
          if next() % 4 == 0 {
            let second = (first + 1 + (next() % 2) as usize) % 3;
            request.push((keys[second], 1 + next() % N));
          }
          let token = lock_counted(&m, &waker, &request);
          assert!(token > last_token, "tokens increase on one thread");
          last_token = token;
          for &(k, w) in &request {
            let slot = &out[k as usize];
            let before = slot.fetch_add(w as usize, Ordering::SeqCst);
            assert!(
              before + w as usize <= N as usize,
              "key {k}: {before} + {w} > {N}"
            );
            if w == N {
              assert_eq!(before, 0, "an exclusive holder is alone");
            }
          }
          thread::yield_now();
          for &(k, w) in &request {
            out[k as usize].fetch_sub(w as usize, Ordering::SeqCst);
          }
          unlock_counted(&m, &request);
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
fn counted_fifo_with_weights_across_threads() {
  let s = fresh_counted("fifo-threads", 3);
  let main_waker = Arc::new(CountingWaker::default());
  let main = s.membership(main_waker);
  let k = key(&s, main.owner(), "k");
  assert_eq!(
    s.acquire_counted(main.owner(), &[(k, 3)], UNLIMITED, false, 0)
      .map(|r| r.0),
    Ok(Acquire::Granted)
  );
  // Weights 3, 1, 1, 2, 1 queue in that order; each thread records its grant.
  let weights = [3u32, 1, 1, 2, 1];
  let (order_tx, order_rx) = mpsc::channel();
  let (release_tx, release_rx) = mpsc::channel::<()>();
  let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
  let mut threads = Vec::new();
  for (i, &w) in weights.iter().enumerate() {
    let s = s.clone();
    let order_tx = order_tx.clone();
    let release_rx = release_rx.clone();
    let (queued_tx, queued_rx) = mpsc::channel();
    threads.push(thread::spawn(move || {
      let waker = Arc::new(CountingWaker::default());
      let m = s.membership(waker.clone());
      let k = key(&s, m.owner(), "k");
      let t = queued_counted(&s, m.owner(), &[(k, w)]);
      queued_tx.send(()).expect("main listens");
      let token = loop {
        let mut got = Vec::new();
        s.take_counted_grants(m.owner(), &mut got);
        if let Some(g) = got.iter().find(|g| g.0 == t) {
          break g.1;
        }
        waker.wait();
      };
      order_tx.send((i, token)).expect("main listens");
      // Hold until main says so, one release per message.
      let _ = release_rx.lock().map(|rx| rx.recv());
      unlock_counted(&m, &[(k, w)]);
    }));
    queued_rx.recv().expect("thread queued");
  }
  drop(order_tx);
  unlock_counted(&main, &[(k, 3)]);
  let mut order = Vec::new();
  // Heads are granted strictly in queue order, as permits come back: the
  // heavy first waiter does not let the light ones pass, nor does 3 (2).
  for _ in 0..weights.len() {
    order.push(order_rx.recv().expect("a grant"));
    release_tx.send(()).expect("a holder listens");
  }
  // Threads granted together (1 and 2 after 0) report in any order; the
  // tokens, made under the space's mutex, give the grant order.
  order.sort_by_key(|o| o.1);
  let who: Vec<usize> = order.iter().map(|o| o.0).collect();
  assert_eq!(who, vec![0, 1, 2, 3, 4]);
  assert!(
    order.windows(2).all(|p| p[0].1 < p[1].1),
    "one token per grant: {order:?}"
  );
  for t in threads {
    t.join().expect("no panic");
  }
  assert!(!s.busy());
}

#[test]
fn a_granted_ticket_is_not_reused_before_its_owner_takes_it() {
  let s = fresh("tags");
  let w: Arc<dyn Waker> = Arc::new(CountingWaker::default());
  let a = s.join(w.clone());
  let b = s.join(w);
  let k = key(&s, a, "k");
  let j = key(&s, a, "j");
  key(&s, b, "k");
  assert_eq!(s.acquire(b, &[k], UNLIMITED, false), Ok(Acquire::Granted));
  let Ok(Acquire::Queued(first)) = s.acquire(a, &[k], UNLIMITED, false) else {
    panic!("waits")
  };
  // b's release grants a's waiter into a's outbox; the table frees its
  // ticket and hands it to a's next waiter, before a took the grant.
  let mut mine = Vec::new();
  s.release(b, &[k], &mut mine).expect("held");
  assert_eq!(s.acquire(b, &[j], UNLIMITED, false), Ok(Acquire::Granted));
  let Ok(Acquire::Queued(second)) = s.acquire(a, &[j], UNLIMITED, false) else {
    panic!("waits")
  };
  assert_ne!(first, second, "two waiters of a, two tickets");
  assert_eq!(
    s.cancel(a, first, &mut mine),
    (Cancel::NotWaiting, None),
    "the first was granted: cancelling it does not take the second out"
  );
  let mut got = Vec::new();
  s.take_grants(a, &mut got);
  assert_eq!(got, vec![first]);
  assert_eq!(s.cancel(a, second, &mut mine), (Cancel::Cancelled, Some(0)));
  s.release(a, &[k], &mut mine).expect("a holds k");
  s.release(b, &[j], &mut mine).expect("b holds j");
  assert!(!s.busy());
}

#[test]
fn counted_a_granted_ticket_is_not_reused_before_its_owner_takes_it() {
  let s = fresh_counted("tags", 2);
  let w: Arc<dyn Waker> = Arc::new(CountingWaker::default());
  let a = s.join(w.clone());
  let b = s.join(w);
  let k = key(&s, a, "k");
  key(&s, b, "k");
  assert_eq!(
    s.acquire_counted(b, &[(k, 2)], UNLIMITED, false, 0)
      .map(|r| r.0),
    Ok(Acquire::Granted)
  );
  let first = queued_counted(&s, a, &[(k, 2)]);
  let mut mine = Vec::new();
  s.release_counted(b, &[(k, 2)], 0, &mut mine).expect("held");
  let second = queued_counted(&s, a, &[(k, 1)]);
  assert_ne!(first, second, "two waiters of a, two tickets");
  assert_eq!(
    s.cancel_counted(a, first, 0, &mut mine),
    (Cancel::NotWaiting, None),
    "the first was granted: cancelling it does not take the second out"
  );
  let mut got = Vec::new();
  s.take_counted_grants(a, &mut got);
  assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![first]);
  assert_eq!(
    s.cancel_counted(a, second, 0, &mut mine),
    (Cancel::Cancelled, Some(0))
  );
  s.release_counted(a, &[(k, 2)], 0, &mut mine).expect("held");
  assert!(!s.busy());
}
