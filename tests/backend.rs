//! The backend conformance suite: every guarantee stated in
//! `keylock::core::backend`, written once, generic over `B: Backend`, and
//! run against each implementation: `local::*` on a `LocalBackend`,
//! `redis::*` on a `RedisBackend` talking to a throwaway `redis-server`
//! that each test starts on a free port and kills when it ends.
//!
//! The Redis half fails, never skips, when `redis-server` cannot be started
//! (CI installs it; locally `apt-get install -y redis-server`).
//!
//! Tests wait for a queue to reach a length by polling (`until_waiting`):
//! the order in which waiters join is what each test is about, and on Redis
//! nothing but the server can say when a waiter has joined.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keylock::backend::RedisBackend;
use keylock::core::{Backend, LocalBackend, Outcome, Request};
use keylock::redis::RedisLock;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A test that takes longer than this has deadlocked.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// What a test needs beyond the trait: how many wait on a name, to know a
/// waiter has joined before the next one starts.
trait Probe: Backend + 'static {
  fn waiters(&self, name: &str) -> impl Future<Output = u32> + Send;
}

impl Probe for LocalBackend {
  async fn waiters(&self, name: &str) -> u32 {
    self.waiting_on(name)
  }
}

impl Probe for RedisBackend {
  async fn waiters(&self, name: &str) -> u32 {
    let found = self.lock().inspect("", name).await.expect("inspect");
    found.waiters as u32
  }
}

fn names(list: &[&str]) -> Vec<String> {
  list.iter().map(|s| s.to_string()).collect()
}

async fn ask<B: Probe>(b: &B, list: &[&str], request: Request) -> Outcome<B::Lease> {
  b.acquire(&names(list), request)
    .await
    .unwrap_or_else(|e| panic!("acquire {list:?}: {e}"))
}

async fn granted<B: Probe>(b: &B, list: &[&str], request: Request) -> B::Lease {
  match ask(b, list, request).await {
    Outcome::Granted(lease) => lease,
    other => panic!("{list:?} should be granted, got {other:?}"),
  }
}

async fn release<B: Probe>(b: &B, lease: B::Lease) {
  let released = b.release(lease).await.expect("release");
  assert!(released, "a lease released once is released");
}

async fn assert_busy<B: Probe>(b: &B, list: &[&str]) {
  match ask(b, list, Request::no_wait()).await {
    Outcome::Busy => {}
    other => panic!("{list:?} should be busy, got {other:?}"),
  }
}

/// `list` is free for the taking (and is given back at once).
async fn assert_free<B: Probe>(b: &B, list: &[&str]) {
  let lease = granted(b, list, Request::no_wait()).await;
  release(b, lease).await;
}

