//! How the Redis reach connects: URLs, TLS, credentials, timeouts and
//! reconnect back-off, in one place for every mode (one Redis, a
//! Sentinel-managed master, a Redis Cluster), so each mode needs only what it must and all of them fail and
//! retry the same way.
//!
//! - **TLS** (`rediss://`): rustls with the `ring` provider, so the addon
//!   links no system TLS library. The trusted roots are Mozilla's bundled
//!   set (what Node trusts by default) unless [`TlsOptions::ca`] replaces
//!   them; [`TlsOptions::cert`] + [`TlsOptions::key`] give a client
//!   certificate (mutual TLS); `reject_unauthorized: false` skips the
//!   server certificate check (redis-rs's `#insecure`).
//! - **Credentials** travel in the URL (`redis://user:pass@host`, or
//!   `?user=&pass=` for a unix socket): redis-rs sends `HELLO 3 AUTH` on
//!   every connection it opens from it, which here means the command
//!   connection (it also carries the RESP3 grant pushes: there is no second
//!   subscription connection) and, on a cluster, every node's connection.
//! - **Sentinel**: the master's address comes from the sentinels
//!   (`SENTINEL get-master-addr-by-name`, first sentinel that answers,
//!   checked with `ROLE`). [`SentinelConn`] moves to another master when a
//!   sentinel announces one (`+switch-master`, subscribed on every
//!   sentinel: the failover is followed as soon as it is made), or when a
//!   command fails as a dropped connection or `-READONLY` and the sentinels,
//!   asked again (at most one question in flight, at most every
//!   [`FAILOVER_POLL`]), name another one. It then connects there,
//!   subscribes, and wakes every waiter to re-run ACQUIRE (as a reconnect
//!   does). The failed command itself is not retried here: the callers' own
//!   retries do that (an acquisition riding out the outage, a waiter's
//!   heartbeat, a background RELEASE, a watchdog renewal).
//! - **Outages**: a command that fails in a way that may pass
//!   ([`is_outage`]) on a connection that had worked is retried by an
//!   acquisition with the reconnect back-off until its timeout (then the
//!   usual timeout), or, without a timeout, for up to [`OUTAGE_LIMIT`] (then
//!   the connection error); a client that never reached Redis fails at
//!   once. The same in every mode.
//! - **Errors** that a user must act on are named: an authentication
//!   failure and a certificate failure say so (see [`describe`]); the URL in
//!   every message is redacted by the caller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::{
  Cmd, ConnectionAddr, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError,
  RedisFuture, Script, Value,
};
use tokio::time::Instant;

use super::{RedisLockError, Result};

/// Commands and connection attempts give up after this long.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(5000);
/// Reconnect back-off, the same in every mode and for every retry keyed-lock
/// makes itself (an acquisition riding out an outage, a background CANCEL
/// or RELEASE): the first pause, doubled after each failure up to
/// [`MAX_RECONNECT_DELAY`]. redis-rs's connection manager and cluster client
/// are set to the same numbers.
pub const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(100);
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(1000);

/// The pause after `pause` in the reconnect back-off.
pub fn next_delay(pause: Duration) -> Duration {
  (pause * 2).min(MAX_RECONNECT_DELAY)
}

/// An acquisition without a timeout stops riding out an outage once Redis
/// has been unreachable for this long, and fails with the connection error:
/// long enough for a Sentinel failover with default settings
/// (`down-after-milliseconds` 30 s), short enough that a Redis gone for
/// good is reported rather than waited on for ever.
pub const OUTAGE_LIMIT: Duration = Duration::from_millis(60_000);
/// Reconnect attempts per failed command before the command fails (the
/// next command starts a new round).
const RECONNECT_RETRIES: usize = 2;

/// TLS settings, in the shape of Node's `tls.connect` options.
#[derive(Clone, Default)]
pub struct TlsOptions {
  /// PEM CA certificate(s) that replace the default trusted roots.
  pub ca: Option<Vec<u8>>,
  /// PEM client certificate chain, for mutual TLS (with `key`).
  pub cert: Option<Vec<u8>>,
  /// PEM private key of `cert`.
  pub key: Option<Vec<u8>>,
  /// `false` accepts any server certificate (testing only).
  pub reject_unauthorized: bool,
  /// The name the server certificate must be valid for (and the SNI),
  /// when it is not the host connected to (a single Redis only).
  pub servername: Option<String>,
}

