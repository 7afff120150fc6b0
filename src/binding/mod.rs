//! The only place N-API is used. Each function forwards to `crate::core`,
//! `crate::process` or `crate::redis` (one file per reach here).
//!
//! # The io buffer
//!
//! The hot entry points take no arguments and return nothing: their inputs
//! and outputs travel through one `Int32Array` per thread (the *io buffer*,
//! [`io_buffer`]) because every N-API argument costs about 80 ns, while a
//! call with none costs about 20 ns (DESIGN.md). They are registered as raw
//! callbacks in `hot.rs`, so they do not appear in the generated
//! `binding.d.ts`; `lib/native.js` declares them. The isolate and process
//! reaches share the buffer and its layouts; `owner` is a table id for the
//! isolate calls and a member index for the process calls. All `i32`:
//!
//! | call | io in | io out |
//! | --- | --- | --- |
//! | `acquire()`, `processAcquire()` | `owner, max_pending (-1 = none), skip_queue, n, key × n` | `outcome (core::Outcome: GRANTED, QUEUED or REJECTED), ticket or key index` |
//! | `release()`, `processRelease()` | `owner, n, key × n` | `g, ticket × g` (grants to this thread) |
//! | `processReleaseIdle()` | `member, n, key × n` | `c, key × c` (keys with waiters, still held) |
//! | `cancel()`, `processCancel()` | `owner, ticket` | `cancelled (1/0), blocking key index, g, ticket × g` |
//!
//! A request's grants never outnumber its keys, so `4 + keys` slots are
//! always enough; JS asks `ioBuffer(4 + keys)` for a bigger buffer before a
//! bigger request, and must then drop its view of the old one.
//! Tables are owned per thread: a table id is valid only on the thread that
//! created it, which is exactly the isolate that uses it.
//!
//! # Errors
//!
//! Every error thrown or rejected here goes through [`to_napi_error`]: its
//! `code` is the `KEYED_LOCK_*` string of a [`crate::core::ErrorCode`], its
//! message carries no code. A panic becomes `KEYED_LOCK_INTERNAL`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::core::{Acquire, Cancel, Coded, CoreError, ErrorCode, Outcome, Table, UNLIMITED};
use crate::process::SpaceError;

mod hot;
mod process;
mod process_counted;
mod redis;
mod semaphore;

/// The smallest io buffer: room for a request of 252 keys.
const IO_MIN: usize = 256;

/// An error's `err.code` in JS: the status string of a napi `Error`.
pub(crate) type Code = &'static str;

/// What the binding keeps per JS thread.
#[derive(Default)]
struct NativeThread {
  /// Isolate tables, by table id.
  tables: Vec<Option<Table>>,
  free: Vec<u32>,
  /// Counted isolate tables (`permits > 1`), by their own ids.
  sem_tables: Vec<Option<crate::core::Semaphores>>,
  sem_free: Vec<u32>,
  /// Process spaces this thread joined, by member index.
  members: Vec<process::NativeMember>,
  /// The io buffer, shared by both reaches' hot calls.
  io: Option<Arc<[AtomicI32]>>,
  keys: Vec<u32>,
  grants: Vec<u32>,
}

thread_local! {
  static THREAD: RefCell<NativeThread> = RefCell::new(NativeThread::default());
}

/// Failures of the binding. Small and `Copy`, so the hot paths pass them
/// around instead of `napi::Error` values; converted once, at the edge, by
/// [`to_napi_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NativeError {
  Core(CoreError),
  Space(SpaceError),
  IoSlot(usize),
  NoIo,
  NoTable(i32),
  NoMember(i32),
  Reentrant,
  ShuttingDown,
  Panic,
}

impl std::fmt::Display for NativeError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      NativeError::Core(e) => e.fmt(f),
      NativeError::Space(e) => e.fmt(f),
      NativeError::IoSlot(i) => write!(f, "keyed-lock internal error: io slot {i} is out of range"),
      NativeError::NoIo => write!(f, "keyed-lock internal error: io buffer not created"),
      NativeError::NoTable(t) => write!(f, "keyed-lock internal error: no table {t}"),
      NativeError::NoMember(m) => write!(f, "keyed-lock internal error: no process member {m}"),
      NativeError::Reentrant => write!(f, "keyed-lock internal error: re-entrant call"),
      NativeError::ShuttingDown => {
        write!(f, "keyed-lock internal error: the thread is shutting down")
      }
      NativeError::Panic => write!(f, "keyed-lock internal error: a panic in the native core"),
    }
  }
}

impl std::error::Error for NativeError {}

impl Coded for NativeError {
  fn code(&self) -> ErrorCode {
    match self {
      NativeError::Core(e) => e.code(),
      NativeError::Space(e) => e.code(),
      _ => ErrorCode::Internal,
    }
  }
}

impl From<SpaceError> for NativeError {
  fn from(e: SpaceError) -> Self {
    NativeError::Space(e)
  }
}

/// The one mapping from keyed-lock errors to JS errors: `err.code` is the
/// error's code, `err.message` its text.
pub(crate) fn to_napi_error(e: &dyn Coded) -> Error<Code> {
  Error::new(e.code().as_str(), e.to_string())
}

