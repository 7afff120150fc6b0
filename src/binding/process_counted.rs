//! N-API layer of counted process spaces (`scope: 'process'` with
//! `permits > 1`, see `crate::process::counted`): plain `#[napi]` calls with
//! arguments, as for the counted isolate tables (`semaphore.rs`), since one
//! release may grant more waiters than the io buffer's layouts hold, and a
//! grant carries a fencing token. Membership, wakes and the other calls are
//! the mutex space's (`process.rs`): `processOpen(name, wake, permits)`
//! joins, and the `wake` callback fetches grants with
//! `processCountedTakeGrants`.
//!
//! A request travels in a `Uint32Array` the caller reuses (`n` keys, then
//! their `n` weights), and an acquire answers with one number (see
//! [`process_counted_acquire`]): converting JS arrays element by element
//! cost several microseconds a call. Releases and cancels that grant answer
//! with arrays, and with null when they grant nothing (the common,
//! uncontended case).
//!
//! Tokens travel as JS numbers (`f64`, exact up to 2^53): microseconds of a
//! monotonic clock started by the first counted call of the process, made
//! strictly increasing per space (`crate::process::counted`).

use std::sync::OnceLock;
use std::time::Instant;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::process::with_member;
use super::{Code, NativeError};
use crate::core::{Acquire, Cancel, Outcome, UNLIMITED};
use crate::process::{Grant, ProcessSpace};

/// The request in `req`: `n` keys, then their `n` weights.
fn request(n: u32, req: &[u32]) -> Result<Vec<(u32, u32)>, Code> {
  let n = n as usize;
  let (Some(keys), Some(weights)) = (req.get(..n), req.get(n..2 * n)) else {
    return Err(NativeError::IoSlot(2 * n).into());
  };
  Ok(keys.iter().copied().zip(weights.iter().copied()).collect())
}

/// µs since the first counted call of the process: one clock for every
/// thread, so tokens made from it compare across threads.
fn clock() -> u64 {
  static START: OnceLock<Instant> = OnceLock::new();
  // Starts at 1: a token is never 0.
  START.get_or_init(Instant::now).elapsed().as_micros() as u64 + 1
}

fn push_grants(out: &mut Vec<f64>, grants: &[Grant]) {
  for &(tag, token) in grants {
    out.push(f64::from(tag));
    out.push(token as f64);
  }
}

/// The limit of the process space `name`, or null if nobody opened it (for
/// the message of a `permits` that disagrees).
#[napi(catch_unwind, js_name = "processPermits")]
pub fn process_permits(name: String) -> Option<u32> {
  ProcessSpace::permits_of(&name)
}

/// Outcome codes fit below this (`GRANTED`, `QUEUED`, `REJECTED` are 0-2).
const OUTCOME_SPAN: f64 = 4.0;

/// Answers `value * 4 + outcome`: the outcome (`GRANTED`, `QUEUED` or
/// `REJECTED`) and its value, the token (GRANTED), the ticket (QUEUED: a
/// tag, as in a mutex space, see `crate::process`, *Tickets are tags*) or
/// the full key's index (REJECTED). Exact: tokens stay far below 2^51.
#[napi(catch_unwind, js_name = "processCountedAcquire")]
pub fn process_counted_acquire(
  member: u32,
  max_pending: i32,
  skip_queue: bool,
  n: u32,
  req: &[u32],
) -> Result<f64, Code> {
  acquire(member, max_pending, skip_queue, &request(n, req)?)
}

fn acquire(member: u32, max_pending: i32, skip_queue: bool, r: &[(u32, u32)]) -> Result<f64, Code> {
  let max_pending = if max_pending < 0 {
    UNLIMITED
  } else {
    max_pending as u32
  };
  let (acquired, token) = with_member(member, |m| {
    m.space
      .acquire_counted(m.owner, r, max_pending, skip_queue, clock())
  })?;
  let (outcome, value) = match acquired {
    Acquire::Granted => (Outcome::Granted, token as f64),
    Acquire::Queued(tag) => (Outcome::Queued, f64::from(tag)),
    Acquire::Rejected { key_index } => (Outcome::Rejected, key_index as f64),
  };
  Ok(value * OUTCOME_SPAN + f64::from(outcome.code()))
}

