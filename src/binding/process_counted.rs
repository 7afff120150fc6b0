//! N-API layer of counted process spaces (`scope: 'process'` with
//! `permits > 1`, see `crate::process::counted`): plain `#[napi]` calls with
//! arguments, as for the counted isolate tables (`semaphore.rs`), since one
//! release may grant more waiters than the io buffer's layouts hold, and a
//! grant carries a fencing token. Membership, wakes and the other calls are
//! the mutex space's (`process.rs`): `processOpen(name, wake, permits)`
//! joins, and the `wake` callback fetches grants with
//! `processCountedTakeGrants`.
//!
//! Tokens travel as JS numbers (`f64`): microseconds of uptime stay exact
//! up to 2^53. `now` is the caller's clock in µs (`lib/spaces/io.js`).

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::process::with_member;
use super::{Code, NativeError};
use crate::core::{Acquire, Cancel, Outcome, UNLIMITED};
use crate::process::{Grant, ProcessSpace};

/// `keys` and `weights` side by side; a length mismatch is the caller's bug.
fn request(keys: &[u32], weights: &[u32]) -> Result<Vec<(u32, u32)>, Code> {
  if keys.len() != weights.len() {
    return Err(NativeError::IoSlot(weights.len()).into());
  }
  Ok(keys.iter().copied().zip(weights.iter().copied()).collect())
}

fn clock(now: f64) -> u64 {
  if now.is_finite() && now > 0.0 {
    now as u64
  } else {
    0
  }
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

/// `[outcome, token (GRANTED) | ticket (QUEUED) | key index (REJECTED)]`;
/// the ticket is a tag, as in a mutex space (`crate::process`, *Tickets
/// are tags*).
#[napi(catch_unwind, js_name = "processCountedAcquire")]
pub fn process_counted_acquire(
  member: u32,
  max_pending: i32,
  skip_queue: bool,
  keys: Vec<u32>,
  weights: Vec<u32>,
  now: f64,
) -> Result<Vec<f64>, Code> {
  let r = request(&keys, &weights)?;
  let max_pending = if max_pending < 0 {
    UNLIMITED
  } else {
    max_pending as u32
  };
  with_member(member, |m| {
    let (acquired, token) =
      m.space
        .acquire_counted(m.owner, &r, max_pending, skip_queue, clock(now))?;
    Ok(match acquired {
      Acquire::Granted => vec![f64::from(Outcome::Granted.code()), token as f64],
      Acquire::Queued(tag) => vec![f64::from(Outcome::Queued.code()), f64::from(tag)],
      Acquire::Rejected { key_index } => {
        vec![f64::from(Outcome::Rejected.code()), key_index as f64]
      }
    })
  })
}

/// Gives back this thread's weights; returns `[tag, token] × g`, this
/// thread's grants (others' go to their outboxes).
#[napi(catch_unwind, js_name = "processCountedRelease")]
pub fn process_counted_release(
  member: u32,
  keys: Vec<u32>,
  weights: Vec<u32>,
  now: f64,
) -> Result<Vec<f64>, Code> {
  let r = request(&keys, &weights)?;
  with_member(member, |m| {
    let mut mine = Vec::new();
    m.space
      .release_counted(m.owner, &r, clock(now), &mut mine)?;
    let mut out = Vec::with_capacity(2 * mine.len());
    push_grants(&mut out, &mine);
    Ok(out)
  })
}

/// Gives back the weights on keys nobody waits for; returns `[key, weight]
/// × c`, the others (still held).
#[napi(catch_unwind, js_name = "processCountedReleaseIdle")]
pub fn process_counted_release_idle(
  member: u32,
  keys: Vec<u32>,
  weights: Vec<u32>,
) -> Result<Vec<u32>, Code> {
  let r = request(&keys, &weights)?;
  with_member(member, |m| {
    let mut contended = Vec::new();
    m.space.release_idle_counted(m.owner, &r, &mut contended)?;
    Ok(contended.into_iter().flat_map(|(k, w)| [k, w]).collect())
  })
}

/// Takes the waiter `tag` out: `[cancelled (1/0), blocking key index,
/// [tag, token] × g]`.
#[napi(catch_unwind, js_name = "processCountedCancel")]
pub fn process_counted_cancel(member: u32, tag: u32, now: f64) -> Result<Vec<f64>, Code> {
  with_member(member, |m| {
    let mut mine = Vec::new();
    let (cancel, blocking) = m.space.cancel_counted(m.owner, tag, clock(now), &mut mine);
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
