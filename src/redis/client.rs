//! Making a [`RedisLock`] and talking to Redis through it: the
//! constructors for each mode (one Redis, a Cluster, a Sentinel-managed
//! master), the lazy connection that also subscribes to this client's
//! grant channel, running a script or a raw command, and the KEYS of a
//! request. How a connection is configured (URLs, TLS, back-off) is
//! `conn.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, Script, Value};
use tokio::sync::{mpsc, OnceCell};

use super::acquire::route_push;
use super::conn::{self, ConnOptions, COMMAND_TIMEOUT};
use super::error::redact;
use super::keys::{self, counted_keys, lock_keys, slot, ticket_key};
use super::scripts::Scripts;
use super::{Inner, LostFn, RedisLock, RedisLockError, Result};

fn random_id() -> String {
  use std::collections::hash_map::RandomState;
  use std::hash::{BuildHasher, Hasher};
  let mut h = RandomState::new().build_hasher();
  h.write_u128(
    std::time::SystemTime::now()
      .duration_since(std::time::UNIX_EPOCH)
      .map(|d| d.as_nanos())
      .unwrap_or(0),
  );
  h.write_u32(std::process::id());
  format!("{:016x}", h.finish())
}

/// A single Redis (standalone, or a Sentinel-managed master by URL) or a
/// Redis Cluster.
pub(super) enum Client {
  Single(redis::Client),
  /// Seed nodes; the client is built on connect, with this client's push
  /// channel.
  Cluster(Vec<redis::ConnectionInfo>, ConnOptions),
  /// A Sentinel-managed master, found (and followed) through the sentinels.
  Sentinel(Arc<conn::SentinelTarget>),
  /// A single Redis over TLS whose certificate names another host.
  Named(Arc<conn::NamedTarget>),
}

#[derive(Clone)]
pub(super) enum Conn {
  Single(ConnectionManager),
  Cluster(ClusterConnection),
  Sentinel(conn::SentinelConn),
  Named(conn::NamedConn),
}

impl RedisLock {
  /// A client for the Redis Cluster reached through any of `urls` (seed
  /// nodes); connects lazily. Grants travel by PUBLISH, which a cluster
  /// delivers on every node, so one subscription per client still hears
  /// its own grants; names of one request must share a hash tag.
  pub fn new_cluster(urls: &[String], prefix: &str, on_lost: LostFn) -> Result<Self> {
    Self::new_cluster_with(urls, prefix, &ConnOptions::default(), on_lost)
  }

  /// [`RedisLock::new_cluster`] with TLS settings (see [`conn`]).
  pub fn new_cluster_with(
    urls: &[String],
    prefix: &str,
    opts: &ConnOptions,
    on_lost: LostFn,
  ) -> Result<Self> {
    let shown = urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(",");
    let infos = conn::cluster_nodes(urls, opts)?;
    if infos.is_empty() {
      return Err(RedisLockError::Url("no cluster node URL".into()));
    }
    // The per-slot counter names take a few ms to find: found now, off the
    // JS thread, while the client has not connected yet.
    std::thread::spawn(|| keys::ticket_key("", Some(0)));
    Ok(Self::with_client(
      shown,
      Client::Cluster(infos, opts.clone()),
      prefix,
      on_lost,
    ))
  }

  /// A client for the master the sentinels at `urls` name
  /// (`opts.sentinel`), following it across failovers (see [`conn`]);
  /// connects lazily.
  pub fn new_sentinel(
    urls: &[String],
    prefix: &str,
    opts: &ConnOptions,
    on_lost: LostFn,
  ) -> Result<Self> {
    let name = opts
      .sentinel
      .as_ref()
      .map(|s| s.name.as_str())
      .unwrap_or("");
    let shown = format!(
      "{} (Sentinel master {name})",
      urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(",")
    );
    let target = conn::SentinelTarget::new(urls, opts)?;
    Ok(Self::with_client(
      shown,
      Client::Sentinel(Arc::new(target)),
      prefix,
      on_lost,
    ))
  }

  /// Parses `url` (`redis://`, `rediss://`, `redis+unix://`, `unix://`);
  /// connects lazily, on the first command.
  pub fn new(url: &str, prefix: &str, on_lost: LostFn) -> Result<Self> {
    Self::new_with(url, prefix, &ConnOptions::default(), on_lost)
  }

  /// [`RedisLock::new`] with TLS settings (see [`conn`]).
  pub fn new_with(url: &str, prefix: &str, opts: &ConnOptions, on_lost: LostFn) -> Result<Self> {
    let shown = redact(url);
    if let Some(target) = conn::named_target(url, &shown, opts)? {
      return Ok(Self::with_client(
        shown,
        Client::Named(Arc::new(target)),
        prefix,
        on_lost,
      ));
    }
    let client = conn::single_client(url, &shown, opts)?;
    Ok(Self::with_client(
      shown,
      Client::Single(client),
      prefix,
      on_lost,
    ))
  }

  fn with_client(shown: String, client: Client, prefix: &str, on_lost: LostFn) -> Self {
    let client_id = random_id();
    let (submit, submissions) = mpsc::unbounded_channel();
    RedisLock {
      inner: Arc::new(Inner {
        url: shown,
        client,
        prefix: prefix.to_string(),
        channel: format!("{prefix}:c:{client_id}"),
        client_id,
        conn: OnceCell::new(),
        scripts: Scripts::new(),
        waiters: Mutex::new(HashMap::new()),
        leases: Mutex::new(HashMap::new()),
        aborted_early: Mutex::new(Default::default()),
        submit,
        submissions: Mutex::new(Some(submissions)),
        cleanups: AtomicUsize::new(0),
        seq: AtomicU32::new(0),
        closing: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        on_lost,
      }),
    }
  }

