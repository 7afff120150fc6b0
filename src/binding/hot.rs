//! The hot entry points of the isolate reach (`acquire`, `release`,
//! `cancel`; for counted keys `semAcquireIo`, `semReleaseIo`, `semCancelIo`,
//! `semTakeGrants`, see `semaphore.rs`) and of the process reach (`processAcquire`, `processRelease`,
//! `processReleaseIdle`, `processCancel`), registered as raw N-API callbacks. They take no arguments and return `undefined`, so the
//! argument fetching and result conversion that `#[napi]` wraps around
//! every function is pure overhead here; skipping it halves the cost of a
//! contended crossing (measured in bench/crossings.js).

use std::ffi::{c_char, CString};
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use super::{to_napi_error, NativeError};

type Body = fn() -> std::result::Result<(), NativeError>;

/// Runs `body`; a failure or a panic becomes a thrown JS error, through the
/// one mapping (`to_napi_error`). Never unwinds into the engine.
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

macro_rules! raw_callback {
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

raw_callback!(raw_acquire, super::acquire_body);
raw_callback!(raw_release, super::release_body);
raw_callback!(raw_cancel, super::cancel_body);
raw_callback!(raw_process_acquire, super::process::acquire_body);
raw_callback!(raw_process_release, super::process::release_body);
raw_callback!(raw_process_release_idle, super::process::release_idle_body);
raw_callback!(raw_process_cancel, super::process::cancel_body);
raw_callback!(raw_noop, noop_body);
raw_callback!(raw_sem_acquire, super::semaphore::sem_acquire_body);
raw_callback!(raw_sem_release, super::semaphore::sem_release_body);
raw_callback!(raw_sem_cancel, super::semaphore::sem_cancel_body);
raw_callback!(raw_sem_take_grants, super::semaphore::sem_take_grants_body);

fn noop_body() -> std::result::Result<(), NativeError> {
  Ok(())
}

#[napi(module_exports)]
pub fn register_hot_paths(mut exports: Object, env: Env) -> Result<()> {
  let table: [(&str, sys::napi_callback); 12] = [
    ("acquire", Some(raw_acquire)),
    ("release", Some(raw_release)),
    ("cancel", Some(raw_cancel)),
    ("processAcquire", Some(raw_process_acquire)),
    ("processRelease", Some(raw_process_release)),
    ("processReleaseIdle", Some(raw_process_release_idle)),
    ("processCancel", Some(raw_process_cancel)),
    ("noopRaw", Some(raw_noop)),
    ("semAcquireIo", Some(raw_sem_acquire)),
    ("semReleaseIo", Some(raw_sem_release)),
    ("semCancelIo", Some(raw_sem_cancel)),
    ("semTakeGrants", Some(raw_sem_take_grants)),
  ];
  for (name, cb) in table {
    let c_name = CString::new(name).map_err(|e| Error::from_reason(e.to_string()))?;
    let mut func = ptr::null_mut();
    // SAFETY: `env` is the module's env during registration; the name is
    // NUL-terminated; `func` receives the new function.
    check_status!(unsafe {
      sys::napi_create_function(
        env.raw(),
        c_name.as_ptr() as *const c_char,
        name.len() as isize,
        cb,
        ptr::null_mut(),
        &mut func,
      )
    })?;
    // SAFETY: `func` was just created in this env.
    let value = unsafe { Unknown::from_raw_unchecked(env.raw(), func) };
    exports.set_named_property(name, value)?;
  }
  Ok(())
}
