//! Reading script replies: the typed accessors every caller uses, so a
//! reply this version does not understand becomes
//! [`RedisLockError::Protocol`] rather than a panic.

use std::time::Duration;

use redis::Value;

use super::{RedisLockError, Result};

pub(super) fn array(v: &Value) -> Result<Vec<Value>> {
  match v {
    Value::Array(items) => Ok(items.clone()),
    other => Err(RedisLockError::Protocol(format!("{other:?}"))),
  }
}

pub(super) fn int(v: &Value) -> Result<i64> {
  match v {
    Value::Int(i) => Ok(*i),
    Value::BulkString(b) => std::str::from_utf8(b)
      .ok()
      .and_then(|s| s.parse().ok())
      .ok_or_else(|| RedisLockError::Protocol(format!("{v:?}"))),
    other => Err(RedisLockError::Protocol(format!("{other:?}"))),
  }
}

pub(super) fn int_at(items: &[Value], i: usize) -> Result<i64> {
  items
    .get(i)
    .ok_or_else(|| RedisLockError::Protocol(format!("missing item {i}")))
    .and_then(int)
}

pub(super) fn value_string(v: &Value) -> Option<String> {
  match v {
    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
    Value::SimpleString(s) => Some(s.clone()),
    Value::VerbatimString { text, .. } => Some(text.clone()),
    _ => None,
  }
}

pub(super) fn string_at(items: &[Value], i: usize) -> Option<String> {
  items.get(i).and_then(value_string)
}

pub(super) fn tokens(items: &[Value]) -> Result<Vec<f64>> {
  items.iter().map(|v| int(v).map(|t| t as f64)).collect()
}

/// `{status, token per name, pttl}`: a grant found already made (by a
/// hand-off), with the ms its leases have left.
pub(super) fn tokens_and_pttl(items: &[Value], names: usize) -> Result<(Vec<f64>, Duration)> {
  let tokens = tokens(items.get(1..=names).unwrap_or(&[]))?;
  if tokens.len() != names {
    return Err(RedisLockError::Protocol(format!("{items:?}")));
  }
  let pttl = int_at(items, names + 1)?.max(0) as u64;
  Ok((tokens, Duration::from_millis(pttl)))
}
