//! Counted isolate tables (`permits > 1`, see docs/semaphores.md): a
//! [`Semaphores`] per lock, on the thread that created it. The uncontended
//! acquire and release never cross (JS decides them on the words, as for
//! the mutex).
//!
//! # The semaphore io buffer
//!
//! The contended calls (`semAcquireIo`, `semReleaseIo`, `semCancelIo`,
//! `semTakeGrants`) are raw N-API callbacks without arguments, registered
//! with the mutex's hot paths in `hot.rs`: a request and its answer travel through an
//! `Int32Array` of this thread's own ([`sem_io_buffer`]), not the mutex's
//! io buffer, whose layout has no room for weights and whose answers never
//! outnumber their keys. Plain `#[napi]` calls with array arguments cost
//! several times as much (each element is a property get or set). All
//! `i32`:
//!
//! | call | io in | io out |
//! | --- | --- | --- |
//! | `semAcquireIo()` | `table, max_pending (-1 = none), skip_queue, n, (key, weight) × n` | `outcome, ticket or key index` |
//! | `semReleaseIo()` | `table, n, (key, weight) × n` | `g, ticket × g` |
//! | `semCancelIo()` | `table, ticket` | `cancelled (1/0), blocking key index, g, ticket × g` |
//! | `semTakeGrants()` | – | `g, ticket × g` |
//!
//! One release may grant more waiters than the buffer holds (a writer's
//! release before a long run of readers): then only `g` is written, the
//! grants are kept, and JS grows the buffer (`semIoBuffer(1 + g)`) and
//! fetches them with `semTakeGrants()`.

use std::cell::RefCell;
use std::sync::atomic::AtomicI32;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::{
  external_i32, io_range, load, store, with_thread, write_acquired, Code, NativeError,
  NativeResult, NativeThread, IO_MIN,
};
use crate::core::{Cancel, KeyId, Semaphores, TicketId, UNLIMITED};

fn sem_mut(t: &mut NativeThread, table: u32) -> NativeResult<&mut Semaphores> {
  t.sem_tables
    .get_mut(table as usize)
    .and_then(Option::as_mut)
    .ok_or(NativeError::NoTable(table as i32))
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

/// Live waiters on a counted key (for the `queues` view).
#[napi(catch_unwind, js_name = "semWaitingOn")]
pub fn sem_waiting_on(table: u32, key: u32) -> Result<u32, Code> {
  Ok(with_thread(|t| Ok(sem_mut(t, table)?.waiting_on(key)))?)
}

/// What the counted hot calls keep per thread, beside [`NativeThread`]
/// (whose tables they use).
#[derive(Default)]
struct SemThread {
  io: Option<Arc<[AtomicI32]>>,
  scratch: Scratch,
}

/// Buffers reused by every call, so a crossing allocates nothing.
#[derive(Default)]
struct Scratch {
  request: Vec<(KeyId, u32)>,
  grants: Vec<TicketId>,
  /// Grants that did not fit the buffer, until `semTakeGrants()`.
  overflow: Vec<TicketId>,
}

impl Scratch {
  /// Writes `g, ticket × g` (the grants in `grants`) at `at`, or only `g`,
  /// keeping the grants in `overflow`, when they do not fit.
  fn write_grants(&mut self, io: &[AtomicI32], at: usize) -> NativeResult<()> {
    let count = io_range(io, at, 1)?;
    store(&count[0], self.grants.len() as i32);
    match io.get(at + 1..at + 1 + self.grants.len()) {
      Some(out) => {
        for (slot, &ticket) in out.iter().zip(self.grants.iter()) {
          store(slot, ticket as i32);
        }
      }
      None => std::mem::swap(&mut self.grants, &mut self.overflow),
    }
    Ok(())
  }
}

thread_local! {
  static SEM_THREAD: RefCell<SemThread> = RefCell::new(SemThread::default());
}

/// Runs `f` on this thread's tables, its counted io buffer and scratch.
/// Both borrows are checked: a re-entrant call is an error, never a double
/// borrow.
fn with_sem<T>(
  f: impl FnOnce(&mut NativeThread, &[AtomicI32], &mut Scratch) -> NativeResult<T>,
) -> NativeResult<T> {
  with_thread(|t| {
    SEM_THREAD
      .try_with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
          let SemThread { io, scratch } = &mut *s;
          f(t, io.as_deref().ok_or(NativeError::NoIo)?, scratch)
        }
        Err(_) => Err(NativeError::Reentrant),
      })
      .unwrap_or(Err(NativeError::ShuttingDown))
  })
}

