//! N-API layer of the process reach: forwards to [`crate::shared`].
//!
//! Each JS thread that opens a space becomes one owner of it (a *member*,
//! indexed per thread). Its membership is handed to an env cleanup hook, so
//! when the worker's environment is torn down — normal exit, `terminate()`,
//! `process.exit()`, an uncaught exception — the owner leaves the space and
//! its locks pass on (see `crate::shared`, *Guarantees*).
//!
//! Grants made by other threads are woken through one weak ThreadsafeFunction
//! per thread and space: JS refs it while the thread has waiters and unrefs
//! it when it has none, so an idle thread's event loop is free to end.
//!
//! Like the isolate reach, the hot calls take their inputs from, and put
//! their outputs in, a per-thread `Int32Array` (layouts as in `binding`, with
//! a member index where the isolate reach has a table id):
//!
//! | call | io in | io out |
//! | --- | --- | --- |
//! | `sharedAcquire()` | `member, max_pending (-1 = none), skip_queue, n, key × n` | `outcome (0 granted, 1 queued, 2 rejected), ticket or key index` |
//! | `sharedRelease()` | `member, n, key × n` | `g, ticket × g` (grants to this thread) |
//! | `sharedReleaseIdle()` | `member, n, key × n` | `c, key × c` (keys with waiters, still held) |
//! | `sharedCancel()` | `member, ticket` | `cancelled (1/0), blocking key index, g, ticket × g` |

use std::cell::RefCell;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use parking_lot::Mutex;

use crate::core::{Acquire, Cancel, UNLIMITED};
use crate::shared::{OwnerId, SharedKey, SharedSpace, SpaceError, Waker};

const IO_MIN: usize = 256;

/// Called with no arguments on the owner's thread; weak (does not keep the
/// event loop alive) until JS refs it.
type WakeFn = ThreadsafeFunction<(), Unknown<'static>, (), Status, false, true>;

/// The waker of one thread in one space. The mutex is only there because
/// `refer`/`unref` need `&mut`; it is never held while calling into a space.
struct NativeWaker(Mutex<WakeFn>);

impl Waker for NativeWaker {
  fn wake(&self) {
    // `Closing` means the thread's env is going away: its cleanup hook
    // releases whatever this grant gave it, so the status can be ignored.
    let _ = self
      .0
      .lock()
      .call((), ThreadsafeFunctionCallMode::NonBlocking);
  }
}

struct NativeMember {
  space: Arc<SharedSpace>,
  owner: OwnerId,
  waker: Arc<NativeWaker>,
}

#[derive(Default)]
struct NativeMembers {
  members: Vec<NativeMember>,
  io: Option<Arc<[AtomicI32]>>,
  keys: Vec<u32>,
  grants: Vec<u32>,
}

thread_local! {
  static MEMBERS: RefCell<NativeMembers> = RefCell::new(NativeMembers::default());
}

fn with_members<T>(f: impl FnOnce(&mut NativeMembers) -> Result<T>) -> Result<T> {
  MEMBERS
    .try_with(|m| match m.try_borrow_mut() {
      Ok(mut m) => f(&mut m),
      Err(_) => Err(Error::new(
        Status::GenericFailure,
        "keylock internal error: re-entrant call",
      )),
    })
    .unwrap_or_else(|_| {
      Err(Error::new(
        Status::GenericFailure,
        "keylock: the thread is shutting down",
      ))
    })
}

fn space_error(e: SpaceError) -> Error {
  let code = match e {
    SpaceError::Core(core) => return super::to_napi_error(core),
    SpaceError::NoOwner(_) => "KEYLOCK_NO_OWNER",
    SpaceError::NoKey(_) => "KEYLOCK_KEY_OUT_OF_RANGE",
    SpaceError::NotHeld(_) => "KEYLOCK_NOT_HELD",
  };
  Error::new(Status::GenericFailure, format!("{code}: {e}"))
}

fn io_error(i: usize) -> Error {
  Error::new(
    Status::InvalidArg,
    format!("keylock internal error: shared io slot {i} is out of range"),
  )
}

impl NativeMembers {
  fn member(&self, index: i32) -> Result<&NativeMember> {
    usize::try_from(index)
      .ok()
      .and_then(|i| self.members.get(i))
      .ok_or_else(|| {
        Error::new(
          Status::InvalidArg,
          format!("keylock: no shared member {index}"),
        )
      })
  }

  fn get(&self, i: usize) -> Result<i32> {
    self
      .io
      .as_ref()
      .and_then(|io| io.get(i))
      .map(|s| s.load(Ordering::Relaxed))
      .ok_or_else(|| io_error(i))
  }

  fn set(&self, i: usize, v: i32) -> Result<()> {
    self
      .io
      .as_ref()
      .and_then(|io| io.get(i))
      .map(|s| s.store(v, Ordering::Relaxed))
      .ok_or_else(|| io_error(i))
  }