impl std::fmt::Debug for TlsOptions {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    // A private key must never reach a log.
    f.debug_struct("TlsOptions")
      .field("ca", &self.ca.is_some())
      .field("cert", &self.cert.is_some())
      .field("key", &self.key.as_ref().map(|_| "<redacted>"))
      .field("reject_unauthorized", &self.reject_unauthorized)
      .field("servername", &self.servername)
      .finish()
  }
}

/// A Sentinel-managed master.
#[derive(Clone, Debug)]
pub struct SentinelOptions {
  /// The master's name in the sentinels' configuration (`mymaster`).
  pub name: String,
  /// How to reach the master once found: scheme (`redis`/`rediss`), user,
  /// password and db; its host and port are replaced by the sentinels'.
  pub master_url: String,
}

/// Everything about a connection that a URL cannot say.
#[derive(Clone, Debug, Default)]
pub struct ConnOptions {
  /// TLS settings for `rediss://` URLs (ignored for plain ones: the URL's
  /// scheme decides whether TLS is used).
  pub tls: Option<TlsOptions>,
  /// With this, the URLs are the sentinels'.
  pub sentinel: Option<SentinelOptions>,
}

/// rustls needs a process-wide crypto provider; only `ring` is compiled
/// in, but installing it explicitly keeps that true if a dependency ever
/// enables another one.
fn install_crypto() {
  static ONCE: Once = Once::new();
  ONCE.call_once(|| {
    // Err: some other code installed one first, which serves as well.
    let _ = rustls::crypto::ring::default_provider().install_default();
  });
}

/// `url` parsed, speaking RESP3 (grants arrive as pushes on the command
/// connection), with `reject_unauthorized: false` applied to a `rediss://`
/// address. `shown` is the redacted URL for messages.
pub fn connection_info(
  url: &str,
  shown: &str,
  tls: Option<&TlsOptions>,
) -> Result<redis::ConnectionInfo> {
  let info = url
    .into_connection_info()
    .map_err(|e| RedisLockError::Url(format!("{shown}: {e}")))?;
  let settings = info
    .redis_settings()
    .clone()
    .set_protocol(ProtocolVersion::RESP3);
  let mut info = info.set_redis_settings(settings);
  if let (ConnectionAddr::TcpTls { host, port, .. }, Some(tls)) = (info.addr(), tls) {
    if !tls.reject_unauthorized {
      let addr = ConnectionAddr::TcpTls {
        host: host.clone(),
        port: *port,
        insecure: true,
        tls_params: None,
      };
      info = info.set_addr(addr);
    }
  }
  if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
    install_crypto();
  }
  Ok(info)
}

/// The certificates redis-rs takes, when `tls` sets any.
fn certificates(tls: &TlsOptions, shown: &str) -> Result<Option<redis::TlsCertificates>> {
  let client_tls = match (&tls.cert, &tls.key) {
    (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
      client_cert: cert.clone(),
      client_key: key.clone(),
    }),
    (None, None) => None,
    _ => {
      return Err(RedisLockError::Url(format!(
        "{shown}: TLS options cert and key must be given together"
      )))
    }
  };
  if client_tls.is_none() && tls.ca.is_none() {
    return Ok(None);
  }
  Ok(Some(redis::TlsCertificates {
    client_tls,
    root_cert: tls.ca.clone(),
  }))
}

/// The client for one Redis at `url`.
pub fn single_client(url: &str, shown: &str, opts: &ConnOptions) -> Result<redis::Client> {
  let info = connection_info(url, shown, opts.tls.as_ref())?;
  let bad = |e: RedisError| RedisLockError::Url(format!("{shown}: {}", describe(&e)));
  let certs = match (&opts.tls, info.addr()) {
    (Some(tls), ConnectionAddr::TcpTls { .. }) => certificates(tls, shown)?,
    _ => None,
  };
  match certs {
    Some(certs) => redis::Client::build_with_tls(info, certs).map_err(bad),
    None => redis::Client::open(info).map_err(bad),
  }
}

/// A single Redis whose certificate is checked for `servername`, not for
/// the host connected to: the client's address carries the servername
/// (redis-rs verifies, and sends as SNI, the address's host name) and
/// [`Rename`] resolves that name to the real host.
pub struct NamedTarget {
  client: redis::Client,
  rename: Rename,
}

/// Resolves `name` as `host` (and any other name as itself).
#[derive(Clone)]
struct Rename {
  name: String,
  host: String,
}

