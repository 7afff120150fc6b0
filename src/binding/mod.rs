//! The only place N-API is used. Each function forwards to `crate::core`.
//!
//! The hot entry points take no arguments and return nothing: their inputs
//! and outputs travel through a per-thread `Int32Array` (the *io buffer*)
//! because every N-API argument costs about 80 ns, while a call with none
//! costs about 20 ns (DESIGN.md). They are registered as raw callbacks in
//! `hot.rs`, so they do not appear in the generated `binding.d.ts`;
//! `lib/native.js` declares them. Layouts, all `i32`:
//!
//! | call | io in | io out |
//! | --- | --- | --- |
//! | `acquire()` | `table, max_pending (-1 = none), skip_queue, n, key × n` | `outcome (0 granted, 1 queued, 2 rejected), ticket or key index` |
//! | `release()` | `table, n, key × n` | `g, ticket × g` (grants) |
//! | `cancel()` | `table, ticket` | `cancelled (1/0), blocking key index, g, ticket × g` |
//!
//! A request's grants never outnumber its keys, so `4 + keys` slots are
//! always enough; `ioReserve(n)` grows the buffer for bigger requests.
//! Tables are owned per thread: a table id is valid only on the thread that
//! created it, which is exactly the isolate that uses it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::core::{Acquire, Cancel, CoreError, Table, UNLIMITED};

mod hot;
mod redis;
mod shared;

const IO_MIN: usize = 256;

struct NativeIo {
  slots: Arc<[AtomicI32]>,
}

impl NativeIo {
  fn with_len(len: usize) -> Self {
    NativeIo {
      slots: (0..len).map(|_| AtomicI32::new(0)).collect(),
    }
  }
}

#[derive(Default)]
struct NativeRegistry {
  tables: Vec<Option<Table>>,
  free: Vec<u32>,
  io: Option<NativeIo>,
  keys: Vec<u32>,
  grants: Vec<u32>,
}

thread_local! {
  static REGISTRY: RefCell<NativeRegistry> = RefCell::new(NativeRegistry::default());
}

/// Failures of the binding. Small and `Copy`, so the hot paths pass them
/// around instead of `napi::Error` values; converted once, at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NativeError {
  Core(CoreError),
  IoSlot(usize),
  NoIo,
  NoTable(i32),
  Reentrant,
  ShuttingDown,
}

impl std::fmt::Display for NativeError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      // `code: message`, the code stable for callers that match on it.
      NativeError::Core(e) => {
        let code = match e {
          CoreError::KeyOutOfRange(_) => "KEYLOCK_KEY_OUT_OF_RANGE",
          CoreError::NotHeld(_) => "KEYLOCK_NOT_HELD",
          CoreError::NoKeys => "KEYLOCK_NO_KEYS",
          CoreError::DuplicateKey(_) => "KEYLOCK_DUPLICATE_KEY",
        };
        write!(f, "{code}: {e}")
      }
      NativeError::IoSlot(i) => write!(f, "keylock internal error: io slot {i} is out of range"),
      NativeError::NoIo => write!(f, "keylock internal error: io buffer not created"),
      NativeError::NoTable(t) => write!(f, "keylock: no table {t}"),
      NativeError::Reentrant => write!(f, "keylock internal error: re-entrant call"),
      NativeError::ShuttingDown => write!(f, "keylock: the thread is shutting down"),
    }
  }
}

/// The one mapping from binding and core errors to JS errors.
impl From<NativeError> for Error {
  fn from(e: NativeError) -> Error {
    Error::new(Status::GenericFailure, e.to_string())
  }
}

pub(crate) fn to_napi_error(e: CoreError) -> Error {
  NativeError::Core(e).into()
}

fn with_registry<T>(
  f: impl FnOnce(&mut NativeRegistry) -> std::result::Result<T, NativeError>,
) -> std::result::Result<T, NativeError> {
  REGISTRY
    .try_with(|r| match r.try_borrow_mut() {
      Ok(mut r) => f(&mut r),
      Err(_) => Err(NativeError::Reentrant),
    })
    .unwrap_or(Err(NativeError::ShuttingDown))
}

type NativeResult<T> = std::result::Result<T, NativeError>;

fn io_slots(io: &Option<NativeIo>) -> NativeResult<&Arc<[AtomicI32]>> {
  io.as_ref().map(|io| &io.slots).ok_or(NativeError::NoIo)
}

fn external_i32<'env, T: 'env>(
  env: &Env,
  ptr: *mut i32,
  len: usize,
  owner: T,
) -> Result<ArrayBuffer<'env>> {
  // SAFETY: `ptr` points at `len` i32s owned by `owner` (an `Arc`), which the
  // finalizer keeps alive until the ArrayBuffer is collected, so the memory
  // outlives every JS view of it. It is only accessed on this thread.
  unsafe { ArrayBuffer::from_external(env, ptr.cast(), len * 4, owner, |_, owner| drop(owner)) }
}

