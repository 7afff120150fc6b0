//! The Lua scripts, loaded once per client: every state change of a lock
//! is one of them, so each step is atomic on the server. Each script but
//! INSPECT is `lua/common.lua` (shared values and helpers) followed by its
//! own file. ACQUIRE and RELEASE open with their fast path (`*_fast.lua`:
//! one free name, nobody queued), which returns before common.lua reads
//! the clock, or falls through to the general path.

use redis::Script;

fn script(body: &str) -> Script {
  Script::new(body)
}

macro_rules! with_common {
  ($file:literal) => {
    concat!(include_str!("lua/common.lua"), "\n", include_str!($file))
  };
}

macro_rules! with_fast_path {
  ($fast:literal, $file:literal) => {
    concat!(include_str!($fast), "\n", with_common!($file))
  };
}

pub(super) struct Scripts {
  pub(super) acquire: Script,
  pub(super) release: Script,
  pub(super) cancel: Script,
  pub(super) extend: Script,
  pub(super) inspect: Script,
}

impl Scripts {
  pub(super) fn new() -> Self {
    Scripts {
      acquire: script(with_fast_path!("lua/acquire_fast.lua", "lua/acquire.lua")),
      release: script(with_fast_path!("lua/release_fast.lua", "lua/release.lua")),
      cancel: script(with_common!("lua/cancel.lua")),
      extend: script(with_common!("lua/extend.lua")),
      inspect: script(include_str!("lua/inspect.lua")),
    }
  }
}