impl redis::io::AsyncDNSResolver for Rename {
  fn resolve<'a, 'b: 'a>(
    &'a self,
    host: &'b str,
    port: u16,
  ) -> RedisFuture<'a, Box<dyn Iterator<Item = std::net::SocketAddr> + Send + 'a>> {
    Box::pin(async move {
      let host = if host == self.name {
        self.host.as_str()
      } else {
        host
      };
      let found = tokio::net::lookup_host((host, port)).await?;
      Ok(Box::new(found) as Box<dyn Iterator<Item = std::net::SocketAddr> + Send>)
    })
  }
}

/// The [`NamedTarget`] of `url` when `opts` give a `servername` other than
/// its host (a `rediss://` URL only), else `None`.
pub fn named_target(url: &str, shown: &str, opts: &ConnOptions) -> Result<Option<NamedTarget>> {
  let Some(tls) = &opts.tls else {
    return Ok(None);
  };
  let Some(name) = &tls.servername else {
    return Ok(None);
  };
  let info = connection_info(url, shown, Some(tls))?;
  let (host, port, insecure) = match info.addr() {
    ConnectionAddr::TcpTls {
      host,
      port,
      insecure,
      ..
    } if host != name => (host.clone(), *port, *insecure),
    _ => return Ok(None),
  };
  let info = info.set_addr(ConnectionAddr::TcpTls {
    host: name.clone(),
    port,
    insecure,
    tls_params: None,
  });
  let bad = |e: RedisError| RedisLockError::Url(format!("{shown}: {}", describe(&e)));
  let client = match certificates(tls, shown)? {
    Some(certs) => redis::Client::build_with_tls(info, certs).map_err(bad)?,
    None => redis::Client::open(info).map_err(bad)?,
  };
  Ok(Some(NamedTarget {
    client,
    rename: Rename {
      name: name.clone(),
      host,
    },
  }))
}

struct NamedShared {
  target: Arc<NamedTarget>,
  push: PushFn,
  channel: String,
  script: Script,
  /// The connection and its generation (a failed one is dropped only if
  /// no other command replaced it already).
  current: tokio::sync::Mutex<(u64, Option<redis::aio::MultiplexedConnection>)>,
}

/// A connection to a [`NamedTarget`]. redis-rs's connection manager takes
/// no resolver, so this does its part: one multiplexed connection, made
/// with the same timeouts and back-off, subscribed and with the script
/// loaded; replaced on the next command after one fails as a connection
/// failure (its waiters are told by redis-rs's disconnection push, as with
/// the manager).
#[derive(Clone)]
pub struct NamedConn {
  shared: Arc<NamedShared>,
}

impl NamedConn {
  pub async fn connect<F>(
    target: Arc<NamedTarget>,
    push: F,
    channel: &str,
    script: &Script,
  ) -> std::result::Result<Self, RedisError>
  where
    F: Fn(PushInfo) -> std::result::Result<(), ()> + Send + Sync + 'static,
  {
    let push: PushFn = Arc::new(move |info| {
      let _ = push(info);
    });
    let conn = NamedConn {
      shared: Arc::new(NamedShared {
        target,
        push,
        channel: channel.to_string(),
        script: script.clone(),
        current: tokio::sync::Mutex::new((0, None)),
      }),
    };
    conn.current().await?;
    Ok(conn)
  }

  /// The connection now, made (with the reconnect back-off) if there is
  /// none.
  async fn current(
    &self,
  ) -> std::result::Result<(u64, redis::aio::MultiplexedConnection), RedisError> {
    let mut current = self.shared.current.lock().await;
    if let (generation, Some(conn)) = &*current {
      return Ok((*generation, conn.clone()));
    }
    let shared = &self.shared;
    let mut pause = MIN_RECONNECT_DELAY;
    let mut attempt = 0;
    let conn = loop {
      match self.open().await {
        Ok(conn) => break conn,
        Err(e) if attempt >= RECONNECT_RETRIES || !is_outage(&e) => return Err(e),
        Err(_) => {
          attempt += 1;
          tokio::time::sleep(pause).await;
          pause = next_delay(pause);
        }
      }
    };
    let reconnected = current.0 > 0;
    *current = (current.0 + 1, Some(conn.clone()));
    let generation = current.0;
    drop(current);
    if reconnected {
      // A grant published while there was no connection went unheard.
      (shared.push)(PushInfo {
        kind: PushKind::Disconnection,
        data: vec![],
      });
    }
    Ok((generation, conn))
  }