/// The io buffer of this thread, at least `min` slots; a new buffer when it
/// had to grow (the old one must not be used after that).
#[napi(catch_unwind, js_name = "ioBuffer")]
pub fn io_buffer(env: &Env, min: u32) -> Result<ArrayBuffer<'_>> {
  let (ptr, len, owner) = with_registry(|r| {
    let want = (min as usize).max(IO_MIN);
    if r.io.as_ref().is_none_or(|io| io.slots.len() < want) {
      r.io = Some(NativeIo::with_len(want.next_power_of_two()));
    }
    let slots = io_slots(&r.io)?;
    Ok((slots.as_ptr() as *mut i32, slots.len(), slots.clone()))
  })?;
  external_i32(env, ptr, len, owner)
}

#[napi(catch_unwind, js_name = "createTable")]
pub fn create_table() -> Result<u32> {
  Ok(with_registry(|r| {
    let table = Table::new();
    Ok(match r.free.pop() {
      Some(id) => {
        r.tables[id as usize] = Some(table);
        id
      }
      None => {
        r.tables.push(Some(table));
        (r.tables.len() - 1) as u32
      }
    })
  })?)
}

/// Frees a table. Its waiters are dropped with it: only called once the JS
/// lock that owns it is unreachable, so nobody can wait on it.
#[napi(catch_unwind, js_name = "dropTable")]
pub fn drop_table(table: u32) -> Result<()> {
  Ok(with_registry(|r| {
    if let Some(slot) = r.tables.get_mut(table as usize) {
      if slot.take().is_some() {
        r.free.push(table);
      }
    }
    Ok(())
  })?)
}

/// The key words of a table, valid for key ids below `min` (grows the table
/// when needed). Always a fresh view: call again after growing.
#[napi(catch_unwind, js_name = "tableWords")]
pub fn table_words(env: &Env, table: u32, min: u32) -> Result<ArrayBuffer<'_>> {
  let (ptr, len, owner) = with_registry(|r| {
    let t = table_mut(&mut r.tables, table as i32)?;
    t.reserve_keys(min as usize);
    let words = t.words().clone();
    Ok((words.as_mut_ptr(), words.len(), words))
  })?;
  external_i32(env, ptr, len, owner)
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

pub(crate) fn acquire_body() -> NativeResult<()> {
  with_registry(|r| {
    let NativeRegistry {
      tables, io, keys, ..
    } = r;
    let io = &io_slots(io)?[..];
    let head = io_range(io, 0, 4)?;
    let max_pending = match load(&head[1]) {
      n if n < 0 => UNLIMITED,
      n => n as u32,
    };
    let skip = load(&head[2]) != 0;
    let key_slots = io_range(io, 4, load(&head[3]).max(0) as usize)?;
    let t = table_mut(tables, load(&head[0]))?;
    let outcome = with_keys(key_slots, keys, |ks| t.acquire(ks, max_pending, skip))
      .map_err(NativeError::Core)?;
    let (code, value) = match outcome {
      Acquire::Granted => (0, 0),
      Acquire::Queued(ticket) => (1, ticket as i32),
      Acquire::Rejected { key_index } => (2, key_index as i32),
    };
    store(&head[0], code);
    store(&head[1], value);
    Ok(())
  })
}

pub(crate) fn release_body() -> NativeResult<()> {
  with_registry(|r| {
    let NativeRegistry {
      tables,
      io,
      keys,
      grants,
      ..
    } = r;
    let io = &io_slots(io)?[..];
    let head = io_range(io, 0, 2)?;
    let key_slots = io_range(io, 2, load(&head[1]).max(0) as usize)?;
    let t = table_mut(tables, load(&head[0]))?;
    grants.clear();
    with_keys(key_slots, keys, |ks| t.release(ks, grants)).map_err(NativeError::Core)?;
    write_grants(io, 0, grants)
  })
}

pub(crate) fn cancel_body() -> NativeResult<()> {
  with_registry(|r| {
    let NativeRegistry {
      tables, io, grants, ..
    } = r;
    let io = &io_slots(io)?[..];
    let head = io_range(io, 0, 2)?;
    let ticket = load(&head[1]) as u32;
    let t = table_mut(tables, load(&head[0]))?;
    grants.clear();
    let blocking = t.blocking_index(ticket).map_or(-1, |i| i as i32);
    let outcome = t.cancel(ticket, grants);
    store(&head[0], (outcome == Cancel::Cancelled) as i32);
    store(&head[1], blocking);
    write_grants(io, 2, grants)
  })
}

fn write_grants(io: &[AtomicI32], at: usize, grants: &[u32]) -> NativeResult<()> {
  let out = io_range(io, at, 1 + grants.len())?;
  store(&out[0], grants.len() as i32);
  for (slot, &g) in out[1..].iter().zip(grants) {
    store(slot, g as i32);
  }
  Ok(())
}

/// Live waiters on a key (for `queues` introspection; not a hot path).
#[napi(catch_unwind, js_name = "waitingOn")]
pub fn waiting_on(table: u32, key: u32) -> Result<u32> {
  Ok(with_registry(|r| {
    Ok(table_mut(&mut r.tables, table as i32)?.waiting_on(key))
  })?)
}

/// Measures the bare cost of a crossing (bench/crossings.js).
#[napi(catch_unwind)]
pub fn noop() {}
