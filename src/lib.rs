//! keylock: keyed FIFO locks for Node.js.
//!
//! [`core`] is the queue model, free of N-API, with its guarantees in its
//! docs. `binding` is the thin napi-rs layer over it; the JavaScript faces
//! (`index.js`, `alock.js`) sit on top of that.
//! Every reach implements the core's one [`core::Backend`] trait (the Redis
//! reach in [`backend`]), so their shared guarantees are proved by one suite,
//! `tests/backend.rs`.
#![deny(clippy::all)]

pub mod backend;
pub mod core;
pub mod redis;
pub mod shared;

// napi-derive registers the exports only outside `cfg(test)`, so the unit-test
// build sees them as unused.
#[cfg_attr(test, allow(dead_code))]
mod binding;