/// [`process_counted_acquire`] for one key: the common request, without
/// the typed array.
#[napi(catch_unwind, js_name = "processCountedAcquireOne")]
pub fn process_counted_acquire_one(
  member: u32,
  max_pending: i32,
  skip_queue: bool,
  key: u32,
  weight: u32,
) -> Result<f64, Code> {
  acquire(member, max_pending, skip_queue, &[(key, weight)])
}

/// Gives back this thread's weights; returns `[tag, token] × g`, this
/// thread's grants (others' go to their outboxes), or null for none.
#[napi(catch_unwind, js_name = "processCountedRelease")]
pub fn process_counted_release(member: u32, n: u32, req: &[u32]) -> Result<Option<Vec<f64>>, Code> {
  let r = request(n, req)?;
  with_member(member, |m| {
    let mut mine = Vec::new();
    m.space.release_counted(m.owner, &r, clock(), &mut mine)?;
    if mine.is_empty() {
      return Ok(None);
    }
    let mut out = Vec::with_capacity(2 * mine.len());
    push_grants(&mut out, &mine);
    Ok(Some(out))
  })
}

/// Gives back the weights on keys nobody waits for; returns `[key, weight]
/// × c`, the others (still held), or null when there are none.
#[napi(catch_unwind, js_name = "processCountedReleaseIdle")]
pub fn process_counted_release_idle(
  member: u32,
  n: u32,
  req: &[u32],
) -> Result<Option<Vec<u32>>, Code> {
  let r = request(n, req)?;
  with_member(member, |m| {
    let mut contended = Vec::new();
    m.space.release_idle_counted(m.owner, &r, &mut contended)?;
    if contended.is_empty() {
      return Ok(None);
    }
    Ok(Some(
      contended.into_iter().flat_map(|(k, w)| [k, w]).collect(),
    ))
  })
}

/// [`process_counted_release_idle`] for one key: whether it has waiters
/// (then it is still held, for a later release).
#[napi(catch_unwind, js_name = "processCountedReleaseIdleOne")]
pub fn process_counted_release_idle_one(member: u32, key: u32, weight: u32) -> Result<bool, Code> {
  with_member(member, |m| {
    let mut contended = Vec::new();
    m.space
      .release_idle_counted(m.owner, &[(key, weight)], &mut contended)?;
    Ok(!contended.is_empty())
  })
}

/// Takes the waiter `tag` out: `[cancelled (1/0), blocking key index,
/// [tag, token] × g]`.
#[napi(catch_unwind, js_name = "processCountedCancel")]
pub fn process_counted_cancel(member: u32, tag: u32) -> Result<Vec<f64>, Code> {
  with_member(member, |m| {
    let mut mine = Vec::new();
    let (cancel, blocking) = m.space.cancel_counted(m.owner, tag, clock(), &mut mine);
    let mut out = vec![
      f64::from(u8::from(cancel == Cancel::Cancelled)),
      blocking.map_or(-1.0, |i| i as f64),
    ];
    push_grants(&mut out, &mine);
    Ok(out)
  })
}

/// Grants other threads made to this thread's waiters since the last call:
/// `[tag, token] × g`.
#[napi(catch_unwind, js_name = "processCountedTakeGrants")]
pub fn process_counted_take_grants(member: u32) -> Result<Vec<f64>, Code> {
  with_member(member, |m| {
    let mut grants = Vec::new();
    m.space.take_counted_grants(m.owner, &mut grants);
    let mut out = Vec::with_capacity(2 * grants.len());
    push_grants(&mut out, &grants);
    Ok(out)
  })
}
