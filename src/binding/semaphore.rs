//! Counted isolate tables (`permits > 1`, see docs/semaphores.md): a
//! [`Semaphores`] per lock, on the thread that created it. The uncontended
//! acquire and release never cross (JS decides them on the words, as for
//! the mutex).
//!
//! # The semaphore io buffer
//!
//! The contended calls (`semAcquireIo`, `semReleaseIo`, `semCancelIo`,
//! `semTakeGrants`) are raw N-API callbacks without arguments, like the
//! mutex's hot paths (`hot.rs`): a request and its answer travel through an
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
use std::ffi::{c_char, CString};
use std::ptr;
use std::sync::atomic::AtomicI32;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use super::{
  external_i32, io_range, load, napi_failure, store, to_napi_error, with_thread, write_acquired,
  Code, NativeError, NativeResult, NativeThread, IO_MIN,
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
  request: Vec<(KeyId, u32)>,
  grants: Vec<TicketId>,
  /// Grants that did not fit the buffer, until `semTakeGrants()`.
  overflow: Vec<TicketId>,
}

thread_local! {
  static SEM_THREAD: RefCell<SemThread> = RefCell::new(SemThread::default());
}

/// Runs `f` on this thread's tables and counted io. Both borrows are
/// checked: a re-entrant call is an error, never a double borrow.
fn with_sem<T>(
  f: impl FnOnce(&mut NativeThread, &mut SemThread) -> NativeResult<T>,
) -> NativeResult<T> {
  with_thread(|t| {
    SEM_THREAD
      .try_with(|s| match s.try_borrow_mut() {
        Ok(mut s) => f(t, &mut s),
        Err(_) => Err(NativeError::Reentrant),
      })
      .unwrap_or(Err(NativeError::ShuttingDown))
  })
}

/// The counted io buffer of this thread, at least `min` slots; a new buffer
/// when it had to grow (the old one must not be used after that).
#[napi(catch_unwind, js_name = "semIoBuffer")]
pub fn sem_io_buffer(env: &Env, min: u32) -> Result<ArrayBuffer<'_>, Code> {
  let slots = with_sem(|_, s| {
    let want = (min as usize).max(IO_MIN);
    if s.io.as_ref().is_none_or(|io| io.len() < want) {
      s.io = Some(
        (0..want.next_power_of_two())
          .map(|_| AtomicI32::new(0))
          .collect(),
      );
    }
    s.io.clone().ok_or(NativeError::NoIo)
  })?;
  external_i32(env, slots.as_ptr() as *mut i32, slots.len(), slots)
}

/// Reads `n` `(key, weight)` pairs at `at` into `request`.
fn read_request(
  io: &[AtomicI32],
  at: usize,
  request: &mut Vec<(KeyId, u32)>,
) -> NativeResult<()> {
  let n = load(io_range(io, at, 1)?.first().ok_or(NativeError::IoSlot(at))?).max(0) as usize;
  let pairs = io_range(io, at + 1, 2 * n)?;
  request.clear();
  request.extend(
    pairs
      .chunks_exact(2)
      .map(|p| (load(&p[0]) as KeyId, load(&p[1]) as u32)),
  );
  Ok(())
}

/// Writes `g, ticket × g` at `at`, or only `g` (keeping the grants in
/// `overflow`) when they do not fit.
fn write_grants(
  io: &[AtomicI32],
  at: usize,
  grants: &mut Vec<TicketId>,
  overflow: &mut Vec<TicketId>,
) -> NativeResult<()> {
  let count = io_range(io, at, 1)?;
  store(&count[0], grants.len() as i32);
  match io.get(at + 1..at + 1 + grants.len()) {
    Some(out) => {
      for (slot, &ticket) in out.iter().zip(grants.iter()) {
        store(slot, ticket as i32);
      }
    }
    None => std::mem::swap(grants, overflow),
  }
  Ok(())
}

fn sem_acquire_body() -> NativeResult<()> {
  with_sem(|t, s| {
    let SemThread { io, request, .. } = s;
    let io = io.as_deref().ok_or(NativeError::NoIo)?;
    let head = io_range(io, 0, 3)?;
    let max_pending = match load(&head[1]) {
      n if n < 0 => UNLIMITED,
      n => n as u32,
    };
    let skip = load(&head[2]) != 0;
    read_request(io, 3, request)?;
    let acquired = sem_mut(t, load(&head[0]) as u32)?
      .acquire(request, max_pending, skip)
      .map_err(NativeError::Core)?;
    write_acquired(io, acquired);
    Ok(())
  })
}