/// Waits until `name` has `n` waiters.
async fn until_waiting<B: Probe>(b: &B, name: &str, n: u32) {
  let start = Instant::now();
  loop {
    let have = b.waiters(name).await;
    if have == n {
      return;
    }
    assert!(
      start.elapsed() < Duration::from_secs(10),
      "{name} has {have} waiters, expected {n}"
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
  }
}

/// An acquisition running on its own task.
fn spawn_ask<B: Probe>(
  b: &Arc<B>,
  list: &[&str],
  request: Request,
) -> JoinHandle<Outcome<B::Lease>> {
  let (b, list) = (b.clone(), names(list));
  tokio::spawn(async move {
    b.acquire(&list, request)
      .await
      .unwrap_or_else(|e| panic!("acquire {list:?}: {e}"))
  })
}

async fn outcome<L>(task: JoinHandle<Outcome<L>>) -> Outcome<L> {
  task.await.expect("the waiter task did not panic")
}

async fn granted_to<L: std::fmt::Debug>(task: JoinHandle<Outcome<L>>) -> L {
  match outcome(task).await {
    Outcome::Granted(lease) => lease,
    other => panic!("the waiter should be granted, got {other:?}"),
  }
}

/// A waiter that, once granted, reports `label` and releases at once.
fn spawn_waiter<B: Probe>(
  b: &Arc<B>,
  list: &[&str],
  request: Request,
  label: usize,
  order: &mpsc::UnboundedSender<usize>,
) -> JoinHandle<()> {
  let (b, list, order) = (b.clone(), names(list), order.clone());
  tokio::spawn(async move {
    let list: Vec<&str> = list.iter().map(String::as_str).collect();
    let lease = granted(&*b, &list, request).await;
    order.send(label).expect("the test listens");
    release(&*b, lease).await;
  })
}

async fn grant_order(
  mut order: mpsc::UnboundedReceiver<usize>,
  tasks: Vec<JoinHandle<()>>,
) -> Vec<usize> {
  for task in tasks {
    task.await.expect("the waiter task did not panic");
  }
  let mut seen = Vec::new();
  while let Ok(label) = order.try_recv() {
    seen.push(label);
  }
  seen
}

// ---------------------------------------------------------------------------
// The guarantees, once.

async fn fifo_per_name<B: Probe>(b: Arc<B>) {
  let holder = granted(&*b, &["k"], Request::wait()).await;
  let (tx, rx) = mpsc::unbounded_channel();
  let mut tasks = Vec::new();
  for i in 0..3 {
    tasks.push(spawn_waiter(&b, &["k"], Request::wait(), i, &tx));
    // Waiter i has joined before waiter i + 1 starts: a known order.
    until_waiting(&*b, "k", i as u32 + 1).await;
  }
  release(&*b, holder).await;
  assert_eq!(grant_order(rx, tasks).await, vec![0, 1, 2]);
  assert_free(&*b, &["k"]).await;
}

async fn no_barging<B: Probe>(b: Arc<B>) {
  let holder = granted(&*b, &["k"], Request::wait()).await;
  let waiter = spawn_ask(&b, &["k"], Request::wait());
  until_waiting(&*b, "k", 1).await;
  assert_busy(&*b, &["k"]).await;
  release(&*b, holder).await;
  // The release handed the key to the waiter, before it even ran.
  assert_busy(&*b, &["k"]).await;
  let lease = granted_to(waiter).await;
  release(&*b, lease).await;
  assert_free(&*b, &["k"]).await;

  // A free name whose queue is headed by a multi-name waiter is not free to
  // a newcomer either.
  let b_holder = granted(&*b, &["b"], Request::wait()).await;
  let ab = spawn_ask(&b, &["a", "b"], Request::wait());
  until_waiting(&*b, "a", 1).await;
  assert_busy(&*b, &["a"]).await;
  release(&*b, b_holder).await;
  let lease = granted_to(ab).await;
  release(&*b, lease).await;
  assert_free(&*b, &["a", "b"]).await;
}

async fn skip_queue_goes_to_the_front<B: Probe>(b: Arc<B>) {
  let holder = granted(&*b, &["k"], Request::wait()).await;
  let (tx, rx) = mpsc::unbounded_channel();
  let skip = Request::wait().with_skip_queue();
  let mut tasks = Vec::new();
  for (label, request) in [Request::wait(), skip, Request::wait(), skip]
    .into_iter()
    .enumerate()
  {
    tasks.push(spawn_waiter(&b, &["k"], request, label, &tx));
    until_waiting(&*b, "k", label as u32 + 1).await;
  }
  release(&*b, holder).await;
  assert_eq!(
    grant_order(rx, tasks).await,
    vec![3, 1, 0, 2],
    "skippers first, the latest first (async-lock's order)"
  );
}

async fn multi_name_all_or_nothing<B: Probe>(b: Arc<B>) {
  let b_holder = granted(&*b, &["b"], Request::wait()).await;
  let ab = spawn_ask(&b, &["a", "b"], Request::wait());
  until_waiting(&*b, "a", 1).await;
  until_waiting(&*b, "b", 1).await;
  // Behind it on "a" alone: FIFO holds across single and multi-name waiters.
  let a = spawn_ask(&b, &["a"], Request::wait());
  until_waiting(&*b, "a", 2).await;
  release(&*b, b_holder).await;
  let both = granted_to(ab).await;
  assert_busy(&*b, &["a"]).await;
  assert_busy(&*b, &["b"]).await;
  release(&*b, both).await;
  let lease = granted_to(a).await;
  assert_free(&*b, &["b"]).await;
  release(&*b, lease).await;
  assert_free(&*b, &["a", "b"]).await;
}

async fn opposite_orders_do_not_deadlock<B: Probe>(b: Arc<B>) {
  // The textbook deadlock, step by step.
  let a_holder = granted(&*b, &["a"], Request::wait()).await;
  let b_holder = granted(&*b, &["b"], Request::wait()).await;
  let ab = spawn_ask(&b, &["a", "b"], Request::wait());
  until_waiting(&*b, "a", 1).await;
  let ba = spawn_ask(&b, &["b", "a"], Request::wait());
  until_waiting(&*b, "b", 2).await;
  release(&*b, a_holder).await;
  release(&*b, b_holder).await;
  let lease = granted_to(ab).await;
  release(&*b, lease).await;
  let lease = granted_to(ba).await;
  release(&*b, lease).await;

  // And under load: tasks taking overlapping sets in opposite orders, with
  // a check that no name is ever held twice.
  let in_use = Arc::new([
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
  ]);
  let tasks: Vec<_> = (0..4)
    .map(|i| {
      let (b, in_use) = (b.clone(), in_use.clone());
      tokio::spawn(async move {
        let list: &[&str] = if i % 2 == 0 {
          &["a", "b", "c"]
        } else {
          &["c", "a"]
        };
        for _ in 0..25 {
          let lease = granted(&*b, list, Request::wait()).await;
          for name in list {
            let slot = &in_use[(name.as_bytes()[0] - b'a') as usize];
            assert_eq!(slot.fetch_add(1, Ordering::SeqCst), 0, "{name} held twice");
          }
          tokio::task::yield_now().await;
          for name in list {
            in_use[(name.as_bytes()[0] - b'a') as usize].fetch_sub(1, Ordering::SeqCst);
          }
          release(&*b, lease).await;
        }
      })
    })
    .collect();
  for task in tasks {
    task.await.expect("no panic, no deadlock");
  }
  assert_free(&*b, &["a", "b", "c"]).await;
}

async fn max_pending_names_the_full_queue<B: Probe>(b: Arc<B>) {
  let holder = granted(&*b, &["k"], Request::wait()).await;
  let first = spawn_ask(&b, &["k"], Request::wait());
  until_waiting(&*b, "k", 1).await;
  let full = Request::wait().with_max_pending(1);
  match ask(&*b, &["j", "k"], full).await {
    Outcome::Rejected { index: 1 } => {}
    other => panic!("k (index 1) is full, got {other:?}"),
  }
  match ask(&*b, &["k"], full).await {
    Outcome::Rejected { index: 0 } => {}
    other => panic!("k (index 0) is full, got {other:?}"),
  }
  // Nothing changed: "j" was not taken, nobody joined "k".
  assert_free(&*b, &["j"]).await;
  assert_eq!(b.waiters("k").await, 1);
  // Below the limit, a request joins the queue.
  let second = spawn_ask(&b, &["k"], Request::wait().with_max_pending(2));
  until_waiting(&*b, "k", 2).await;
  release(&*b, holder).await;
  let lease = granted_to(first).await;
  release(&*b, lease).await;
  let lease = granted_to(second).await;
  release(&*b, lease).await;
  assert_free(&*b, &["j", "k"]).await;
}

async fn timeout_never_swallows_a_grant<B: Probe>(b: Arc<B>) {
  // A timed-out head leaves; the next waiter gets the key on release.
  let holder = granted(&*b, &["k"], Request::wait()).await;
  let timed = spawn_ask(
    &b,
    &["k"],
    Request::wait().with_timeout(Duration::from_millis(300)),
  );
  until_waiting(&*b, "k", 1).await;
  let next = spawn_ask(&b, &["k"], Request::wait());
  until_waiting(&*b, "k", 2).await;
  match outcome(timed).await {
    Outcome::TimedOut => {}
    other => panic!("the key is held: should time out, got {other:?}"),
  }
  release(&*b, holder).await;
  let lease = granted_to(next).await;
  release(&*b, lease).await;

  // A timed-out multi-name head was all that kept a free name from moving:
  // its leaving grants the next waiter at once, with no release.
  let b_holder = granted(&*b, &["b"], Request::wait()).await;
  let timed = spawn_ask(
    &b,
    &["a", "b"],
    Request::wait().with_timeout(Duration::from_millis(300)),
  );
  until_waiting(&*b, "a", 1).await;
  let next = spawn_ask(&b, &["a"], Request::wait());
  until_waiting(&*b, "a", 2).await;
  match outcome(timed).await {
    Outcome::TimedOut => {}
    other => panic!("b is held: should time out, got {other:?}"),
  }
  let lease = granted_to(next).await;
  release(&*b, lease).await;
  release(&*b, b_holder).await;

  // The grant races the timeout: whichever wins, the key passes on.
  let mut outcomes = [0, 0];
  for round in 0..20u64 {
    let holder = granted(&*b, &["r"], Request::wait()).await;
    let timeout = Duration::from_millis(30);
    let racer = spawn_ask(&b, &["r"], Request::wait().with_timeout(timeout));
    until_waiting(&*b, "r", 1).await;
    tokio::time::sleep(Duration::from_millis(20 + round % 15)).await;
    release(&*b, holder).await;
    match outcome(racer).await {
      Outcome::Granted(lease) => {
        outcomes[0] += 1;
        release(&*b, lease).await;
      }
      Outcome::TimedOut => outcomes[1] += 1,
      other => panic!("granted or timed out, got {other:?}"),
    }
    assert_free(&*b, &["r"]).await;
  }
  eprintln!(
    "race rounds: {} granted, {} timed out",
    outcomes[0], outcomes[1]
  );
}

async fn release_twice_is_false<B: Probe>(b: Arc<B>) {
  let lease = granted(&*b, &["k", "j"], Request::wait()).await;
  assert!(b.release(lease.clone()).await.expect("release"));
  let other = granted(&*b, &["k"], Request::wait()).await;
  assert!(
    !b.release(lease).await.expect("release"),
    "already released"
  );
  assert_busy(&*b, &["k"]).await;
  release(&*b, other).await;
  assert_free(&*b, &["k", "j"]).await;
}

// ---------------------------------------------------------------------------
// The backends.

fn local() -> Arc<LocalBackend> {
  Arc::new(LocalBackend::new())
}

/// A redis-server of this test's own, killed (by pid) when dropped.
struct RedisServer {
  child: Child,
  port: u16,
  _dir: TempDir,
}

impl RedisServer {
  fn start() -> Self {
    let port = {
      let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
      listener.local_addr().expect("local addr").port()
    };
    let dir = TempDir::new();
    let child = Command::new("redis-server")
      .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
      .args(["--save", "", "--appendonly", "no"])
      .arg("--dir")
      .arg(&dir.0)
      .stdout(Stdio::null())
      .stderr(Stdio::null())
      .spawn()
      .unwrap_or_else(|e| {
        panic!("cannot start redis-server ({e}): the Redis conformance tests need it on PATH")
      });
    let server = RedisServer {
      child,
      port,
      _dir: dir,
    };
    server.until_ping();
    server
  }

  fn until_ping(&self) {
    let start = Instant::now();
    loop {
      if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        if conn.write_all(b"PING\r\n").is_ok()
          && conn.read_exact(&mut reply).is_ok()
          && &reply == b"+PONG\r\n"
        {
          return;
        }
      }
      assert!(
        start.elapsed() < Duration::from_secs(10),
        "redis-server on port {} did not answer PING",
        self.port
      );
      std::thread::sleep(Duration::from_millis(10));
    }
  }

  fn backend(&self) -> Arc<RedisBackend> {
    let url = format!("redis://127.0.0.1:{}", self.port);
    let lock = RedisLock::new(&url, "conformance", Box::new(|_, _| {})).expect("a valid URL");
    Arc::new(RedisBackend::new(lock))
  }
}

