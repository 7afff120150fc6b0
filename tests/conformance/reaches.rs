//! The three reaches as `tests/conformance.rs` drives them: the core table
//! (as `binding` drives it for the isolate reach), a process space with a
//! member per client (as each JS thread is one), and a `RedisLock` per
//! client against a redis-server of the test's own.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyed_lock::core::{Acquire, Cancel, KeyId, Table, TicketId};
use keyed_lock::process::{Membership, ProcessKey, ProcessSpace, Waker};
use keyed_lock::redis::{AcquireOptions, Acquired, Mode, RedisLock, RedisLockError};
use tokio::task::JoinHandle;

use super::{max_pending, strings, Asked, Held, How, Reach};

// ---------------------------------------------------------------------------
// The isolate reach: one core table, driven as `binding` drives it.

pub struct IsolateReach {
  table: Table,
  ids: HashMap<String, KeyId>,
  /// Waiting tickets: their keys and client.
  tickets: HashMap<TicketId, (usize, Vec<String>)>,
  granted: HashSet<TicketId>,
}

#[derive(Debug)]
pub struct Ticket(TicketId);

/// An in-process acquire's outcome as the suite sees it; a queued ticket is
/// remembered with its client and keys until its grant is taken.
fn asked(
  outcome: Acquire,
  client: usize,
  keys: &[&str],
  tickets: &mut HashMap<TicketId, (usize, Vec<String>)>,
) -> Asked<Ticket> {
  match outcome {
    Acquire::Granted => Asked::Granted(Held {
      client,
      keys: strings(keys),
      lease: 0,
      tokens: Vec::new(),
    }),
    Acquire::Queued(t) => {
      tickets.insert(t, (client, strings(keys)));
      Asked::Queued(Ticket(t))
    }
    Acquire::Rejected { key_index } => Asked::Rejected(key_index),
  }
}

impl IsolateReach {
  pub fn new() -> Self {
    IsolateReach {
      table: Table::new(),
      ids: HashMap::new(),
      tickets: HashMap::new(),
      granted: HashSet::new(),
    }
  }

  fn id(&mut self, key: &str) -> KeyId {
    let next = self.ids.len() as KeyId;
    *self.ids.entry(key.to_string()).or_insert(next)
  }

  fn take(&mut self, t: TicketId) -> Option<Held> {
    if !self.granted.remove(&t) {
      return None;
    }
    let (client, keys) = self
      .tickets
      .remove(&t)
      .expect("a granted ticket was issued");
    Some(Held {
      client,
      keys,
      lease: 0,
      tokens: Vec::new(),
    })
  }
}

impl Reach for IsolateReach {
  type Waiter = Ticket;
  const NAME: &'static str = "isolate";

  async fn acquire(&mut self, client: usize, keys: &[&str], how: How) -> Asked<Ticket> {
    let ids: Vec<KeyId> = keys.iter().map(|k| self.id(k)).collect();
    let outcome = self
      .table
      .acquire(&ids, max_pending(how), how.skip_queue)
      .expect("valid keys");
    asked(outcome, client, keys, &mut self.tickets)
  }

  async fn grant(&mut self, w: &mut Ticket) -> Option<Held> {
    self.take(w.0)
  }

  async fn granted(&mut self, w: Ticket) -> Held {
    self
      .take(w.0)
      .expect("granted by the release that freed it")
  }

  async fn release(&mut self, held: Held) {
    let ids: Vec<KeyId> = held.keys.iter().map(|k| self.id(k)).collect();
    let mut grants = Vec::new();
    self.table.release(&ids, &mut grants).expect("held");
    self.granted.extend(grants);
  }

  async fn cancel(&mut self, w: Ticket) -> Option<Held> {
    let mut grants = Vec::new();
    match self.table.cancel(w.0, &mut grants) {
      Cancel::Cancelled => {
        self.tickets.remove(&w.0);
        self.granted.extend(grants);
        None
      }
      Cancel::NotWaiting => Some(self.take(w.0).expect("not waiting: granted")),
    }
  }

  async fn is_busy(&mut self, key: &str) -> bool {
    let id = self.id(key);
    self.table.is_busy(id)
  }

  async fn joined(&mut self, key: &str, n: u32) {
    let id = self.id(key);
    assert_eq!(self.table.waiting_on(id), n, "isolate: waiters on {key}");
  }

  async fn close(&mut self, _client: usize) -> Option<()> {
    None
  }
}

// ---------------------------------------------------------------------------
// The process reach: one space, a member per client (as each JS thread is).

pub struct ProcessReach {
  space: Arc<ProcessSpace>,
  members: HashMap<usize, Membership>,
  tickets: HashMap<TicketId, (usize, Vec<String>)>,
  granted: HashSet<TicketId>,
}

struct NoWake;

impl Waker for NoWake {
  fn wake(&self) {}
}