impl From<NativeError> for Error<Code> {
  fn from(e: NativeError) -> Self {
    to_napi_error(&e)
  }
}

/// A failure of N-API itself (creating a buffer, registering a hook).
pub(crate) fn napi_failure(e: Error) -> Error<Code> {
  Error::new(ErrorCode::Internal.as_str(), e.reason)
}

type NativeResult<T> = std::result::Result<T, NativeError>;

/// Runs `f` on this thread's state. A re-entrant call, a call during thread
/// shutdown and a panic are errors, never an unwind into the engine.
fn with_thread<T>(f: impl FnOnce(&mut NativeThread) -> NativeResult<T>) -> NativeResult<T> {
  let run = std::panic::AssertUnwindSafe(|| {
    THREAD
      .try_with(|t| match t.try_borrow_mut() {
        Ok(mut t) => f(&mut t),
        Err(_) => Err(NativeError::Reentrant),
      })
      .unwrap_or(Err(NativeError::ShuttingDown))
  });
  std::panic::catch_unwind(run).unwrap_or(Err(NativeError::Panic))
}

fn io_slots(io: &Option<Arc<[AtomicI32]>>) -> NativeResult<&[AtomicI32]> {
  io.as_deref().ok_or(NativeError::NoIo)
}

fn external_i32<'env, T: 'env>(
  env: &Env,
  ptr: *mut i32,
  len: usize,
  owner: T,
) -> Result<ArrayBuffer<'env>, Code> {
  // SAFETY: `ptr` points at `len` i32s owned by `owner` (an `Arc`), which the
  // finalizer keeps alive until the ArrayBuffer is collected, so the memory
  // outlives every JS view of it. AtomicI32 has the layout of i32, and the
  // memory is only accessed on this thread.
  unsafe { ArrayBuffer::from_external(env, ptr.cast(), len * 4, owner, |_, owner| drop(owner)) }
    .map_err(napi_failure)
}

/// The io buffer of this thread, at least `min` slots; a new buffer when it
/// had to grow (the old one must not be used after that). One per thread,
/// for the isolate and the process reach alike.
#[napi(catch_unwind, js_name = "ioBuffer")]
pub fn io_buffer(env: &Env, min: u32) -> Result<ArrayBuffer<'_>, Code> {
  let slots = with_thread(|t| {
    let want = (min as usize).max(IO_MIN);
    if t.io.as_ref().is_none_or(|io| io.len() < want) {
      t.io = Some(
        (0..want.next_power_of_two())
          .map(|_| AtomicI32::new(0))
          .collect(),
      );
    }
    t.io.clone().ok_or(NativeError::NoIo)
  })?;
  external_i32(env, slots.as_ptr() as *mut i32, slots.len(), slots)
}

/// The outcome codes (`core::Outcome`) by name, for JS to read once.
#[napi(catch_unwind, js_name = "outcomeCodes")]
pub fn outcome_codes() -> HashMap<String, i32> {
  Outcome::ALL
    .into_iter()
    .map(|o| (o.name().to_owned(), o.code()))
    .collect()
}

#[napi(catch_unwind, js_name = "createTable")]
pub fn create_table() -> Result<u32, Code> {
  Ok(with_thread(|t| {
    let table = Table::new();
    Ok(match t.free.pop() {
      Some(id) => {
        t.tables[id as usize] = Some(table);
        id
      }
      None => {
        t.tables.push(Some(table));
        (t.tables.len() - 1) as u32
      }
    })
  })?)
}

/// Frees a table. Its waiters are dropped with it: only called once the JS
/// lock that owns it is unreachable, so nobody can wait on it.
#[napi(catch_unwind, js_name = "dropTable")]
pub fn drop_table(table: u32) -> Result<(), Code> {
  Ok(with_thread(|t| {
    if let Some(slot) = t.tables.get_mut(table as usize) {
      if slot.take().is_some() {
        t.free.push(table);
      }
    }
    Ok(())
  })?)
}

/// The key words of a table, valid for key ids below `min` (grows the table
/// when needed), followed by as many live-waiter counts (core::Words).
/// Always a fresh view: call again after growing.
#[napi(catch_unwind, js_name = "tableWords")]
pub fn table_words(env: &Env, table: u32, min: u32) -> Result<ArrayBuffer<'_>, Code> {
  let words = with_thread(|t| {
    let table = table_mut(&mut t.tables, table as i32)?;
    table.reserve_keys(min as usize);
    Ok(table.words().clone())
  })?;
  external_i32(env, words.as_mut_ptr(), words.slot_count(), words)
}

// The hot bodies read the io buffer through one bounds-checked slice each
// and keep a single key on the stack: at ~100 ns a crossing, per-slot error
// plumbing and a Vec copy were a measurable share of a contended hand-off.

fn load(slot: &AtomicI32) -> i32 {
  slot.load(Ordering::Relaxed)
}

fn store(slot: &AtomicI32, value: i32) {
  slot.store(value, Ordering::Relaxed)
}

fn io_range(io: &[AtomicI32], start: usize, len: usize) -> NativeResult<&[AtomicI32]> {
  io.get(start..start + len)
    .ok_or(NativeError::IoSlot(start + len))
}