  fn read_keys(&mut self, at: usize) -> Result<()> {
    let n = self.get(at)?;
    let mut keys = std::mem::take(&mut self.keys);
    keys.clear();
    let read = (0..n.max(0) as usize).try_for_each(|i| {
      keys.push(self.get(at + 1 + i)? as u32);
      Ok(())
    });
    self.keys = keys;
    read
  }

  fn write_grants(&self, at: usize) -> Result<()> {
    self.set(at, self.grants.len() as i32)?;
    for (i, &g) in self.grants.iter().enumerate() {
      self.set(at + 1 + i, g as i32)?;
    }
    Ok(())
  }
}

/// The shared-reach io buffer of this thread, at least `min` slots; a new
/// buffer when it had to grow (the old one must not be used after that).
#[napi(catch_unwind, js_name = "sharedIoBuffer")]
pub fn shared_io_buffer(env: &Env, min: u32) -> Result<ArrayBuffer<'_>> {
  let slots = with_members(|m| {
    let want = (min as usize).max(IO_MIN);
    if m.io.as_ref().is_none_or(|io| io.len() < want) {
      m.io = Some(
        (0..want.next_power_of_two())
          .map(|_| AtomicI32::new(0))
          .collect(),
      );
    }
    m.io.clone().ok_or_else(|| io_error(0))
  })?;
  let (ptr, len) = (slots.as_ptr() as *mut u8, slots.len() * 4);
  // SAFETY: `ptr` points at `len` bytes of i32 slots owned by `slots` (an
  // `Arc`), which the finalizer keeps alive until the ArrayBuffer is
  // collected, so the memory outlives every JS view of it. AtomicI32 has the
  // layout of i32, and the slots are only used on this thread.
  unsafe { ArrayBuffer::from_external(env, ptr, len, slots, |_, slots| drop(slots)) }
}

/// Joins the process-wide space `name` for this thread; returns the member
/// index the other calls take. `wake` is called (on this thread) when
/// another thread granted one of this thread's waiters.
#[napi(
  catch_unwind,
  js_name = "sharedOpen",
  ts_args_type = "name: string, wake: () => void"
)]
pub fn shared_open(env: &Env, name: String, wake: WakeFn) -> Result<u32> {
  let space = SharedSpace::open(&name);
  let waker = Arc::new(NativeWaker(Mutex::new(wake)));
  let membership = space.membership(waker.clone());
  let owner = membership.owner();
  // The hook owns the membership: tearing the env down (worker exit,
  // terminate, process.exit, uncaught exception) leaves the space, which
  // releases this thread's holds and cancels its waiters.
  env.add_env_cleanup_hook(membership, drop)?;
  with_members(|m| {
    m.members.push(NativeMember {
      space,
      owner,
      waker,
    });
    Ok((m.members.len() - 1) as u32)
  })
}

/// Keeps this thread's event loop alive (`on`) while it has waiters, or lets
/// it end (`!on`) when it has none.
#[napi(catch_unwind, js_name = "sharedRef")]
#[allow(deprecated)] // refer/unref are the N-API calls we want: the TSFN is shared by Arc.
pub fn shared_ref(env: &Env, member: u32, on: bool) -> Result<()> {
  let waker = with_members(|m| Ok(m.member(member as i32)?.waker.clone()))?;
  let mut wake = waker.0.lock();
  if on {
    wake.refer(env)
  } else {
    wake.unref(env)
  }
}

/// The key id of a string key (the same on every thread), pinned for this
/// thread until `sharedUnpin`.
#[napi(catch_unwind, js_name = "sharedIntern")]
pub fn shared_intern(member: u32, key: String) -> Result<u32> {
  with_members(|m| {
    let mm = m.member(member as i32)?;
    mm.space
      .intern(mm.owner, SharedKey::Name(key))
      .map_err(space_error)
  })
}

/// A key only this thread can name (a JS symbol), pinned like `sharedIntern`.
#[napi(catch_unwind, js_name = "sharedInternPrivate")]
pub fn shared_intern_private(member: u32) -> Result<u32> {
  with_members(|m| {
    let mm = m.member(member as i32)?;
    mm.space
      .intern(mm.owner, SharedKey::private())
      .map_err(space_error)
  })
}

#[napi(catch_unwind, js_name = "sharedUnpin")]
pub fn shared_unpin(member: u32, key: u32) -> Result<()> {
  with_members(|m| {
    let mm = m.member(member as i32)?;
    mm.space.unpin(mm.owner, key);
    Ok(())
  })
}

