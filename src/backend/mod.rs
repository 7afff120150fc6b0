//! Implementations of the core [`Backend`](crate::core::Backend) trait for
//! reaches that live outside the pure core. The trait, its guarantees and
//! the in-process implementation are in [`crate::core::backend`]; the
//! conformance suite that holds every implementation to them is
//! `tests/backend.rs`.

mod redis;

pub use self::redis::{RedisBackend, RedisLease, DEFAULT_TTL};
