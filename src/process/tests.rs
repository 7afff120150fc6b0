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