impl ProcessReach {
  pub fn new() -> Self {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!("conformance-{}", N.fetch_add(1, Ordering::Relaxed));
    ProcessReach {
      space: ProcessSpace::open(&name, 1).expect("a fresh mutex space"),
      members: HashMap::new(),
      tickets: HashMap::new(),
      granted: HashSet::new(),
    }
  }

  fn owner(&mut self, client: usize) -> u32 {
    let space = &self.space;
    self
      .members
      .entry(client)
      .or_insert_with(|| space.membership(Arc::new(NoWake)))
      .owner()
  }

  fn ids(&mut self, client: usize, keys: &[String]) -> Vec<KeyId> {
    let owner = self.owner(client);
    keys
      .iter()
      .map(|k| {
        self
          .space
          .intern(owner, ProcessKey::Name(k.clone()))
          .expect("a member")
      })
      .collect()
  }

  /// Collects what other members' releases put in every outbox.
  fn collect(&mut self) {
    for m in self.members.values() {
      let mut out = Vec::new();
      self.space.take_grants(m.owner(), &mut out);
      self.granted.extend(out);
    }
  }

  fn take(&mut self, t: TicketId) -> Option<Held> {
    self.collect();
    if !self.granted.remove(&t) {
      return None;
    }
    let (client, keys) = self
      .tickets
      .remove(&t)
      .expect("a granted ticket was issued");
    Some(Held {
      client,
      keys,
      lease: 0,
      tokens: Vec::new(),
    })
  }
}

impl Reach for ProcessReach {
  type Waiter = Ticket;
  const NAME: &'static str = "process";

  async fn acquire(&mut self, client: usize, keys: &[&str], how: How) -> Asked<Ticket> {
    let ids = self.ids(client, &strings(keys));
    let owner = self.owner(client);
    let outcome = self
      .space
      .acquire(owner, &ids, max_pending(how), how.skip_queue)
      .expect("valid keys");
    asked(outcome, client, keys, &mut self.tickets)
  }

  async fn grant(&mut self, w: &mut Ticket) -> Option<Held> {
    self.take(w.0)
  }

  async fn granted(&mut self, w: Ticket) -> Held {
    self
      .take(w.0)
      .expect("granted by the release that freed it")
  }

  async fn release(&mut self, held: Held) {
    let ids = self.ids(held.client, &held.keys);
    let owner = self.owner(held.client);
    let mut mine = Vec::new();
    self.space.release(owner, &ids, &mut mine).expect("held");
    self.granted.extend(mine);
  }

  async fn cancel(&mut self, w: Ticket) -> Option<Held> {
    let client = self.tickets.get(&w.0).expect("issued").0;
    let owner = self.owner(client);
    let mut mine = Vec::new();
    match self.space.cancel(owner, w.0, &mut mine) {
      (Cancel::Cancelled, _) => {
        self.tickets.remove(&w.0);
        self.granted.extend(mine);
        None
      }
      (Cancel::NotWaiting, _) => Some(self.take(w.0).expect("not waiting: granted")),
    }
  }

  async fn is_busy(&mut self, key: &str) -> bool {
    self.space.is_busy(&ProcessKey::Name(key.to_string()))
  }

  async fn joined(&mut self, key: &str, n: u32) {
    let waiting = self
      .space
      .snapshot()
      .into_iter()
      .find(|(_, k, _)| *k == ProcessKey::Name(key.to_string()))
      .map_or(0, |(_, _, w)| w);
    assert_eq!(waiting, n, "process: waiters on {key}");
  }

  async fn close(&mut self, client: usize) -> Option<()> {
    // What the env cleanup hook does when a worker ends.
    drop(self.members.remove(&client));
    self.tickets.retain(|_, (c, _)| *c != client);
    Some(())
  }
}

// ---------------------------------------------------------------------------
// The Redis reach: a `RedisLock` per client, against a server of our own.

pub struct RedisReach {
  url: String,
  pub locks: HashMap<usize, RedisLock>,
  next_request: u32,
}

#[derive(Debug)]
pub struct Pending {
  client: usize,
  request: u32,
  keys: Vec<String>,
  task: JoinHandle<Result<Acquired, RedisLockError>>,
}

impl RedisReach {
  pub fn new(server: &RedisServer) -> Self {
    RedisReach {
      url: format!("redis://127.0.0.1:{}", server.port),
      locks: HashMap::new(),
      next_request: 0,
    }
  }

  fn lock(&mut self, client: usize) -> RedisLock {
    let url = &self.url;
    self
      .locks
      .entry(client)
      .or_insert_with(|| RedisLock::new(url, "conformance", Box::new(|_, _| {})).expect("a URL"))
      .clone()
  }

  async fn waiters(&mut self, key: &str) -> u32 {
    let lock = self.lock(usize::MAX);
    lock.inspect("", key).await.expect("inspect").waiters as u32
  }