impl Drop for RedisServer {
  fn drop(&mut self) {
    let _ = self.child.kill();
    let _ = self.child.wait();
  }
}

/// A directory of this test's own, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
  fn new() -> Self {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
      "keylock-backend-{}-{}",
      std::process::id(),
      N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&path).expect("create a temp dir");
    TempDir(path)
  }
}

impl Drop for TempDir {
  fn drop(&mut self) {
    let _ = std::fs::remove_dir_all(&self.0);
  }
}

async fn within_deadline(test: impl Future<Output = ()>) {
  tokio::time::timeout(TEST_DEADLINE, test)
    .await
    .expect("the test finished (no deadlock)");
}

macro_rules! conformance {
  ($($guarantee:ident),* $(,)?) => {
    mod local {
      $(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $guarantee() {
          super::within_deadline(super::$guarantee(super::local())).await;
        }
      )*
    }

    mod redis {
      $(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $guarantee() {
          let server = super::RedisServer::start();
          super::within_deadline(super::$guarantee(server.backend())).await;
          drop(server);
        }
      )*
    }
  };
}

conformance!(
  fifo_per_name,
  no_barging,
  skip_queue_goes_to_the_front,
  multi_name_all_or_nothing,
  opposite_orders_do_not_deadlock,
  max_pending_names_the_full_queue,
  timeout_never_swallows_a_grant,
  release_twice_is_false,
);
