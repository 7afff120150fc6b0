//! The one outcome vocabulary: how a request ended, as one small integer
//! that means the same in Rust, in JS (the binding exports the table as
//! `outcomeCodes()`, read once by `lib/native.js`) and in the Lua scripts of
//! the Redis reach, whose `-- Returns:` headers name each code they return
//! (checked against this table by `tests::lua_headers_match_the_table`).
//!
//! | code | name | meaning | reaches |
//! | --- | --- | --- | --- |
//! | 0 | `GRANTED` | every key was taken now | all |
//! | 1 | `QUEUED` | the request waits in every queue of its keys | all |
//! | 2 | `REJECTED` | a queue already had `maxPending` waiters; nothing changed | all |
//! | 3 | `BUSY` | try mode, and somebody holds a key; nothing changed | Redis |
//! | 4 | `HANDED_OFF` | granted by a hand-off from another holder's release or cancel | Redis |
//! | 5 | `CANCELLED` | the waiter left every queue | Redis (CANCEL) |
//! | 6 | `TIMED_OUT` | the timeout passed first; the waiter left every queue | Redis |
//!
//! In process the hand-off is not a separate answer (a grant arrives as a
//! ticket), and timeouts are JS timers, so the isolate and process io
//! layouts use codes 0–2 only.

/// How a request ended. `#[repr(i32)]`: the discriminant is the code.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
  Granted = 0,
  Queued = 1,
  Rejected = 2,
  Busy = 3,
  HandedOff = 4,
  Cancelled = 5,
  TimedOut = 6,
}

impl Outcome {
  pub const ALL: [Outcome; 7] = [
    Outcome::Granted,
    Outcome::Queued,
    Outcome::Rejected,
    Outcome::Busy,
    Outcome::HandedOff,
    Outcome::Cancelled,
    Outcome::TimedOut,
  ];

  pub const fn code(self) -> i32 {
    self as i32
  }

  /// The name JS and the Lua headers use.
  pub const fn name(self) -> &'static str {
    match self {
      Outcome::Granted => "GRANTED",
      Outcome::Queued => "QUEUED",
      Outcome::Rejected => "REJECTED",
      Outcome::Busy => "BUSY",
      Outcome::HandedOff => "HANDED_OFF",
      Outcome::Cancelled => "CANCELLED",
      Outcome::TimedOut => "TIMED_OUT",
    }
  }

  pub fn from_code(code: i64) -> Option<Outcome> {
    Outcome::ALL.into_iter().find(|o| o.code() as i64 == code)
  }

  pub fn from_name(name: &str) -> Option<Outcome> {
    Outcome::ALL.into_iter().find(|o| o.name() == name)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn codes_round_trip_and_are_dense() {
    for (i, o) in Outcome::ALL.into_iter().enumerate() {
      assert_eq!(o.code(), i as i32);
      assert_eq!(Outcome::from_code(i as i64), Some(o));
      assert_eq!(Outcome::from_name(o.name()), Some(o));
    }
    assert_eq!(Outcome::from_code(Outcome::ALL.len() as i64), None);
  }

  /// `(code, NAME)` for every `{code, ...}  NAME` line of a script's
  /// `-- Returns:` header (the leading comment block).
  fn documented(script: &str) -> Vec<(i64, String)> {
    let header = script.lines().take_while(|l| l.starts_with("--"));
    let returns = header.skip_while(|l| !l.contains("Returns"));
    returns
      .filter_map(|line| {
        let open = line.find('{')?;
        let close = open + line[open..].find('}')?;
        let digits: String = line[open + 1..close]
          .chars()
          .take_while(char::is_ascii_digit)
          .collect();
        let name: String = line[close + 1..]
          .trim_start()
          .chars()
          .take_while(|c| c.is_ascii_uppercase() || *c == '_')
          .collect();
        Some((digits.parse().ok()?, name))
      })
      .collect()
  }

  /// The Lua scripts return small integers; their headers name each one.
  /// A script whose number and name disagree with this table fails here.
  #[test]
  fn lua_headers_match_the_table() {
    let scripts = [
      ("acquire", include_str!("../redis/lua/acquire.lua"), 5),
      ("cancel", include_str!("../redis/lua/cancel.lua"), 2),
    ];
    for (name, text, at_least) in scripts {
      let lines = documented(text);
      assert!(
        lines.len() >= at_least,
        "{name}.lua documents {} outcomes: {lines:?}",
        lines.len()
      );
      for (code, word) in lines {
        let outcome = Outcome::from_name(&word)
          .unwrap_or_else(|| panic!("{name}.lua: {{{code}, ...}} names no outcome ({word:?})"));
        assert_eq!(
          outcome.code() as i64,
          code,
          "{name}.lua returns {code} for {word}, the table says {}",
          outcome.code()
        );
      }
    }
  }
}
