//! keyed-lock: keyed FIFO locks for Node.js, one queue model with three reaches.
//!
//! | module | what it is | its guarantees and tests |
//! | --- | --- | --- |
//! | [`core`] | the queue model ([`core::Table`]), the outcome codes and the error codes; pure Rust, no N-API, no tokio | `core` docs; unit tests, `tests/model.rs` (property test against a trivially correct model) |
//! | [`process`] | the process reach: one table per name shared by every thread of the process | `process` docs; its unit tests |
//! | [`redis`] | the Redis reach: the same model in Redis keys and Lua scripts, on tokio | `redis` docs; `__test__/redis-*.test.js` |
//! | `binding` | the only place N-API is used: one io buffer per thread, one error mapping, a file per reach | — |
//!
//! `tests/conformance.rs` runs one scenario suite (FIFO, multi-key
//! all-or-nothing, cancel racing a grant, `maxPending`, `skipQueue`, tokens,
//! busy, close) against the three reaches as they ship, naming each
//! documented difference.
#![deny(clippy::all)]

pub mod core;
pub mod process;
pub mod redis;

// napi-derive registers the exports only outside `cfg(test)`, so the unit-test
// build sees them as unused.
#[cfg_attr(test, allow(dead_code))]
mod binding;