  async fn open(&self) -> std::result::Result<redis::aio::MultiplexedConnection, RedisError> {
    let shared = &self.shared;
    let push = shared.push.clone();
    let sender = move |info: PushInfo| {
      push(info);
      Ok::<(), ()>(())
    };
    let config = redis::AsyncConnectionConfig::new()
      .set_push_sender(sender)
      .set_connection_timeout(Some(COMMAND_TIMEOUT))
      .set_response_timeout(Some(COMMAND_TIMEOUT))
      .set_dns_resolver(shared.target.rename.clone());
    let mut conn = shared
      .target
      .client
      .get_multiplexed_async_connection_with_config(&config)
      .await?;
    conn.subscribe(&shared.channel).await?;
    shared.script.load_async(&mut conn).await?;
    Ok(conn)
  }

  /// After `e` on the connection of `generation`: forget that connection
  /// if it failed as a connection, so the next command makes a new one.
  async fn failed(&self, generation: u64, e: &RedisError) {
    if !may_be_failover(e) {
      return;
    }
    let mut current = self.shared.current.lock().await;
    if current.0 == generation {
      current.1 = None;
    }
  }
}

impl redis::aio::ConnectionLike for NamedConn {
  fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
    Box::pin(async move {
      let (generation, mut conn) = self.current().await?;
      let reply = conn.req_packed_command(cmd).await;
      if let Err(e) = &reply {
        self.failed(generation, e).await;
      }
      reply
    })
  }

  fn req_packed_commands<'a>(
    &'a mut self,
    pipeline: &'a redis::Pipeline,
    offset: usize,
    count: usize,
  ) -> RedisFuture<'a, Vec<Value>> {
    Box::pin(async move {
      let (generation, mut conn) = self.current().await?;
      let reply = conn.req_packed_commands(pipeline, offset, count).await;
      if let Err(e) = &reply {
        self.failed(generation, e).await;
      }
      reply
    })
  }

  fn get_db(&self) -> i64 {
    self
      .shared
      .target
      .client
      .get_connection_info()
      .redis_settings()
      .db()
  }
}

/// The seed nodes of a cluster, parsed up front so a bad URL fails at open.
pub fn cluster_nodes(urls: &[String], opts: &ConnOptions) -> Result<Vec<redis::ConnectionInfo>> {
  let infos = urls
    .iter()
    .map(|u| connection_info(u, &super::error::redact(u), opts.tls.as_ref()))
    .collect::<Result<Vec<_>>>()?;
  if infos.is_empty() {
    return Err(RedisLockError::Url("no cluster node URL".into()));
  }
  Ok(infos)
}

/// The connection manager's settings: timeouts, back-off, and where the
/// RESP3 pushes go.
pub fn manager_config(push: impl redis::aio::AsyncPushSender) -> ConnectionManagerConfig {
  ConnectionManagerConfig::new()
    .set_push_sender(push)
    .set_automatic_resubscription()
    .set_connection_timeout(Some(COMMAND_TIMEOUT))
    .set_response_timeout(Some(COMMAND_TIMEOUT))
    .set_number_of_retries(RECONNECT_RETRIES)
    .set_min_delay(MIN_RECONNECT_DELAY)
    .set_max_delay(MAX_RECONNECT_DELAY)
}

/// A cluster client over `nodes`, with the same timeouts and back-off as a
/// single Redis, TLS settings applied to every node, and the credentials
/// of the first seed URL (redis-rs uses them for every node it discovers).
pub fn cluster_client(
  nodes: &[redis::ConnectionInfo],
  opts: &ConnOptions,
  push: impl redis::aio::AsyncPushSender,
) -> std::result::Result<ClusterClient, RedisError> {
  let mut builder: ClusterClientBuilder = ClusterClient::builder(nodes.to_vec())
    .use_protocol(ProtocolVersion::RESP3)
    .connection_timeout(COMMAND_TIMEOUT)
    .response_timeout(COMMAND_TIMEOUT)
    .retries(RECONNECT_RETRIES as u32)
    .min_retry_wait(MIN_RECONNECT_DELAY.as_millis() as u64)
    .retry_wait_formula(MIN_RECONNECT_DELAY.as_millis() as u64, 2)
    .max_retry_wait(MAX_RECONNECT_DELAY.as_millis() as u64)
    .push_sender(push);
  let tls_nodes = nodes
    .iter()
    .any(|n| matches!(n.addr(), ConnectionAddr::TcpTls { .. }));
  if let (Some(tls), true) = (&opts.tls, tls_nodes) {
    if let Some(certs) = certificates(tls, "cluster").map_err(|e| {
      RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "bad TLS options",
        e.to_string(),
      ))
    })? {
      builder = builder.certs(certs);
    }
    if !tls.reject_unauthorized {
      builder = builder.tls(redis::TlsMode::Insecure);
    }
  }
  builder.build()
}

