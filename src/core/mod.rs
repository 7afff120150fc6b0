//! The queue model shared by every face and reach of keyed-lock: keyed FIFO
//! queues with all-or-nothing multi-key acquisition. Pure Rust: no N-API, no
//! tokio, no I/O.
//!
//! A [`Table`] is one lock space. Keys are small integers ([`KeyId`]) that
//! the caller interns; a waiter is a [`TicketId`] handed out by the table.
//! Holders are not tickets: a hold is released by naming its keys, which is
//! what lets the uncontended path run without the table (see *Key words*).
//!
//! The core also holds the two vocabularies every reach speaks: the
//! [`Outcome`] codes (shared with JS and the Lua scripts) and the
//! [`ErrorCode`]s that become `err.code` in JS.
//!
//! Which reach runs on what: the isolate reach is a [`Table`] per
//! `AsyncLock`, driven by `crate::binding` through the io buffer; the
//! process reach is a [`Table`] (or a [`Semaphores`] for `permits > 1`)
//! behind a mutex (`crate::process`); the Redis reach keeps the same model
//! in Redis keys and Lua scripts (`crate::redis`). There is no Rust trait
//! over them: nothing calls the reaches generically. `tests/conformance.rs`
//! runs one scenario suite over all three as shipped, and names each
//! documented difference.
//!
//! # Guarantees
//!
//! - **FIFO per key.** Waiters on one key are granted in the order they were
//!   enqueued; a release hands the key straight to the queue head, so a
//!   newcomer can never barge past a waiter. `skip_queue` is the only way to
//!   the front (several skippers: the last one first, as async-lock does).
//!   Proved by `tests::fifo_single_key`, `tests::skip_queue_goes_to_front`
//!   and the property test in `tests/model.rs`.
//! - **All-or-nothing multi-key.** A request for several keys is enqueued on
//!   every key in one step and granted only when it heads every one of its
//!   queues and all its keys are free. Two requests that share keys therefore
//!   stand in the same relative order in every queue they share, so no cycle
//!   of waiters can form and opposite key orders (`[a,b]` vs `[b,a]`) never
//!   deadlock. Proved by `tests::opposite_orders_do_not_deadlock` and the
//!   property test (after every operation, no waiter is grantable).
//! - **No lost wake-up.** After every call, no waiting ticket is grantable:
//!   every transition that frees a key or removes a queue head re-examines
//!   the new head. Proved by the property test's invariant check.
//! - **Exclusion.** A key is held by at most one request at a time: a grant
//!   is only made to a request all of whose keys are free. Proved by the
//!   property test (the table's holders agree with the model's after every
//!   step) and, across threads, by `process::tests::exclusion_across_threads`.
//!
//! # Counted keys
//!
//! [`Semaphores`] is the same queue model for keys that admit several
//! holders (a keyed weighted semaphore, and a read/write lock as weights 1
//! and `permits`): grants strictly in queue order while the head fits, one
//! release may grant several heads. Its own module docs give its key words;
//! docs/semaphores.md gives the API built on it. A one-permit lock stays on
//! [`Table`]. Both keep their waiters with the same bookkeeping (ticket
//! slots, lazy cancellation, queue clean-up: `tickets.rs`) and grow their
//! words alike; they differ only in what a ticket asks for and when it fits.
//!
//! # Cancellation
//!
//! [`Table::cancel`] removes a waiting ticket from every queue it stands in.
//! If that ticket was what kept a free key's queue from moving (a multi-key
//! head waiting for another key), the next head is granted in the same call,
//! so a cancelled or timed-out waiter never swallows a grant. Cancelling a
//! ticket that was already granted returns [`Cancel::NotWaiting`] and changes
//! nothing: the grant stands and the caller must release it
//! (`tests::cancel_after_grant_is_a_no_op`).
//!
//! # Capacity
//!
//! [`Table::acquire`] refuses a request when one of its keys is busy and
//! already has `max_pending` live waiters ([`Acquire::Rejected`] names the
//! first such key; nothing changes). Cancelled waiters do not count.
//! `max_pending` of [`UNLIMITED`] means no limit; 0 is a try, refused on
//! any busy key (`tests::max_pending_zero_refuses_any_waiter_but_not_an_idle_key`,
//! `tests::rejection_names_the_full_key_and_changes_nothing`).
//!
//! # Errors
//!
//! Misuse by the table's owner (no keys, a key twice, a key out of range, a
//! release of a key not held) is a [`CoreError`], never a panic and never
//! a partial change (`tests::misuse_is_an_error_not_a_panic`). Its
//! [`ErrorCode`] is what JS sees as `err.code`.
//!
//! # Memory
//!
//! A key costs queue memory only while it is held or waited on: when its last
//! live waiter leaves, the queue's buffer is freed
//! (`tests::queue_memory_is_returned`). A waiter costs one `u32` in each of
//! its queues plus one ticket slot; ticket slots are reused.
//!
//! # Key words
//!
//! Each key has a word in a [`Words`] array that the owner of the table may
//! read and write without calling it, on one thread:
//!
//! | word | meaning | who may change it |
//! | --- | --- | --- |
//! | `IDLE` (0) | not held, nobody waits, the table has no queue for it | caller: `IDLE → HELD` to take it (fast acquire) |
//! | `HELD` (1) | held, nobody waits | caller: `HELD → IDLE` to release it (fast release); the table: `HELD → CONTENDED` on a new waiter |
//! | `CONTENDED` (2) | the table holds the truth: a queue with live waiters, the key held or not | only the table |
//!
//! The invariant that prevents lost wake-ups: a key has live waiters if and
//! only if its word is `CONTENDED`, so a release that sees `HELD` can skip
//! the table because there is nobody to wake, and a release that sees
//! `CONTENDED` must go through [`Table::release`]. [`Table::fast_acquire`]
//! and [`Table::fast_release`] are the same transitions done through the
//! table, used by tests and by callers that have no direct access to the
//! words.

mod error;
mod outcome;
mod semaphore;
mod table;
mod tickets;

pub use error::{Coded, CoreError, ErrorCode};
pub use outcome::Outcome;
pub use semaphore::{Semaphores, MAX_PERMITS, SEM_CONTENDED};
pub use table::{Acquire, Cancel, KeyId, Table, TicketId, Words, UNLIMITED};

/// A key word value: not held, nobody waits.
pub const IDLE: i32 = 0;
/// A key word value: held, nobody waits.
pub const HELD: i32 = 1;
/// A key word value: the table tracks waiters for this key.
pub const CONTENDED: i32 = 2;
