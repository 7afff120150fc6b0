//! The Lua scripts, loaded once per client: every state change of a lock
//! is one of them, so each step is atomic on the server. Each script but
//! INSPECT is `lua/sibling.lua` and `lua/common.lua` (shared values and
//! helpers) followed by its own file. ACQUIRE and RELEASE open with their fast path (`*_fast.lua`:
//! one free name, nobody queued), which returns before common.lua reads
//! the clock, or falls through to the general path. The SEM_ twins, for
//! counted keys, have `lua/sem_common.lua` between common.lua and their file.

use redis::Script;

fn script(body: &str) -> Script {
  Script::new(body)
}

macro_rules! with_common {
  ($file:literal) => {
    concat!(
      include_str!("lua/sibling.lua"),
      "\n",
      include_str!("lua/common.lua"),
      "\n",
      include_str!($file)
    )
  };
}

macro_rules! with_fast_path {
  ($fast:literal, $file:literal) => {
    concat!(
      include_str!("lua/sibling.lua"),
      "\n",
      include_str!($fast),
      "\n",
      include_str!("lua/common.lua"),
      "\n",
      include_str!($file)
    )
  };
}

macro_rules! with_sem_common {
  ($file:literal) => {
    concat!(
      include_str!("lua/sibling.lua"),
      "\n",
      include_str!("lua/common.lua"),
      "\n",
      include_str!("lua/sem_common.lua"),
      "\n",
      include_str!($file)
    )
  };
}

pub(super) struct Scripts {
  pub(super) acquire: Script,
  pub(super) release: Script,
  pub(super) cancel: Script,
  pub(super) extend: Script,
  pub(super) inspect: Script,
  sem_acquire: Script,
  sem_release: Script,
  sem_cancel: Script,
  sem_extend: Script,
  /// SEM_ACQUIRE has been loaded on this client's connection (see
  /// `RedisLock::load_counted`).
  sem_loaded: std::sync::atomic::AtomicBool,
}

impl Scripts {
  pub(super) fn new() -> Self {
    Scripts {
      acquire: script(with_fast_path!("lua/acquire_fast.lua", "lua/acquire.lua")),
      release: script(with_fast_path!("lua/release_fast.lua", "lua/release.lua")),
      cancel: script(with_common!("lua/cancel.lua")),
      extend: script(with_common!("lua/extend.lua")),
      inspect: script(include_str!("lua/inspect.lua")),
      sem_acquire: script(with_sem_common!("lua/sem_acquire.lua")),
      sem_release: script(with_sem_common!("lua/sem_release.lua")),
      sem_cancel: script(with_sem_common!("lua/sem_cancel.lua")),
      sem_extend: script(with_sem_common!("lua/sem_extend.lua")),
      sem_loaded: std::sync::atomic::AtomicBool::new(false),
    }
  }

  /// The script to run for `script` on `keys`: its SEM_ twin when the keys
  /// are a counted lock's (`keys::is_holders_key`). A counted request runs
  /// the same protocol as a mutex one (the same replies, grant messages,
  /// retries and watchdog), so every caller names the mutex script and the
  /// keys decide, rather than every caller carrying the lock's kind.
  pub(super) fn pick<'a>(&'a self, script: &'a Script, keys: &[String]) -> &'a Script {
    if !keys.first().is_some_and(|k| super::keys::is_holders_key(k)) {
      return script;
    }
    if std::ptr::eq(script, &self.acquire) {
      &self.sem_acquire
    } else if std::ptr::eq(script, &self.release) {
      &self.sem_release
    } else if std::ptr::eq(script, &self.cancel) {
      &self.sem_cancel
    } else if std::ptr::eq(script, &self.extend) {
      &self.sem_extend
    } else {
      script
    }
  }
}

impl super::RedisLock {
  /// Loads SEM_ACQUIRE before the first counted ACQUIRE is sent (the
  /// dispatcher awaits this, in start order). As ACQUIRE is loaded when the
  /// connection is made (`conn::connect_manager`), and for the same reason:
  /// a first EVALSHA answered NOSCRIPT is retried from its own task, which
  /// would put it behind later requests and break FIFO within a process.
  /// Not on a Cluster, where ACQUIRE is not loaded up front either.
  pub(super) async fn load_counted(&self, keys: &[String]) {
    use std::sync::atomic::Ordering;
    let scripts = &self.inner.scripts;
    if !keys.first().is_some_and(|k| super::keys::is_holders_key(k))
      || scripts.sem_loaded.load(Ordering::Acquire)
    {
      return;
    }
    let Ok(mut conn) = self.conn().await else {
      return;
    };
    // A failure only costs the order of that first batch: EVALSHA still
    // falls back to loading the script.
    let loaded = match &mut conn {
      super::Conn::Single(c) => scripts.sem_acquire.load_async(c).await.is_ok(),
      super::Conn::Sentinel(c) => scripts.sem_acquire.load_async(c).await.is_ok(),
      super::Conn::Named(c) => scripts.sem_acquire.load_async(c).await.is_ok(),
      super::Conn::Cluster(_) => true,
    };
    if loaded {
      scripts.sem_loaded.store(true, Ordering::Release);
    }
  }
}

#[cfg(test)]
mod tests {
  use super::super::keys::{counted_keys, lock_keys};
  use super::*;

  /// A counted request runs the SEM_ twin of every script it names, a mutex
  /// request the script itself: the keys decide, whatever the user text.
  #[test]
  fn the_keys_pick_the_scripts() {
    let scripts = Scripts::new();
    for (space, key) in [
      ("", "a"),
      ("{billing}", "acct"),
      ("n", "{o:1}:h"),
      ("", "x}:h"),
    ] {
      let mutex = lock_keys("keyed-lock", space, key).to_vec();
      let counted = counted_keys("keyed-lock", space, key).to_vec();
      let pairs = [
        (&scripts.acquire, &scripts.sem_acquire),
        (&scripts.release, &scripts.sem_release),
        (&scripts.cancel, &scripts.sem_cancel),
        (&scripts.extend, &scripts.sem_extend),
      ];
      for (script, twin) in pairs {
        assert!(std::ptr::eq(scripts.pick(script, &mutex), script));
        assert!(std::ptr::eq(scripts.pick(script, &counted), twin));
      }
      let inspect = &scripts.inspect;
      assert!(std::ptr::eq(scripts.pick(inspect, &counted), inspect));
    }
  }
}