/// Connects a connection manager to `client`: pushes to `push`, subscribed
/// to `channel`, `script` loaded up front (a first EVALSHA answered
/// NOSCRIPT is retried from its own task, which could put it behind a
/// later request).
pub async fn connect_manager(
  client: redis::Client,
  push: impl redis::aio::AsyncPushSender,
  channel: &str,
  script: &Script,
) -> std::result::Result<ConnectionManager, RedisError> {
  let mut conn = ConnectionManager::new_with_config(client, manager_config(push)).await?;
  conn.subscribe(channel).await?;
  script.load_async(&mut conn).await?;
  Ok(conn)
}

/// How often, at most, a failing Sentinel-managed connection asks the
/// sentinels whether the master moved.
pub const FAILOVER_POLL: Duration = Duration::from_millis(200);

/// The sentinels and how to reach the master they name.
pub struct SentinelTarget {
  sentinels: Vec<redis::Client>,
  name: String,
  master: redis::ConnectionInfo,
  opts: ConnOptions,
}

impl SentinelTarget {
  /// `urls` are the sentinels'; `opts.sentinel` must be set.
  pub fn new(urls: &[String], opts: &ConnOptions) -> Result<Self> {
    let Some(sentinel) = &opts.sentinel else {
      return Err(RedisLockError::Url("no Sentinel master name".into()));
    };
    if urls.is_empty() {
      return Err(RedisLockError::Url("no sentinel URL".into()));
    }
    let sentinels = urls
      .iter()
      .map(|u| {
        let shown = super::error::redact(u);
        let info = u
          .as_str()
          .into_connection_info()
          .map_err(|e| RedisLockError::Url(format!("{shown}: {e}")))?;
        if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
          install_crypto();
        }
        let certs = match (&opts.tls, info.addr()) {
          (Some(tls), ConnectionAddr::TcpTls { .. }) => certificates(tls, &shown)?,
          _ => None,
        };
        let bad = |e: RedisError| RedisLockError::Url(format!("{shown}: {e}"));
        match certs {
          Some(certs) => redis::Client::build_with_tls(info, certs).map_err(bad),
          None => redis::Client::open(info).map_err(bad),
        }
      })
      .collect::<Result<Vec<_>>>()?;
    let shown = super::error::redact(&sentinel.master_url);
    let master = connection_info(&sentinel.master_url, &shown, opts.tls.as_ref())?;
    Ok(SentinelTarget {
      sentinels,
      name: sentinel.name.clone(),
      master,
      opts: opts.clone(),
    })
  }

  /// The master's address, from the first sentinel that knows it.
  async fn master_addr(&self) -> std::result::Result<(String, u16), RedisError> {
    let mut last = None;
    for sentinel in &self.sentinels {
      let ask = async {
        let mut conn = sentinel.get_multiplexed_async_connection().await?;
        redis::cmd("SENTINEL")
          .arg("get-master-addr-by-name")
          .arg(&self.name)
          .query_async::<Option<(String, u16)>>(&mut conn)
          .await
      };
      match tokio::time::timeout(COMMAND_TIMEOUT, ask).await {
        Ok(Ok(Some(addr))) => return Ok(addr),
        Ok(Ok(None)) => {
          last = Some(RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "the sentinels know no master by that name",
            self.name.clone(),
          )))
        }
        Ok(Err(e)) => last = Some(e),
        Err(_) => {
          last = Some(RedisError::from((
            redis::ErrorKind::Io,
            "a sentinel did not answer in time",
          )))
        }
      }
    }
    Err(
      last.unwrap_or_else(|| {
        RedisError::from((redis::ErrorKind::InvalidClientConfig, "no sentinel"))
      }),
    )
  }

  /// A client for the master at `host:port`, with the master URL's
  /// credentials, db and TLS settings.
  fn master_client(&self, host: &str, port: u16) -> std::result::Result<redis::Client, RedisError> {
    let addr = match self.master.addr() {
      ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
        host: host.to_string(),
        port,
        insecure: *insecure,
        tls_params: None,
      },
      _ => ConnectionAddr::Tcp(host.to_string(), port),
    };
    let info = self.master.clone().set_addr(addr);
    let certs = match (&self.opts.tls, info.addr()) {
      (Some(tls), ConnectionAddr::TcpTls { .. }) => certificates(tls, "master").map_err(|e| {
        RedisError::from((
          redis::ErrorKind::InvalidClientConfig,
          "bad TLS options",
          e.to_string(),
        ))
      })?,
      _ => None,
    };
    match certs {
      Some(certs) => redis::Client::build_with_tls(info, certs),
      None => redis::Client::open(info),
    }
  }
}

