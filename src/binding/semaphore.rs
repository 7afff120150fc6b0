//! Counted isolate tables (`permits > 1`, see docs/semaphores.md): a
//! [`Semaphores`] per lock, on the thread that created it. Plain `#[napi]`
//! calls with arguments, not the io buffer: one release may grant more
//! waiters than it names keys, which the io layout cannot hold, and the
//! uncontended acquire and release never cross (JS decides them on the
//! words, as for the mutex).

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::{external_i32, with_thread, Code, NativeError, NativeResult, NativeThread};
use crate::core::{Acquire, Cancel, Outcome, Semaphores, UNLIMITED};

fn sem_mut(t: &mut NativeThread, table: u32) -> NativeResult<&mut Semaphores> {
  t.sem_tables
    .get_mut(table as usize)
    .and_then(Option::as_mut)
    .ok_or(NativeError::NoTable(table as i32))
}

/// `keys` and `weights` side by side; a length mismatch is the owner's bug.
fn request(keys: &[u32], weights: &[u32]) -> NativeResult<Vec<(u32, u32)>> {
  if keys.len() != weights.len() {
    return Err(NativeError::IoSlot(weights.len()));
  }
  Ok(keys.iter().copied().zip(weights.iter().copied()).collect())
}

#[napi(catch_unwind, js_name = "createSemTable")]
pub fn create_sem_table(permits: u32) -> Result<u32, Code> {
  Ok(with_thread(|t| {
    let table = Semaphores::new(permits);
    Ok(match t.sem_free.pop() {
      Some(id) => {
        t.sem_tables[id as usize] = Some(table);
        id
      }
      None => {
        t.sem_tables.push(Some(table));
        (t.sem_tables.len() - 1) as u32
      }
    })
  })?)
}

/// Frees a counted table once its JS lock is unreachable (nobody waits).
#[napi(catch_unwind, js_name = "dropSemTable")]
pub fn drop_sem_table(table: u32) -> Result<(), Code> {
  Ok(with_thread(|t| {
    if let Some(slot) = t.sem_tables.get_mut(table as usize) {
      if slot.take().is_some() {
        t.sem_free.push(table);
      }
    }
    Ok(())
  })?)
}

/// The key words of a counted table, valid below `min`: a count of permits
/// out, or -1 while waiters are queued. A fresh view: call again after growing.
#[napi(catch_unwind, js_name = "semWords")]
pub fn sem_words(env: &Env, table: u32, min: u32) -> Result<ArrayBuffer<'_>, Code> {
  let words = with_thread(|t| {
    let table = sem_mut(t, table)?;
    table.reserve_keys(min as usize);
    Ok(table.words().clone())
  })?;
  external_i32(env, words.as_mut_ptr(), words.len(), words)
}

/// `[outcome, ticket or key index]`.
#[napi(catch_unwind, js_name = "semAcquire")]
pub fn sem_acquire(
  table: u32,
  max_pending: i32,
  skip_queue: bool,
  keys: Vec<u32>,
  weights: Vec<u32>,
) -> Result<Vec<i32>, Code> {
  Ok(with_thread(|t| {
    let r = request(&keys, &weights)?;
    let max_pending = if max_pending < 0 {
      UNLIMITED
    } else {
      max_pending as u32
    };
    let acquired = sem_mut(t, table)?
      .acquire(&r, max_pending, skip_queue)
      .map_err(NativeError::Core)?;
    Ok(match acquired {
      Acquire::Granted => vec![Outcome::Granted.code(), 0],
      Acquire::Queued(ticket) => vec![Outcome::Queued.code(), ticket as i32],
      Acquire::Rejected { key_index } => vec![Outcome::Rejected.code(), key_index as i32],
    })
  })?)
}

/// Gives back the permits; returns the tickets granted, in grant order.
#[napi(catch_unwind, js_name = "semRelease")]
pub fn sem_release(table: u32, keys: Vec<u32>, weights: Vec<u32>) -> Result<Vec<u32>, Code> {
  Ok(with_thread(|t| {
    let r = request(&keys, &weights)?;
    let mut grants = Vec::new();
    sem_mut(t, table)?
      .release(&r, &mut grants)
      .map_err(NativeError::Core)?;
    Ok(grants)
  })?)
}

/// `[cancelled (1/0), blocking key index, ticket × g]`.
#[napi(catch_unwind, js_name = "semCancel")]
pub fn sem_cancel(table: u32, ticket: u32) -> Result<Vec<i32>, Code> {
  Ok(with_thread(|t| {
    let table = sem_mut(t, table)?;
    let blocking = table.blocking_index(ticket);
    let mut grants = Vec::new();
    let cancel = table.cancel(ticket, &mut grants);
    let mut out = vec![
      (cancel == Cancel::Cancelled) as i32,
      blocking.map_or(-1, |i| i as i32),
    ];
    out.extend(grants.into_iter().map(|g| g as i32));
    Ok(out)
  })?)
}

/// Live waiters on a counted key (for the `queues` view).
#[napi(catch_unwind, js_name = "semWaitingOn")]
pub fn sem_waiting_on(table: u32, key: u32) -> Result<u32, Code> {
  Ok(with_thread(|t| Ok(sem_mut(t, table)?.waiting_on(key)))?)
}