#[napi(catch_unwind, js_name = "sharedAcquire")]
pub fn shared_acquire() -> Result<()> {
  with_members(|m| {
    let member = m.get(0)?;
    let max_pending = match m.get(1)? {
      n if n < 0 => UNLIMITED,
      n => n as u32,
    };
    let skip = m.get(2)? != 0;
    m.read_keys(3)?;
    let mm = m.member(member)?;
    let outcome = mm
      .space
      .acquire(mm.owner, &m.keys, max_pending, skip)
      .map_err(space_error)?;
    match outcome {
      Acquire::Granted => m.set(0, 0),
      Acquire::Queued(ticket) => {
        m.set(0, 1)?;
        m.set(1, ticket as i32)
      }
      Acquire::Rejected { key_index } => {
        m.set(0, 2)?;
        m.set(1, key_index as i32)
      }
    }
  })
}

/// A space operation that takes an owner's keys and fills a list of ids.
type KeysToIds =
  fn(&SharedSpace, OwnerId, &[u32], &mut Vec<u32>) -> std::result::Result<(), SpaceError>;

/// The io shape both releases share: in `member, n, key × n`; `op` fills a
/// list of ids, written out as `c, id × c`.
fn keys_in_ids_out(op: KeysToIds) -> Result<()> {
  with_members(|m| {
    let member = m.get(0)?;
    m.read_keys(1)?;
    let mut out = std::mem::take(&mut m.grants);
    out.clear();
    let mm = m.member(member)?;
    let done = op(&mm.space, mm.owner, &m.keys, &mut out);
    m.grants = out;
    done.map_err(space_error)?;
    m.write_grants(0)
  })
}

/// Releases held keys; io out: `g, ticket × g`, this thread's grants.
#[napi(catch_unwind, js_name = "sharedRelease")]
pub fn shared_release() -> Result<()> {
  keys_in_ids_out(SharedSpace::release)
}

/// Releases the keys nobody waits for; io out: `c, key × c`, the others.
#[napi(catch_unwind, js_name = "sharedReleaseIdle")]
pub fn shared_release_idle() -> Result<()> {
  keys_in_ids_out(SharedSpace::release_idle)
}

#[napi(catch_unwind, js_name = "sharedCancel")]
pub fn shared_cancel() -> Result<()> {
  with_members(|m| {
    let member = m.get(0)?;
    let ticket = m.get(1)? as u32;
    let mut grants = std::mem::take(&mut m.grants);
    grants.clear();
    let mm = m.member(member)?;
    let (outcome, blocking) = mm.space.cancel(mm.owner, ticket, &mut grants);
    m.grants = grants;
    m.set(0, (outcome == Cancel::Cancelled) as i32)?;
    m.set(1, blocking.map_or(-1, |i| i as i32))?;
    m.write_grants(2)
  })
}

/// Grants other threads made to this thread's waiters since the last call.
#[napi(catch_unwind, js_name = "sharedTakeGrants")]
pub fn shared_take_grants(member: u32) -> Result<Vec<u32>> {
  with_members(|m| {
    let mm = m.member(member as i32)?;
    let mut out = Vec::new();
    mm.space.take_grants(mm.owner, &mut out);
    Ok(out)
  })
}

#[napi(catch_unwind, js_name = "sharedIsBusy")]
pub fn shared_is_busy(member: u32, key: String) -> Result<bool> {
  with_members(|m| {
    Ok(
      m.member(member as i32)?
        .space
        .is_busy(&SharedKey::Name(key)),
    )
  })
}

#[napi(catch_unwind, js_name = "sharedIsBusyId")]
pub fn shared_is_busy_id(member: u32, key: u32) -> Result<bool> {
  with_members(|m| Ok(m.member(member as i32)?.space.is_busy_id(key)))
}

/// Whether any key of the space is held or waited on, by any thread.
#[napi(catch_unwind, js_name = "sharedBusy")]
pub fn shared_busy(member: u32) -> Result<bool> {
  with_members(|m| Ok(m.member(member as i32)?.space.busy()))
}

/// One busy key of a shared space.
#[napi(object)]
pub struct NativeSharedKeyState {
  pub id: u32,
  /// The key string; absent for a symbol key (private to one thread).
  pub name: Option<String>,
  pub waiting: u32,
}

/// Busy keys of the space with their live waiters (for `queues`).
#[napi(catch_unwind, js_name = "sharedSnapshot")]
pub fn shared_snapshot(member: u32) -> Result<Vec<NativeSharedKeyState>> {
  with_members(|m| {
    let mm = m.member(member as i32)?;
    Ok(
      mm.space
        .snapshot()
        .into_iter()
        .map(|(id, key, waiting)| NativeSharedKeyState {
          id,
          name: match key {
            SharedKey::Name(s) => Some(s),
            SharedKey::Private(_) => None,
          },
          waiting,
        })
        .collect(),
    )
  })
}