type PushFn = Arc<dyn Fn(PushInfo) + Send + Sync>;

struct Current {
  addr: (String, u16),
  conn: ConnectionManager,
}

struct SentinelShared {
  target: Arc<SentinelTarget>,
  push: PushFn,
  channel: String,
  script: Script,
  current: Mutex<Current>,
  checking: AtomicBool,
  last_check: Mutex<Option<Instant>>,
  /// The master a `+switch-master` announcement named, not yet moved to.
  announced: Mutex<Option<(String, u16)>>,
  /// The `+switch-master` subscriptions, one per sentinel: they end with
  /// this connection (close() closes everything it opened).
  watchers: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for SentinelShared {
  fn drop(&mut self) {
    for watcher in self.watchers.get_mut().drain(..) {
      watcher.abort();
    }
  }
}

/// A connection to whichever master the sentinels name, replaced when
/// they name another one (see the module docs).
#[derive(Clone)]
pub struct SentinelConn {
  shared: Arc<SentinelShared>,
}

impl SentinelConn {
  /// Finds the master and connects to it (subscribed, script loaded).
  pub async fn connect<F>(
    target: Arc<SentinelTarget>,
    push: F,
    channel: &str,
    script: &Script,
  ) -> std::result::Result<Self, RedisError>
  where
    F: Fn(PushInfo) -> std::result::Result<(), ()> + Send + Sync + 'static,
  {
    let push: PushFn = Arc::new(move |info| {
      let _ = push(info);
    });
    let (addr, conn) = connect_master(&target, &push, channel, script).await?;
    let sentinel = SentinelConn {
      shared: Arc::new(SentinelShared {
        target,
        push,
        channel: channel.to_string(),
        script: script.clone(),
        current: Mutex::new(Current { addr, conn }),
        checking: AtomicBool::new(false),
        last_check: Mutex::new(None),
        announced: Mutex::new(None),
        watchers: Mutex::new(Vec::new()),
      }),
    };
    let watchers = sentinel
      .shared
      .target
      .sentinels
      .iter()
      .map(|client| {
        let watch = watch_switches(
          Arc::downgrade(&sentinel.shared),
          client.clone(),
          sentinel.shared.target.name.clone(),
        );
        tokio::spawn(watch).abort_handle()
      })
      .collect();
    *sentinel.shared.watchers.lock() = watchers;
    Ok(sentinel)
  }

  /// The master's address this connection talks to now.
  pub fn master(&self) -> (String, u16) {
    self.shared.current.lock().addr.clone()
  }

  /// After a failure that may be a failover: asks the sentinels (in the
  /// background, one question at a time, at most every FAILOVER_POLL) and
  /// moves to the master they name if it is another one.
  fn check_soon(&self) {
    check(self.shared.clone());
  }