  pub fn is_cluster(&self) -> bool {
    matches!(self.inner.client, Client::Cluster(..))
  }

  pub fn url(&self) -> &str {
    &self.inner.url
  }

  /// A failed command's error: [`RedisLockError::Unreachable`] for an
  /// outage (see `conn::is_outage`), which acquisitions ride out.
  pub(super) fn failed(&self, e: redis::RedisError) -> RedisLockError {
    if conn::is_outage(&e) {
      return RedisLockError::Unreachable {
        url: self.inner.url.clone(),
        message: e.to_string(),
      };
    }
    self.error(e)
  }

  pub(super) fn error(&self, e: impl std::fmt::Display) -> RedisLockError {
    RedisLockError::Redis {
      url: self.inner.url.clone(),
      message: e.to_string(),
    }
  }

  /// Connects and subscribes to this client's grant channel (once; a failed
  /// attempt is retried by the next call).
  pub(super) async fn conn(&self) -> Result<Conn> {
    if self.inner.closed.load(Ordering::Acquire) {
      return Err(RedisLockError::Closed);
    }
    let inner = &self.inner;
    let conn = inner
      .conn
      .get_or_try_init(|| async {
        // Grants are routed in the connection's reader, straight to the
        // waiter: no task in between to wake.
        let weak = Arc::downgrade(&self.inner);
        let tx = move |push: PushInfo| {
          if let Some(inner) = weak.upgrade() {
            route_push(&inner, push);
          }
          Ok::<(), ()>(())
        };
        let connect = async {
          match &inner.client {
            Client::Single(client) => {
              let conn =
                conn::connect_manager(client.clone(), tx, &inner.channel, &inner.scripts.acquire)
                  .await?;
              Ok::<_, redis::RedisError>(Conn::Single(conn))
            }
            Client::Sentinel(target) => {
              let conn = conn::SentinelConn::connect(
                target.clone(),
                tx,
                &inner.channel,
                &inner.scripts.acquire,
              )
              .await?;
              Ok(Conn::Sentinel(conn))
            }
            Client::Named(target) => {
              let conn = conn::NamedConn::connect(
                target.clone(),
                tx,
                &inner.channel,
                &inner.scripts.acquire,
              )
              .await?;
              Ok(Conn::Named(conn))
            }
            Client::Cluster(nodes, opts) => {
              let client = conn::cluster_client(nodes, opts, tx)?;
              let mut conn = client.get_async_connection().await?;
              conn.subscribe(&inner.channel).await?;
              Ok(Conn::Cluster(conn))
            }
          }
        };
        let conn = tokio::time::timeout(COMMAND_TIMEOUT, connect)
          .await
          .map_err(|_| self.error("timed out connecting"))?
          .map_err(|e| self.error(conn::describe(&e)))?;
        Ok::<_, RedisLockError>(conn)
      })
      .await?;
    Ok(conn.clone())
  }

  /// The KEYS of a request: lease, meta, queue, waiters per name (see
  /// `keys.rs`), then the ticket counter. On a cluster every key must be in
  /// one slot, so the names must share a hash tag (checked here, before any
  /// command is sent) and the counter is that slot's; a single Redis has
  /// one counter for all names. `counted`: a counted lock's keys instead
  /// (holders, meta, queue, waiters: docs/semaphores.md), and the scripts
  /// follow the keys (`Scripts::pick`).
  pub(super) fn keys_for(
    &self,
    space: &str,
    names: &[String],
    counted: bool,
  ) -> Result<Vec<String>> {
    let prefix = self.inner.prefix.as_str();
    let mut keys = Vec::with_capacity(names.len() * 4 + 1);
    for name in names {
      if counted {
        keys.extend(counted_keys(prefix, space, name));
      } else {
        keys.extend(lock_keys(prefix, space, name));
      }
    }
    let counter = if self.is_cluster() {
      let want = keys.first().map(|k| slot(k));
      if let Some(want) = want {
        if let Some(i) = keys.iter().step_by(4).position(|k| slot(k) != want) {
          return Err(RedisLockError::CrossSlot(i));
        }
      }
      ticket_key(prefix, Some(want.unwrap_or(0)))
    } else {
      ticket_key(prefix, None)
    };
    keys.push(counter);
    Ok(keys)
  }

  pub(super) async fn run(&self, script: &Script, keys: &[String], args: &[&str]) -> Result<Value> {
    let mut conn = self.conn().await?;
    let script = self.inner.scripts.pick(script, keys);
    let mut invocation = script.prepare_invoke();
    for k in keys {
      invocation.key(k);
    }
    for a in args {
      invocation.arg(*a);
    }
    match &mut conn {
      Conn::Single(c) => invocation.invoke_async(c).await,
      Conn::Cluster(c) => invocation.invoke_async(c).await,
      Conn::Sentinel(c) => invocation.invoke_async(c).await,
      Conn::Named(c) => invocation.invoke_async(c).await,
    }
    .map_err(|e| self.failed(e))
  }

  /// A raw command, for the facades' own bookkeeping.
  pub async fn command(&self, args: &[String]) -> Result<Value> {
    let Some((name, rest)) = args.split_first() else {
      return Err(RedisLockError::Protocol("empty command".into()));
    };
    let mut conn = self.conn().await?;
    let mut cmd = redis::cmd(name);
    for a in rest {
      cmd.arg(a);
    }
    match &mut conn {
      Conn::Single(c) => cmd.query_async(c).await,
      Conn::Cluster(c) => cmd.query_async(c).await,
      Conn::Sentinel(c) => cmd.query_async(c).await,
      Conn::Named(c) => cmd.query_async(c).await,
    }
    .map_err(|e| self.failed(e))
  }
}
