//! The one error vocabulary of keyed-lock: a closed set of codes that every
//! reach reports, mapped to N-API once (`binding::to_napi_error`), where each
//! becomes the `code` of the JS error, with the message carrying no code.
//!
//! Errors are for misuse and for failures of the world (Redis unreachable);
//! expected outcomes (queue full, busy, timed out, cancelled) are values
//! ([`super::Outcome`]). The same mistake has the same code on every reach:
//! releasing a key that is not held is [`ErrorCode::NotHeld`] on the isolate
//! table and in a process space alike.

use std::fmt;

use super::KeyId;

/// Every code a native error may carry, as `err.code` in JS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
  /// Redis could not be reached, or answered with an error.
  Redis,
  /// The Redis URL could not be parsed.
  RedisUrl,
  /// A script replied with something this version does not understand.
  RedisProtocol,
  /// The client (or lock) was closed; nothing more will be granted.
  Closed,
  /// Redis Cluster: the keys of one request hash to different slots.
  CrossSlot,
  /// A lease handle this client does not know (already released).
  NoLease,
  /// A release named a key the caller does not hold.
  NotHeld,
  /// A request named no key.
  NoKeys,
  /// A request named the same key twice (it would wait for itself).
  DuplicateKey,
  /// A key id that was never interned, or is beyond the table.
  KeyOutOfRange,
  /// A thread that is not (or no longer) a member of a process space.
  NoOwner,
  /// A process space opened with another `permits` than it has (JS turns
  /// it into a TypeError naming `permits`).
  Permits,
  /// A broken invariant inside keyed-lock (a panic, a bad io layout, a call
  /// during thread shutdown): a bug to report, never the caller's fault.
  Internal,
}

impl ErrorCode {
  /// Every code, for tests and for the JS side's table.
  pub const ALL: [ErrorCode; 13] = [
    ErrorCode::Redis,
    ErrorCode::RedisUrl,
    ErrorCode::RedisProtocol,
    ErrorCode::Closed,
    ErrorCode::CrossSlot,
    ErrorCode::NoLease,
    ErrorCode::NotHeld,
    ErrorCode::NoKeys,
    ErrorCode::DuplicateKey,
    ErrorCode::KeyOutOfRange,
    ErrorCode::NoOwner,
    ErrorCode::Permits,
    ErrorCode::Internal,
  ];

  /// The stable string JS sees as `err.code`.
  pub const fn as_str(self) -> &'static str {
    match self {
      ErrorCode::Redis => "KEYED_LOCK_REDIS",
      ErrorCode::RedisUrl => "KEYED_LOCK_REDIS_URL",
      ErrorCode::RedisProtocol => "KEYED_LOCK_REDIS_PROTOCOL",
      ErrorCode::Closed => "KEYED_LOCK_CLOSED",
      ErrorCode::CrossSlot => "KEYED_LOCK_CROSSSLOT",
      ErrorCode::NoLease => "KEYED_LOCK_NO_LEASE",
      ErrorCode::NotHeld => "KEYED_LOCK_NOT_HELD",
      ErrorCode::NoKeys => "KEYED_LOCK_NO_KEYS",
      ErrorCode::DuplicateKey => "KEYED_LOCK_DUPLICATE_KEY",
      ErrorCode::KeyOutOfRange => "KEYED_LOCK_KEY_OUT_OF_RANGE",
      ErrorCode::NoOwner => "KEYED_LOCK_NO_OWNER",
      ErrorCode::Permits => "KEYED_LOCK_PERMITS",
      ErrorCode::Internal => "KEYED_LOCK_INTERNAL",
    }
  }
}

impl fmt::Display for ErrorCode {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(self.as_str())
  }
}

/// An error of the vocabulary: its `Display` is the message (no code in
/// it), [`Coded::code`] the code.
pub trait Coded: std::error::Error {
  fn code(&self) -> ErrorCode;

  /// The position, in the request's keys, of the key the error is about,
  /// when there is one (JS names `keys[i]` in its message).
  fn key_index(&self) -> Option<usize> {
    None
  }
}

/// Misuse of a [`super::Table`] by its owner. Never the result of a race.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreError {
  /// The key id is beyond [`super::Table::key_capacity`].
  KeyOutOfRange(KeyId),
  /// `release` named a key that is not held.
  NotHeld(KeyId),
  /// `acquire` was given no keys.
  NoKeys,
  /// `acquire` named the same key twice (it would wait for itself).
  DuplicateKey(KeyId),
  /// A weight of 0 or above a counted table's permits (the faces validate
  /// weights first, so this is the owner's bug: `KEYED_LOCK_INTERNAL`).
  BadWeight(KeyId),
}

impl fmt::Display for CoreError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      CoreError::KeyOutOfRange(k) => write!(f, "key id {k} is out of range"),
      CoreError::NotHeld(k) => write!(f, "key id {k} is not held"),
      CoreError::NoKeys => write!(f, "a request needs at least one key"),
      CoreError::DuplicateKey(k) => write!(f, "key id {k} is named twice in one request"),
      CoreError::BadWeight(k) => write!(
        f,
        "key id {k} is asked for 0 permits or more than the limit"
      ),
    }
  }
}

impl std::error::Error for CoreError {}

impl Coded for CoreError {
  fn code(&self) -> ErrorCode {
    match self {
      CoreError::KeyOutOfRange(_) => ErrorCode::KeyOutOfRange,
      CoreError::NotHeld(_) => ErrorCode::NotHeld,
      CoreError::NoKeys => ErrorCode::NoKeys,
      CoreError::DuplicateKey(_) => ErrorCode::DuplicateKey,
      CoreError::BadWeight(_) => ErrorCode::Internal,
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn codes_are_distinct_and_prefixed() {
    let mut seen = std::collections::HashSet::new();
    for code in ErrorCode::ALL {
      assert!(code.as_str().starts_with("KEYED_LOCK_"), "{code}");
      assert!(seen.insert(code.as_str()), "{code} twice");
    }
  }

  #[test]
  fn messages_carry_no_code() {
    for e in [
      CoreError::KeyOutOfRange(1),
      CoreError::NotHeld(1),
      CoreError::NoKeys,
      CoreError::DuplicateKey(1),
    ] {
      assert!(!e.to_string().contains("KEYED_LOCK_"), "{e}");
    }
  }
}