  fn held(p: &Pending, acquired: Acquired) -> Option<Held> {
    match acquired {
      Acquired::Granted { lease, tokens } => Some(Held {
        client: p.client,
        keys: p.keys.clone(),
        lease,
        tokens,
      }),
      Acquired::TimedOut => None,
      other => panic!("redis: {p:?} ended {other:?}"),
    }
  }
}

impl Reach for RedisReach {
  type Waiter = Pending;
  const NAME: &'static str = "redis";

  async fn acquire(&mut self, client: usize, keys: &[&str], how: How) -> Asked<Pending> {
    let before = self.waiters(keys[0]).await;
    let lock = self.lock(client);
    self.next_request += 1;
    let request = self.next_request;
    let opts = AcquireOptions {
      ttl: Duration::from_secs(10),
      timeout: None,
      mode: if how.wait { Mode::Wait } else { Mode::Try },
      max_pending: how.max_pending,
      skip_queue: how.skip_queue,
      owner: format!("client {client}"),
      watchdog: false,
      space: String::new(),
      counted: None,
    };
    let task = tokio::spawn(lock.start_acquire(request, strings(keys), opts));
    let mut pending = Pending {
      client,
      request,
      keys: strings(keys),
      task,
    };
    // Decided at once (granted, refused, busy), or queued: then it shows
    // among the waiters.
    let start = Instant::now();
    loop {
      if pending.task.is_finished() {
        return match (&mut pending.task)
          .await
          .expect("no panic")
          .expect("no error")
        {
          Acquired::Rejected { index } => Asked::Rejected(index),
          Acquired::Busy { .. } => Asked::Busy,
          granted => Asked::Granted(Self::held(&pending, granted).expect("granted")),
        };
      }
      if self.waiters(keys[0]).await > before {
        return Asked::Queued(pending);
      }
      assert!(
        start.elapsed() < Duration::from_secs(10),
        "redis: {keys:?} undecided"
      );
      tokio::time::sleep(Duration::from_millis(2)).await;
    }
  }

  async fn grant(&mut self, w: &mut Pending) -> Option<Held> {
    if !w.task.is_finished() {
      return None;
    }
    let acquired = (&mut w.task).await.expect("no panic").expect("no error");
    Some(Self::held(w, acquired).expect("granted"))
  }

  async fn granted(&mut self, mut w: Pending) -> Held {
    let acquired = tokio::time::timeout(Duration::from_secs(10), &mut w.task)
      .await
      .expect("granted within 10 s")
      .expect("no panic")
      .expect("no error");
    Self::held(&w, acquired).expect("granted")
  }

  async fn release(&mut self, held: Held) {
    let lock = self.lock(held.client);
    assert!(lock.release(held.lease).await.expect("release"), "released");
  }

  async fn cancel(&mut self, mut w: Pending) -> Option<Held> {
    self.lock(w.client).abort(w.request);
    let acquired = (&mut w.task).await.expect("no panic").expect("no error");
    Self::held(&w, acquired)
  }

  async fn is_busy(&mut self, key: &str) -> bool {
    self
      .lock(usize::MAX)
      .is_busy("", key)
      .await
      .expect("is_busy")
  }

  async fn joined(&mut self, key: &str, n: u32) {
    let start = Instant::now();
    loop {
      let have = self.waiters(key).await;
      if have == n {
        return;
      }
      assert!(
        start.elapsed() < Duration::from_secs(10),
        "redis: {key} has {have} waiters, expected {n}"
      );
      tokio::time::sleep(Duration::from_millis(2)).await;
    }
  }

  async fn close(&mut self, client: usize) -> Option<()> {
    let lock = self.locks.remove(&client).expect("a client that acted");
    lock.close().await;
    assert_eq!(lock.held(), 0);
    Some(())
  }
}

/// A redis-server of this test's own, stopped (by pid) when dropped.
pub struct RedisServer {
  child: Child,
  port: u16,
  dir: std::path::PathBuf,
}

impl RedisServer {
  pub fn start() -> Self {
    let port = {
      let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
      listener.local_addr().expect("local addr").port()
    };
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
      "keyed-lock-conformance-{}-{}",
      std::process::id(),
      N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    let child = Command::new("redis-server")
      .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
      .args(["--save", "", "--appendonly", "no"])
      .arg("--dir")
      .arg(&dir)
      .stdout(Stdio::null())
      .stderr(Stdio::null())
      .spawn()
      .unwrap_or_else(|e| {
        panic!("cannot start redis-server ({e}): the Redis half needs it on PATH")
      });
    let server = RedisServer { child, port, dir };
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
}

impl Drop for RedisServer {
  fn drop(&mut self) {
    let _ = self.child.kill();
    let _ = self.child.wait();
    let _ = std::fs::remove_dir_all(&self.dir);
  }
}
