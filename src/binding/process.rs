//! N-API layer of the process reach: forwards to [`crate::process`].
//!
//! Each JS thread that opens a space becomes one owner of it (a *member*,
//! indexed per thread). Its membership is handed to an env cleanup hook, so
//! when the worker's environment is torn down — normal exit, `terminate()`,
//! `process.exit()`, an uncaught exception — the owner leaves the space and
//! its locks pass on (see `crate::process`, *Guarantees*).
//!
//! Grants made by other threads are woken through one weak ThreadsafeFunction
//! per thread and space: JS refs it while the thread has waiters and unrefs
//! it when it has none, so an idle thread's event loop is free to end.
//!
//! The hot calls (`processAcquire`, `processRelease`, `processReleaseIdle`,
//! `processCancel`) are raw callbacks (`hot.rs`) over the thread's one io
//! buffer, with the isolate reach's layouts (`binding` module docs) and a
//! member index where the isolate reach has a table id.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use super::{
  acquire_request, io_range, io_slots, load, napi_failure, release_request, with_keys, with_thread,
  write_acquired, write_cancelled, write_ids, Code, NativeError, NativeResult, NativeThread,
};
use crate::process::{OwnerId, ProcessKey, ProcessSpace, SpaceError, Waker};

/// Called with no arguments on the owner's thread; weak (does not keep the
/// event loop alive) until JS refs it.
type WakeFn = ThreadsafeFunction<(), Unknown<'static>, (), Status, false, true>;

/// The waker of one thread in one space. No lock around the TSFN: a releaser
/// on another thread calls it while this thread refs and unrefs it, and a
/// lock there made the woken thread block on the releaser whenever the
/// kernel switched to it in the middle of `call` (the eventfd write wakes
/// it), which cost about 9 µs per hand-off on 2 cores. `call` is safe from
/// any thread; ref and unref are made from the owner's thread only
/// ([`process_ref`]).
struct NativeWaker(WakeFn);

impl Waker for NativeWaker {
  fn wake(&self) {
    // `Closing` means the thread's env is going away: its cleanup hook
    // releases whatever this grant gave it, so the status can be ignored.
    let _ = self.0.call((), ThreadsafeFunctionCallMode::NonBlocking);
  }
}

/// This thread's place in one space.
pub(super) struct NativeMember {
  pub(super) space: Arc<ProcessSpace>,
  pub(super) owner: OwnerId,
  waker: Arc<NativeWaker>,
}

pub(super) fn member(members: &[NativeMember], index: i32) -> NativeResult<&NativeMember> {
  usize::try_from(index)
    .ok()
    .and_then(|i| members.get(i))
    .ok_or(NativeError::NoMember(index))
}

/// Runs `f` on member `index` of this thread.
pub(super) fn with_member<T>(
  index: u32,
  f: impl FnOnce(&NativeMember) -> std::result::Result<T, SpaceError>,
) -> Result<T, Code> {
  Ok(with_thread(|t| Ok(f(member(&t.members, index as i32)?)?))?)
}

/// Joins the process-wide space `name` for this thread; returns the member
/// index the other calls take. `wake` is called (on this thread) when
/// another thread granted one of this thread's waiters. `permits` (default
/// 1) must be the space's: a space opened with another limit throws
/// `KEYED_LOCK_PERMITS` and joins nothing (`process_counted.rs`).
#[napi(
  catch_unwind,
  js_name = "processOpen",
  ts_args_type = "name: string, wake: () => void, permits?: number"
)]
pub fn process_open(
  env: &Env,
  name: String,
  wake: WakeFn,
  permits: Option<u32>,
) -> Result<u32, Code> {
  let space = ProcessSpace::open(&name, permits.unwrap_or(1)).map_err(NativeError::from)?;
  let waker = Arc::new(NativeWaker(wake));
  let membership = space.membership(waker.clone());
  let owner = membership.owner();
  // The hook owns the membership: tearing the env down (worker exit,
  // terminate, process.exit, uncaught exception) leaves the space, which
  // releases this thread's holds and cancels its waiters.
  env
    .add_env_cleanup_hook(membership, drop)
    .map_err(napi_failure)?;
  Ok(with_thread(|t| {
    t.members.push(NativeMember {
      space,
      owner,
      waker,
    });
    Ok((t.members.len() - 1) as u32)
  })?)
}

/// Keeps this thread's event loop alive (`on`) while it has waiters, or lets
/// it end (`!on`) when it has none.
#[napi(catch_unwind, js_name = "processRef")]
pub fn process_ref(env: &Env, member: u32, on: bool) -> Result<(), Code> {
  let waker = with_member(member, |m| Ok(m.waker.clone()))?;
  let tsfn = &waker.0;
  // Aborted: the env is being torn down and the TSFN is gone.
  if tsfn.aborted() {
    return Ok(());
  }
  // SAFETY: `env` is the env of this call, on the thread that created the
  // TSFN, and the TSFN is alive: it is only finalized when this env is torn
  // down (then `aborted()` is true, and no JS runs on this thread any more).
  // N-API allows ref/unref from the owner's thread while other threads call
  // the TSFN. napi-rs's own `referred` flag goes stale, but only its
  // `refer`/`unref`, never used on this TSFN, read it.
  let status = unsafe {
    if on {
      napi::sys::napi_ref_threadsafe_function(env.raw(), tsfn.raw())
    } else {
      napi::sys::napi_unref_threadsafe_function(env.raw(), tsfn.raw())
    }
  };
  if status == napi::sys::Status::napi_ok {
    Ok(())
  } else {
    Err(napi_failure(Error::from_status(Status::from(status))))
  }
}

