//! How the Redis reach connects: URLs, TLS, credentials, timeouts and
//! reconnect back-off, in one place for every mode (one Redis, a Redis
//! Cluster), so each mode needs only what it must and all of them fail and
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
//! - **Errors** that a user must act on are named: an authentication
//!   failure and a certificate failure say so (see [`describe`]); the URL in
//!   every message is redacted by the caller.

use std::sync::Once;
use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::{ConnectionAddr, IntoConnectionInfo, ProtocolVersion, RedisError};

use super::{RedisLockError, Result};

/// Commands and connection attempts give up after this long.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(5000);
/// Reconnect back-off: redis-rs's exponential delay, capped here, for a
/// single Redis (the connection manager) and a cluster alike.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(1000);
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
}

impl std::fmt::Debug for TlsOptions {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    // A private key must never reach a log.
    f.debug_struct("TlsOptions")
      .field("ca", &self.ca.is_some())
      .field("cert", &self.cert.is_some())
      .field("key", &self.key.as_ref().map(|_| "<redacted>"))
      .field("reject_unauthorized", &self.reject_unauthorized)
      .finish()
  }
}

/// Everything about a connection that a URL cannot say.
#[derive(Clone, Debug, Default)]
pub struct ConnOptions {
  /// TLS settings for `rediss://` URLs (ignored for plain ones: the URL's
  /// scheme decides whether TLS is used).
  pub tls: Option<TlsOptions>,
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

/// The seed nodes of a cluster, parsed up front so a bad URL fails at open.
pub fn cluster_nodes(urls: &[String], opts: &ConnOptions) -> Result<Vec<redis::ConnectionInfo>> {
  let infos = urls
    .iter()
    .map(|u| connection_info(u, &super::redact(u), opts.tls.as_ref()))
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
  fn half_a_client_certificate_is_refused() {
    let tls = TlsOptions {
      cert: Some(b"x".to_vec()),
      reject_unauthorized: true,
      ..Default::default()
    };
    let opts = ConnOptions { tls: Some(tls) };
    let err =
      single_client("rediss://127.0.0.1:6380", "rediss://127.0.0.1:6380", &opts).unwrap_err();
    assert!(err.to_string().contains("cert and key"), "{err}");
  }
}