/// The counted io buffer of this thread, at least `min` slots; a new buffer
/// when it had to grow (the old one must not be used after that).
#[napi(catch_unwind, js_name = "semIoBuffer")]
pub fn sem_io_buffer(env: &Env, min: u32) -> Result<ArrayBuffer<'_>, Code> {
  let grown = with_thread(|_| {
    SEM_THREAD
      .try_with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
          let want = (min as usize).max(IO_MIN);
          if s.io.as_ref().is_none_or(|io| io.len() < want) {
            s.io = Some(
              (0..want.next_power_of_two())
                .map(|_| AtomicI32::new(0))
                .collect(),
            );
          }
          s.io.clone().ok_or(NativeError::NoIo)
        }
        Err(_) => Err(NativeError::Reentrant),
      })
      .unwrap_or(Err(NativeError::ShuttingDown))
  })?;
  external_i32(env, grown.as_ptr() as *mut i32, grown.len(), grown)
}

/// Reads `n` `(key, weight)` pairs at `at` into `request`.
fn read_request(io: &[AtomicI32], at: usize, request: &mut Vec<(KeyId, u32)>) -> NativeResult<()> {
  let n = load(
    io_range(io, at, 1)?
      .first()
      .ok_or(NativeError::IoSlot(at))?,
  )
  .max(0) as usize;
  let pairs = io_range(io, at + 1, 2 * n)?;
  request.clear();
  request.extend(
    pairs
      .chunks_exact(2)
      .map(|p| (load(&p[0]) as KeyId, load(&p[1]) as u32)),
  );
  Ok(())
}

pub(super) fn sem_acquire_body() -> NativeResult<()> {
  with_sem(|t, io, scratch| {
    let head = io_range(io, 0, 3)?;
    let max_pending = match load(&head[1]) {
      n if n < 0 => UNLIMITED,
      n => n as u32,
    };
    let skip = load(&head[2]) != 0;
    read_request(io, 3, &mut scratch.request)?;
    let acquired = sem_mut(t, load(&head[0]) as u32)?
      .acquire(&scratch.request, max_pending, skip)
      .map_err(NativeError::Core)?;
    write_acquired(io, acquired);
    Ok(())
  })
}

pub(super) fn sem_release_body() -> NativeResult<()> {
  with_sem(|t, io, scratch| {
    let table = load(&io_range(io, 0, 1)?[0]) as u32;
    read_request(io, 1, &mut scratch.request)?;
    scratch.grants.clear();
    sem_mut(t, table)?
      .release(&scratch.request, &mut scratch.grants)
      .map_err(NativeError::Core)?;
    scratch.write_grants(io, 0)
  })
}

pub(super) fn sem_cancel_body() -> NativeResult<()> {
  with_sem(|t, io, scratch| {
    let head = io_range(io, 0, 2)?;
    let table = sem_mut(t, load(&head[0]) as u32)?;
    let ticket = load(&head[1]) as TicketId;
    let blocking = table.blocking_index(ticket);
    scratch.grants.clear();
    let cancel = table.cancel(ticket, &mut scratch.grants);
    store(&head[0], (cancel == Cancel::Cancelled) as i32);
    store(&head[1], blocking.map_or(-1, |i| i as i32));
    scratch.write_grants(io, 2)
  })
}

pub(super) fn sem_take_grants_body() -> NativeResult<()> {
  with_sem(|_, io, scratch| {
    std::mem::swap(&mut scratch.grants, &mut scratch.overflow);
    scratch.overflow.clear();
    // JS grew the buffer first; if it did not, the grants stay kept.
    scratch.write_grants(io, 0)
  })
}
