//! The Redis reach's errors, each with its stable `err.code`
//! ([`Coded`]), and [`redact`], which keeps passwords out of every message
//! that names a URL.

use crate::core::{Coded, ErrorCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisLockError {
  /// The URL could not be parsed.
  Url(String),
  /// Redis could not be reached or answered with an error.
  Redis {
    url: String,
    message: String,
  },
  /// A command on a connection that had worked failed in a way that may
  /// pass (an outage: see `conn::is_outage`). Same code and text as
  /// [`RedisLockError::Redis`]; an acquisition retries it until its timeout.
  Unreachable {
    url: String,
    message: String,
  },
  /// A script replied with something this version does not understand.
  Protocol(String),
  Closed,
  NoLease(u32),
  /// Cluster: the names of one request hash to different slots (index of
  /// the first name that differs from the first name's slot).
  CrossSlot(usize),
}

impl std::fmt::Display for RedisLockError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      RedisLockError::Url(m) => f.write_str(m),
      RedisLockError::Redis { url, message } | RedisLockError::Unreachable { url, message } => {
        write!(f, "{url}: {message}")
      }
      RedisLockError::Protocol(m) => write!(f, "unexpected reply: {m}"),
      RedisLockError::Closed => write!(f, "the Redis lock client is closed"),
      RedisLockError::NoLease(id) => write!(f, "no lease {id} on this client"),
      RedisLockError::CrossSlot(i) => write!(
        f,
        "keys[{i}] hashes to another Redis Cluster slot than keys[0]: every key of one request must share a hash tag"
      ),
    }
  }
}

impl std::error::Error for RedisLockError {}

impl Coded for RedisLockError {
  fn code(&self) -> ErrorCode {
    match self {
      RedisLockError::Url(_) => ErrorCode::RedisUrl,
      RedisLockError::Redis { .. } | RedisLockError::Unreachable { .. } => ErrorCode::Redis,
      RedisLockError::Protocol(_) => ErrorCode::RedisProtocol,
      RedisLockError::Closed => ErrorCode::Closed,
      RedisLockError::NoLease(_) => ErrorCode::NoLease,
      RedisLockError::CrossSlot(_) => ErrorCode::CrossSlot,
    }
  }

  fn key_index(&self) -> Option<usize> {
    match self {
      RedisLockError::CrossSlot(i) => Some(*i),
      _ => None,
    }
  }
}

pub type Result<T> = std::result::Result<T, RedisLockError>;

/// A URL as messages show it, without its password, for every form keyed-lock
/// accepts or builds. It never parses (it must also hide the password of a
/// URL that does not parse), and hides too much rather than too little;
/// `lib/redis/url.js` `redactUrl` applies the same rules in JS:
/// - no `://`: not a URL at all (perhaps a password pasted in the wrong
///   place), shown as `(not a URL)`;
/// - `scheme://userinfo@host…`: the userinfo runs to the *last* `@` (a
///   password may hold an unencoded `@`; URL parsers read it that way too),
///   and only the user name before its first `:` is kept;
/// - the query (how `redis+unix://` and `unix://` URLs carry credentials,
///   e.g. `?pass=`): from the first parameter whose name contains `pass` on,
///   the rest is hidden (an unencoded `&` in a password would otherwise show
///   its tail).
pub(super) fn redact(url: &str) -> String {
  let Some(scheme_end) = url.find("://") else {
    return "(not a URL)".to_string();
  };
  let mut rest = &url[scheme_end + 3..];
  let mut out = format!("{}://", &url[..scheme_end]);
  // A unix socket URL has no authority: an `@` there is in the path.
  if !rest.starts_with('/') {
    if let Some(at) = rest.rfind('@') {
      match rest[..at].find(':') {
        Some(colon) => {
          out.push_str(&rest[..colon]);
          out.push_str(":***@");
        }
        None => out.push_str("***@"),
      }
      rest = &rest[at + 1..];
    }
  }
  let Some(q) = rest.find('?') else {
    out.push_str(rest);
    return out;
  };
  out.push_str(&rest[..=q]);
  for (i, param) in rest[q + 1..].split('&').enumerate() {
    if i > 0 {
      out.push('&');
    }
    let name = param.split('=').next().unwrap_or("");
    if name.to_ascii_lowercase().contains("pass") {
      out.push_str(name);
      out.push_str("=***");
      return out;
    }
    out.push_str(param);
  }
  out
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn passwords_never_reach_messages() {
    assert_eq!(redact("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
    assert_eq!(redact("redis://h:1"), "redis://h:1");
    assert_eq!(redact("redis://:secret@h"), "redis://:***@h");
    assert_eq!(redact("redis://secret@h"), "redis://***@h");
    // An unencoded `@` in the password: nothing of it shows.
    assert_eq!(redact("redis://u:se@cret@h:1"), "redis://u:***@h:1");
    assert_eq!(redact("redis://u:se?c#r/et@h"), "redis://u:***@h");
    assert_eq!(
      redact("redis+unix:///run/r.sock?db=1&pass=se&cret&user=u"),
      "redis+unix:///run/r.sock?db=1&pass=***"
    );
    assert_eq!(
      redact("unix:///a@b/r.sock?PASSWORD=x"),
      "unix:///a@b/r.sock?PASSWORD=***"
    );
    assert_eq!(redact("u:secret@h:1"), "(not a URL)");
  }
}