fn sem_release_body() -> NativeResult<()> {
  with_sem(|t, s| {
    let SemThread {
      io,
      request,
      grants,
      overflow,
    } = s;
    let io = io.as_deref().ok_or(NativeError::NoIo)?;
    let table = load(&io_range(io, 0, 1)?[0]) as u32;
    read_request(io, 1, request)?;
    grants.clear();
    sem_mut(t, table)?
      .release(request, grants)
      .map_err(NativeError::Core)?;
    write_grants(io, 0, grants, overflow)
  })
}

fn sem_cancel_body() -> NativeResult<()> {
  with_sem(|t, s| {
    let SemThread {
      io,
      grants,
      overflow,
      ..
    } = s;
    let io = io.as_deref().ok_or(NativeError::NoIo)?;
    let head = io_range(io, 0, 2)?;
    let table = sem_mut(t, load(&head[0]) as u32)?;
    let ticket = load(&head[1]) as TicketId;
    let blocking = table.blocking_index(ticket);
    grants.clear();
    let cancel = table.cancel(ticket, grants);
    store(&head[0], (cancel == Cancel::Cancelled) as i32);
    store(&head[1], blocking.map_or(-1, |i| i as i32));
    write_grants(io, 2, grants, overflow)
  })
}

fn sem_take_grants_body() -> NativeResult<()> {
  with_sem(|_, s| {
    let SemThread {
      io,
      grants,
      overflow,
      ..
    } = s;
    let io = io.as_deref().ok_or(NativeError::NoIo)?;
    std::mem::swap(grants, overflow);
    overflow.clear();
    // JS grew the buffer first; if it did not, the grants stay kept.
    write_grants(io, 0, grants, overflow)
  })
}

type Body = fn() -> NativeResult<()>;

/// Runs `body`; a failure or a panic becomes a thrown JS error, through the
/// one mapping. Never unwinds into the engine.
unsafe fn call(env: sys::napi_env, body: Body) -> sys::napi_value {
  let error = match std::panic::catch_unwind(body) {
    Ok(Ok(())) => return ptr::null_mut(),
    Ok(Err(e)) => e,
    Err(_) => NativeError::Panic,
  };
  // SAFETY: `env` is the live env of this callback, with no exception
  // pending (the body does not call into JS).
  unsafe { JsError::from(to_napi_error(&error)).throw_into(env) };
  ptr::null_mut()
}

macro_rules! sem_callback {
  ($name:ident, $body:path) => {
    unsafe extern "C" fn $name(
      env: sys::napi_env,
      _info: sys::napi_callback_info,
    ) -> sys::napi_value {
      // SAFETY: called by Node with the env of the current call.
      unsafe { call(env, $body) }
    }
  };
}

sem_callback!(raw_sem_acquire, sem_acquire_body);
sem_callback!(raw_sem_release, sem_release_body);
sem_callback!(raw_sem_cancel, sem_cancel_body);
sem_callback!(raw_sem_take_grants, sem_take_grants_body);

/// The counted hot calls as raw callbacks (see the module docs), in an
/// object: `lib/spaces/counted.js` asks once.
#[napi(catch_unwind, js_name = "semHotPaths")]
pub fn sem_hot_paths(env: &Env) -> Result<Object<'_>, Code> {
  let mut paths = Object::new(env).map_err(napi_failure)?;
  let table: [(&str, sys::napi_callback); 4] = [
    ("semAcquireIo", Some(raw_sem_acquire)),
    ("semReleaseIo", Some(raw_sem_release)),
    ("semCancelIo", Some(raw_sem_cancel)),
    ("semTakeGrants", Some(raw_sem_take_grants)),
  ];
  for (name, cb) in table {
    let c_name = CString::new(name).map_err(|e| napi_failure(Error::from_reason(e.to_string())))?;
    let mut func = ptr::null_mut();
    // SAFETY: `env` is the env of this call; the name is NUL-terminated;
    // `func` receives the new function.
    check_status!(unsafe {
      sys::napi_create_function(
        env.raw(),
        c_name.as_ptr() as *const c_char,
        name.len() as isize,
        cb,
        ptr::null_mut(),
        &mut func,
      )
    })
    .map_err(napi_failure)?;
    // SAFETY: `func` was just created in this env.
    let value = unsafe { Unknown::from_raw_unchecked(env.raw(), func) };
    paths
      .set_named_property(name, value)
      .map_err(napi_failure)?;
  }
  Ok(paths)
}