/// The key id of a string key (the same on every thread), pinned for this
/// thread until `processUnpin`.
#[napi(catch_unwind, js_name = "processIntern")]
pub fn process_intern(member: u32, key: String) -> Result<u32, Code> {
  with_member(member, |m| m.space.intern(m.owner, ProcessKey::Name(key)))
}

/// A key only this thread can name (a JS symbol), pinned like `processIntern`.
#[napi(catch_unwind, js_name = "processInternPrivate")]
pub fn process_intern_private(member: u32) -> Result<u32, Code> {
  with_member(member, |m| m.space.intern(m.owner, ProcessKey::private()))
}

#[napi(catch_unwind, js_name = "processUnpin")]
pub fn process_unpin(member: u32, key: u32) -> Result<(), Code> {
  with_member(member, |m| {
    m.space.unpin(m.owner, key);
    Ok(())
  })
}

pub(super) fn acquire_body() -> NativeResult<()> {
  with_thread(|t| {
    let NativeThread {
      members, io, keys, ..
    } = t;
    let io = io_slots(io)?;
    let (index, max_pending, skip, key_slots) = acquire_request(io)?;
    let m = member(members, index)?;
    let acquired = with_keys(key_slots, keys, |ks| {
      m.space.acquire(m.owner, ks, max_pending, skip)
    })?;
    write_acquired(io, acquired);
    Ok(())
  })
}

/// A space operation that takes an owner's keys and fills a list of ids.
type KeysToIds =
  fn(&ProcessSpace, OwnerId, &[u32], &mut Vec<u32>) -> std::result::Result<(), SpaceError>;

/// The io shape both releases share: in `member, n, key × n`; `op` fills a
/// list of ids, written out as `c, id × c`.
fn keys_in_ids_out(op: KeysToIds) -> NativeResult<()> {
  with_thread(|t| {
    let NativeThread {
      members,
      io,
      keys,
      grants,
      ..
    } = t;
    let io = io_slots(io)?;
    let (index, key_slots) = release_request(io)?;
    let m = member(members, index)?;
    grants.clear();
    with_keys(key_slots, keys, |ks| op(&m.space, m.owner, ks, grants))?;
    write_ids(io, 0, grants)
  })
}

/// Releases held keys; io out: `g, ticket × g`, this thread's grants.
pub(super) fn release_body() -> NativeResult<()> {
  keys_in_ids_out(ProcessSpace::release)
}

/// Releases the keys nobody waits for; io out: `c, key × c`, the others.
pub(super) fn release_idle_body() -> NativeResult<()> {
  keys_in_ids_out(ProcessSpace::release_idle)
}

pub(super) fn cancel_body() -> NativeResult<()> {
  with_thread(|t| {
    let NativeThread {
      members,
      io,
      grants,
      ..
    } = t;
    let io = io_slots(io)?;
    let head = io_range(io, 0, 2)?;
    let ticket = load(&head[1]) as u32;
    let m = member(members, load(&head[0]))?;
    grants.clear();
    let (cancel, blocking) = m.space.cancel(m.owner, ticket, grants);
    write_cancelled(io, cancel, blocking, grants)
  })
}

/// Grants other threads made to this thread's waiters since the last call.
#[napi(catch_unwind, js_name = "processTakeGrants")]
pub fn process_take_grants(member: u32) -> Result<Vec<u32>, Code> {
  with_member(member, |m| {
    let mut out = Vec::new();
    m.space.take_grants(m.owner, &mut out);
    Ok(out)
  })
}

#[napi(catch_unwind, js_name = "processIsBusy")]
pub fn process_is_busy(member: u32, key: String) -> Result<bool, Code> {
  with_member(member, |m| Ok(m.space.is_busy(&ProcessKey::Name(key))))
}

#[napi(catch_unwind, js_name = "processIsBusyId")]
pub fn process_is_busy_id(member: u32, key: u32) -> Result<bool, Code> {
  with_member(member, |m| Ok(m.space.is_busy_id(key)))
}

/// Whether any key of the space is held or waited on, by any thread.
#[napi(catch_unwind, js_name = "processBusy")]
pub fn process_busy(member: u32) -> Result<bool, Code> {
  with_member(member, |m| Ok(m.space.busy()))
}

/// One busy key of a process space.
#[napi(object)]
pub struct NativeProcessKeyState {
  pub id: u32,
  /// The key string; absent for a symbol key (private to one thread).
  pub name: Option<String>,
  pub waiting: u32,
}

/// Busy keys of the space with their live waiters (for `queues`).
#[napi(catch_unwind, js_name = "processSnapshot")]
pub fn process_snapshot(member: u32) -> Result<Vec<NativeProcessKeyState>, Code> {
  with_member(member, |m| {
    Ok(
      m.space
        .snapshot()
        .into_iter()
        .map(|(id, key, waiting)| NativeProcessKeyState {
          id,
          name: match key {
            ProcessKey::Name(s) => Some(s),
            ProcessKey::Private(_) => None,
          },
          waiting,
        })
        .collect(),
    )
  })
}