  fn conn(&self) -> ConnectionManager {
    self.shared.current.lock().conn.clone()
  }
}

/// Moves `shared` to the master the sentinels name now (or the one a
/// `+switch-master` announced, at once), in the background, one move at a
/// time; an announcement that comes during a move is acted on after it.
fn check(shared: Arc<SentinelShared>) {
  if shared.checking.swap(true, Ordering::AcqRel) {
    return;
  }
  tokio::spawn(async move {
    loop {
      let announced = shared.announced.lock().take();
      if announced.is_none() {
        let wait = shared
          .last_check
          .lock()
          .map(|t| (t + FAILOVER_POLL).saturating_duration_since(Instant::now()))
          .unwrap_or_default();
        tokio::time::sleep(wait).await;
      }
      *shared.last_check.lock() = Some(Instant::now());
      let now = shared.current.lock().addr.clone();
      let found = match announced {
        Some(addr) => Ok(addr),
        None => shared.target.master_addr().await,
      };
      match found {
        Ok(addr) if addr != now => {
          let moved = connect_master_at(
            &shared.target,
            addr,
            &shared.push,
            &shared.channel,
            &shared.script,
          )
          .await;
          if let Ok((addr, conn)) = moved {
            *shared.current.lock() = Current { addr, conn };
            // Every waiter re-runs ACQUIRE on the new master (re-enqueues),
            // as after a reconnect.
            (shared.push)(PushInfo {
              kind: PushKind::Disconnection,
              data: vec![],
            });
          }
        }
        _ => {}
      }
      shared.checking.store(false, Ordering::Release);
      if shared.announced.lock().is_none() || shared.checking.swap(true, Ordering::AcqRel) {
        return;
      }
    }
  });
}

/// Listens to one sentinel's `+switch-master` announcements (reconnecting
/// with the reconnect back-off), so a failover is followed as soon as it is
/// made rather than at the next failed command. Ends with the connection.
async fn watch_switches(
  shared: std::sync::Weak<SentinelShared>,
  sentinel: redis::Client,
  name: String,
) {
  let info = sentinel.get_connection_info().clone();
  let settings = info
    .redis_settings()
    .clone()
    .set_protocol(ProtocolVersion::RESP3);
  let Ok(sentinel) = redis::Client::open(info.set_redis_settings(settings)) else {
    return;
  };
  let mut pause = MIN_RECONNECT_DELAY;
  loop {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new()
      .set_push_sender(tx)
      .set_connection_timeout(Some(COMMAND_TIMEOUT))
      .set_response_timeout(Some(COMMAND_TIMEOUT));
    let subscribed = async {
      let mut conn = sentinel
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
      conn.subscribe("+switch-master").await?;
      Ok::<_, RedisError>(conn)
    }
    .await;
    if let Ok(_conn) = subscribed {
      pause = MIN_RECONNECT_DELAY;
      while let Some(push) = rx.recv().await {
        match push.kind {
          PushKind::Message => {
            let Some(addr) = switched_to(&push, &name) else {
              continue;
            };
            let Some(shared) = shared.upgrade() else {
              return;
            };
            *shared.announced.lock() = Some(addr);
            check(shared);
          }
          PushKind::Disconnection => break,
          _ => {}
        }
      }
    }
    if shared.strong_count() == 0 {
      return;
    }
    tokio::time::sleep(pause).await;
    pause = next_delay(pause);
  }
}

/// The new master's address in a `+switch-master` message about `name`:
/// `<name> <old ip> <old port> <new ip> <new port>`.
fn switched_to(push: &PushInfo, name: &str) -> Option<(String, u16)> {
  let payload = match push.data.get(1)? {
    Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?,
    Value::SimpleString(text) => text.as_str(),
    _ => return None,
  };
  let parts: Vec<&str> = payload.split(' ').collect();
  match parts.as_slice() {
    [master, _, _, host, port] if *master == name => Some((host.to_string(), port.parse().ok()?)),
    _ => None,
  }
}

/// A failure after which the master may be another one.
fn may_be_failover(e: &RedisError) -> bool {
  e.is_io_error()
    || e.is_connection_dropped()
    || e.is_connection_refusal()
    || e.is_timeout()
    || e.code() == Some("READONLY")
}

/// A failure of a command on a connection that had worked which may pass
/// on its own: the connection dropped or was refused, a command timed out,
/// or the server is between roles (a failover: `READONLY`, `MASTERDOWN`,
/// `LOADING`; a cluster re-sharding, failing over or a node rejoining:
/// `TRYAGAIN`, `CLUSTERDOWN`, and a `MOVED`/`ASK` that redis-rs's own
/// redirects did not settle). An authentication or certificate failure is
/// not one: waiting does not fix a wrong password.
pub fn is_outage(e: &RedisError) -> bool {
  let between_roles = matches!(
    e.code(),
    Some("READONLY" | "MASTERDOWN" | "LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "MOVED" | "ASK")
  );
  let lost = may_be_failover(e) || matches!(e.kind(), redis::ErrorKind::ClusterConnectionNotFound);
  (between_roles || lost) && describe(e) == e.to_string()
}

/// Asks the sentinels for the master, connects, and checks with ROLE that
/// it is one (a sentinel may name a master that was just demoted).
async fn connect_master(
  target: &SentinelTarget,
  push: &PushFn,
  channel: &str,
  script: &Script,
) -> std::result::Result<((String, u16), ConnectionManager), RedisError> {
  let addr = target.master_addr().await?;
  connect_master_at(target, addr, push, channel, script).await
}

/// Connects to the master at `(host, port)`, and checks with ROLE that it
/// is one.
async fn connect_master_at(
  target: &SentinelTarget,
  (host, port): (String, u16),
  push: &PushFn,
  channel: &str,
  script: &Script,
) -> std::result::Result<((String, u16), ConnectionManager), RedisError> {
  let client = target.master_client(&host, port)?;
  let push = push.clone();
  let sender = move |info: PushInfo| {
    push(info);
    Ok::<(), ()>(())
  };
  let mut conn = connect_manager(client, sender, channel, script).await?;
  let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
  let is_master = matches!(role.first(), Some(Value::BulkString(b)) if b.as_slice() == b"master")
    || matches!(role.first(), Some(Value::SimpleString(s)) if s == "master");
  if !is_master {
    return Err(RedisError::from((
      redis::ErrorKind::Io,
      "the address the sentinels gave is not a master (yet)",
    )));
  }
  Ok(((host, port), conn))
}

impl redis::aio::ConnectionLike for SentinelConn {
  fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
    Box::pin(async move {
      let mut conn = self.conn();
      let reply = conn.req_packed_command(cmd).await;
      match &reply {
        Err(e) if may_be_failover(e) => self.check_soon(),
        _ => {}
      }
      reply
    })
  }

  fn req_packed_commands<'a>(
    &'a mut self,
    pipeline: &'a redis::Pipeline,
    offset: usize,
    count: usize,
  ) -> RedisFuture<'a, Vec<Value>> {
    Box::pin(async move {
      let mut conn = self.conn();
      let reply = conn.req_packed_commands(pipeline, offset, count).await;
      match &reply {
        Err(e) if may_be_failover(e) => self.check_soon(),
        _ => {}
      }
      reply
    })
  }

  fn get_db(&self) -> i64 {
    self.shared.current.lock().conn.get_db()
  }
}