fn table_mut(tables: &mut [Option<Table>], table: i32) -> NativeResult<&mut Table> {
  tables
    .get_mut(table as usize)
    .and_then(Option::as_mut)
    .ok_or(NativeError::NoTable(table))
}

/// Runs `f` on the key ids in `slots`, without a copy when there is one.
fn with_keys<T>(slots: &[AtomicI32], scratch: &mut Vec<u32>, f: impl FnOnce(&[u32]) -> T) -> T {
  if let [one] = slots {
    return f(&[load(one) as u32]);
  }
  scratch.clear();
  scratch.extend(slots.iter().map(|s| load(s) as u32));
  f(scratch)
}

/// An acquire request as laid out in io: `(owner, max_pending, skip, keys)`.
fn acquire_request(io: &[AtomicI32]) -> NativeResult<(i32, u32, bool, &[AtomicI32])> {
  let head = io_range(io, 0, 4)?;
  let max_pending = match load(&head[1]) {
    n if n < 0 => UNLIMITED,
    n => n as u32,
  };
  let skip = load(&head[2]) != 0;
  let keys = io_range(io, 4, load(&head[3]).max(0) as usize)?;
  Ok((load(&head[0]), max_pending, skip, keys))
}

/// Writes an acquire's answer: `outcome, ticket or key index`.
fn write_acquired(io: &[AtomicI32], acquired: Acquire) {
  let (outcome, value) = match acquired {
    Acquire::Granted => (Outcome::Granted, 0),
    Acquire::Queued(ticket) => (Outcome::Queued, ticket as i32),
    Acquire::Rejected { key_index } => (Outcome::Rejected, key_index as i32),
  };
  // `acquire_request` checked that the head is there.
  store(&io[0], outcome.code());
  store(&io[1], value);
}

/// A release request as laid out in io: `(owner, keys)`.
fn release_request(io: &[AtomicI32]) -> NativeResult<(i32, &[AtomicI32])> {
  let head = io_range(io, 0, 2)?;
  let keys = io_range(io, 2, load(&head[1]).max(0) as usize)?;
  Ok((load(&head[0]), keys))
}

/// Writes a cancel's answer: `cancelled, blocking key index, g, ticket × g`.
fn write_cancelled(
  io: &[AtomicI32],
  cancel: Cancel,
  blocking: Option<usize>,
  grants: &[u32],
) -> NativeResult<()> {
  let head = io_range(io, 0, 2)?;
  store(&head[0], (cancel == Cancel::Cancelled) as i32);
  store(&head[1], blocking.map_or(-1, |i| i as i32));
  write_ids(io, 2, grants)
}

/// Writes `c, id × c` at `at`.
fn write_ids(io: &[AtomicI32], at: usize, ids: &[u32]) -> NativeResult<()> {
  let out = io_range(io, at, 1 + ids.len())?;
  store(&out[0], ids.len() as i32);
  for (slot, &id) in out[1..].iter().zip(ids) {
    store(slot, id as i32);
  }
  Ok(())
}

pub(crate) fn acquire_body() -> NativeResult<()> {
  with_thread(|t| {
    let NativeThread {
      tables, io, keys, ..
    } = t;
    let io = io_slots(io)?;
    let (table, max_pending, skip, key_slots) = acquire_request(io)?;
    let table = table_mut(tables, table)?;
    let acquired = with_keys(key_slots, keys, |ks| table.acquire(ks, max_pending, skip))
      .map_err(NativeError::Core)?;
    write_acquired(io, acquired);
    Ok(())
  })
}

pub(crate) fn release_body() -> NativeResult<()> {
  with_thread(|t| {
    let NativeThread {
      tables,
      io,
      keys,
      grants,
      ..
    } = t;
    let io = io_slots(io)?;
    let (table, key_slots) = release_request(io)?;
    let table = table_mut(tables, table)?;
    grants.clear();
    with_keys(key_slots, keys, |ks| table.release(ks, grants)).map_err(NativeError::Core)?;
    write_ids(io, 0, grants)
  })
}

pub(crate) fn cancel_body() -> NativeResult<()> {
  with_thread(|t| {
    let NativeThread {
      tables, io, grants, ..
    } = t;
    let io = io_slots(io)?;
    let head = io_range(io, 0, 2)?;
    let ticket = load(&head[1]) as u32;
    let table = table_mut(tables, load(&head[0]))?;
    grants.clear();
    let blocking = table.blocking_index(ticket);
    let cancel = table.cancel(ticket, grants);
    write_cancelled(io, cancel, blocking, grants)
  })
}

/// Live waiters on a key (for `queues` introspection; not a hot path).
#[napi(catch_unwind, js_name = "waitingOn")]
pub fn waiting_on(table: u32, key: u32) -> Result<u32, Code> {
  Ok(with_thread(|t| {
    Ok(table_mut(&mut t.tables, table as i32)?.waiting_on(key))
  })?)
}

/// Measures the bare cost of a crossing (bench/crossings.js).
#[napi(catch_unwind)]
pub fn noop() {}