/// A connection error as a user can act on it: an authentication failure
/// and a TLS certificate failure are named as such (the raw text follows,
/// for the details); anything else is redis-rs's own text. Never contains
/// a password: redis-rs errors do not carry the URL, and the caller
/// prefixes the redacted one.
pub fn describe(e: &RedisError) -> String {
  let text = e.to_string();
  let lower = text.to_ascii_lowercase();
  let auth = matches!(e.kind(), redis::ErrorKind::AuthenticationFailed)
    || e
      .code()
      .is_some_and(|c| c == "WRONGPASS" || c == "NOAUTH" || c == "NOPERM")
    || lower.contains("wrongpass")
    || lower.contains("noauth");
  if auth {
    return format!("authentication failed (check the user name and password): {text}");
  }
  if lower.contains("certificate")
    || lower.contains("unknownissuer")
    || lower.contains("bad certificate")
  {
    return format!("TLS certificate verification failed: {text}");
  }
  if lower.contains("handshake") || lower.contains("alert") || lower.contains("tls") {
    return format!("TLS handshake failed: {text}");
  }
  text
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn tls_options_never_print_a_key() {
    let tls = TlsOptions {
      key: Some(b"-----BEGIN PRIVATE KEY-----secret".to_vec()),
      ..Default::default()
    };
    assert!(!format!("{tls:?}").contains("secret"));
  }

  #[test]
  fn rediss_urls_parse_and_insecure_is_applied() {
    let tls = TlsOptions::default();
    let info = connection_info("rediss://127.0.0.1:6380", "x", Some(&tls)).expect("parses");
    assert!(matches!(
      info.addr(),
      ConnectionAddr::TcpTls { insecure: true, .. }
    ));
    let strict = TlsOptions {
      reject_unauthorized: true,
      ..Default::default()
    };
    let info = connection_info("rediss://127.0.0.1:6380", "x", Some(&strict)).expect("parses");
    assert!(matches!(
      info.addr(),
      ConnectionAddr::TcpTls {
        insecure: false,
        ..
      }
    ));
  }

  #[test]
  fn authentication_and_certificate_failures_are_named() {
    let auth = RedisError::from((
      redis::ErrorKind::AuthenticationFailed,
      "Password authentication failed",
    ));
    assert!(describe(&auth).starts_with("authentication failed"));
    let cert = RedisError::from(std::io::Error::new(
      std::io::ErrorKind::InvalidData,
      "invalid peer certificate: UnknownIssuer",
    ));
    assert!(describe(&cert).starts_with("TLS certificate verification failed"));
    let other = RedisError::from((redis::ErrorKind::Io, "Connection refused"));
    assert!(!describe(&other).contains("TLS"));
  }

  #[test]
  fn half_a_client_certificate_is_refused() {
    let tls = TlsOptions {
      cert: Some(b"x".to_vec()),
      reject_unauthorized: true,
      ..Default::default()
    };
    let opts = ConnOptions {
      tls: Some(tls),
      sentinel: None,
    };
    let err =
      single_client("rediss://127.0.0.1:6380", "rediss://127.0.0.1:6380", &opts).unwrap_err();
    assert!(err.to_string().contains("cert and key"), "{err}");
  }
}
