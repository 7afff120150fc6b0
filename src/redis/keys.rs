//! The Redis key names of the Redis reach: an injective encoding of
//! (prefix, space, key) into the four keys of a lock (lease, meta, queue,
//! waiters), with the Cluster hash tag chosen by keyed-lock, not found inside
//! user text. `docs/redis-keys.md` is the specification; this file
//! implements it and its tests check it.
//!
//! A lock key is `P:{T}:k` or `P:{T}:k:I`, where
//! - `P` is the prefix with `%` and `{` percent-escaped, so the first `{` of
//!   every key is keyed-lock's own;
//! - `I` (the identity) is the space with `%` and `:` escaped, a `:`, then
//!   the key as given: the first `:` of `I` ends the space;
//! - `k` is one letter naming the structure: `l` lease, `m` meta, `q`
//!   queue, `w` waiters; a counted lock's `h` holders, `o` queue, `p`
//!   waiters (with the same `m`);
//! - `T` is the user's hash tag when the space (first) or the key carries
//!   one by Redis's rule (`'{billing}'`, `'{order:42}:items'`), and the key
//!   is then `P:{T}:k:I`; else the key is `P:{E}:k` with `E` = `I` with `%`
//!   and `}` escaped, so the whole identity is the tag.
//!
//! Redis hashes the bytes between the first `{` and the next `}`: that is
//! `T` (which never holds a `}`) or `E` (escaped), never empty, so the four
//! keys of a lock share one slot, and keys that share a user tag share it
//! with the user's own `{tag}` keys. Every key parses back: `P` ends at the
//! first `{`, `T`/`E` at the next `}`, then `:k` ends the key (`E` form) or
//! `:k:` is followed by `I` (tag form).

/// The Redis structures of one lock: four for a mutex, four for a counted
/// lock (`permits` > 1, docs/semaphores.md), which shares the mutex's meta
/// (so tokens increase across both) and has its own holders, queue and
/// waiters (their values have other layouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
  Lease,
  Meta,
  Queue,
  Waiters,
  /// Counted: the limit and every holder's lease.
  Holders,
  /// Counted: the FIFO queue.
  CountedQueue,
  /// Counted: the waiters' records.
  CountedWaiters,
}

impl Part {
  pub const ALL: [Part; 7] = [
    Part::Lease,
    Part::Meta,
    Part::Queue,
    Part::Waiters,
    Part::Holders,
    Part::CountedQueue,
    Part::CountedWaiters,
  ];
  /// A mutex's keys, in the order its scripts take them.
  pub const MUTEX: [Part; 4] = [Part::Lease, Part::Meta, Part::Queue, Part::Waiters];
  /// A counted lock's keys, in the order its scripts take them.
  pub const COUNTED: [Part; 4] = [
    Part::Holders,
    Part::Meta,
    Part::CountedQueue,
    Part::CountedWaiters,
  ];

  fn letter(self) -> char {
    match self {
      Part::Lease => 'l',
      Part::Meta => 'm',
      Part::Queue => 'q',
      Part::Waiters => 'w',
      Part::Holders => 'h',
      Part::CountedQueue => 'o',
      Part::CountedWaiters => 'p',
    }
  }
}

/// Percent-escapes `%` and every byte of `special` (all ASCII).
fn escape(text: &str, special: &[u8]) -> String {
  let mut out = String::with_capacity(text.len());
  for c in text.chars() {
    if c == '%' || (c.is_ascii() && special.contains(&(c as u8))) {
      out.push_str(&format!("%{:02X}", c as u32));
    } else {
      out.push(c);
    }
  }
  out
}

/// The prefix as it starts every key: no `{` of its own.
fn prefix_part(prefix: &str) -> String {
  escape(prefix, b"{")
}

/// The identity of a lock: the space (escaped, so its first `:` is ours)
/// and the key. An empty space is the space of locks without a `name`.
fn identity(space: &str, key: &str) -> String {
  let mut out = escape(space, b":");
  out.push(':');
  out.push_str(key);
  out
}

/// The hash tag Redis Cluster finds in `text` alone: the bytes between its
/// first `{` and the next `}`, when there are some.
pub fn user_tag(text: &str) -> Option<&str> {
  let open = text.find('{')?;
  let len = text[open + 1..].find('}')?;
  (len > 0).then(|| &text[open + 1..open + 1 + len])
}

/// The Redis key of structure `part` of the lock (`prefix`, `space`, `key`).
pub fn lock_key(prefix: &str, space: &str, key: &str, part: Part) -> String {
  let id = identity(space, key);
  let p = prefix_part(prefix);
  let k = part.letter();
  match user_tag(space).or_else(|| user_tag(key)) {
    Some(tag) => format!("{p}:{{{tag}}}:{k}:{id}"),
    None => format!("{p}:{{{}}}:{k}", escape(&id, b"}")),
  }
}

/// The four keys of a lock, in the order the scripts take them.
pub fn lock_keys(prefix: &str, space: &str, key: &str) -> [String; 4] {
  Part::MUTEX.map(|part| lock_key(prefix, space, key, part))
}

/// The four keys of a counted lock, in the order the SEM_ scripts take them.
pub fn counted_keys(prefix: &str, space: &str, key: &str) -> [String; 4] {
  Part::COUNTED.map(|part| lock_key(prefix, space, key, part))
}

/// Whether a full key (one this file made) is a counted lock's holders
/// key: its structure letter, right after the `}` that ends keyed-lock's
/// tag, is `h`. It picks the SEM_ twin of a script (see `Scripts::pick`).
pub fn is_holders_key(full: &str) -> bool {
  let Some(open) = full.find('{') else {
    return false;
  };
  let Some(close) = full[open..].find('}') else {
    return false;
  };
  let rest = &full.as_bytes()[open + close + 1..];
  rest.len() >= 2 && rest[0] == b':' && rest[1] == b'h' && (rest.len() == 2 || rest[2] == b':')
}

/// The lease key of a lock (what `inspect` and the tests read).
pub fn lease_key(prefix: &str, space: &str, key: &str) -> String {
  lock_key(prefix, space, key, Part::Lease)
}

/// The waiter-ticket counter. On a single Redis one per prefix; on a
/// Cluster one per slot (every key of a request is in one slot, and every
/// request that shares a queue draws from the same counter, so two
/// waiters are in the same order in every queue they share).
pub fn ticket_key(prefix: &str, slot: Option<u16>) -> String {
  let p = prefix_part(prefix);
  match slot {
    Some(slot) => format!("{p}:{{{}}}:tkt", tag_of_slot(slot)),
    None => format!("{p}:tkt"),
  }
}

/// CRC16/XMODEM, the checksum Redis Cluster maps keys to slots with.
pub fn crc16(bytes: &[u8]) -> u16 {
  let mut crc: u16 = 0;
  for &b in bytes {
    crc ^= u16::from(b) << 8;
    for _ in 0..8 {
      crc = if crc & 0x8000 != 0 {
        (crc << 1) ^ 0x1021
      } else {
        crc << 1
      };
    }
  }
  crc
}

/// The part of a full Redis key that Redis Cluster hashes: the bytes
/// between the first `{` and the next `}` when there are some, else the
/// whole key.
pub fn hash_tag(key: &str) -> &str {
  user_tag(key).unwrap_or(key)
}

/// The cluster slot of a full Redis key.
pub fn slot(key: &str) -> u16 {
  crc16(hash_tag(key).as_bytes()) % 16384
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
  let mut i = buf.len();
  loop {
    i -= 1;
    buf[i] = b'0' + (n % 10) as u8;
    n /= 10;
    if n == 0 {
      return &buf[i..];
    }
  }
}

/// The smallest decimal number whose text hashes to `slot`: a tag for the
/// keys keyed-lock keeps per slot. Found once for all slots (about 170,000
/// checksums of a few bytes).
fn tag_of_slot(slot: u16) -> u32 {
  static TABLE: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
  let table = TABLE.get_or_init(|| {
    let mut table = vec![u32::MAX; 16384];
    let mut missing = table.len();
    let mut n: u32 = 0;
    let mut digits = [0u8; 10];
    while missing > 0 {
      let text = decimal(n, &mut digits);
      let s = usize::from(crc16(text) % 16384);
      if table[s] == u32::MAX {
        table[s] = n;
        missing -= 1;
      }
      n += 1;
    }
    table
  });
  table[usize::from(slot % 16384)]
}

#[cfg(test)]
mod tests {
  use super::*;
  use proptest::prelude::*;

  /// Parses a lock key back to (prefix, space, key, part): the encoding is
  /// injective because this inverse exists.
  fn parse(full: &str) -> Option<(String, String, String, char)> {
    fn unescape(text: &str) -> Option<String> {
      let bytes = text.as_bytes();
      let mut out = Vec::with_capacity(bytes.len());
      let mut i = 0;
      while i < bytes.len() {
        if bytes[i] == b'%' {
          let hex = text.get(i + 1..i + 3)?;
          out.push(u8::from_str_radix(hex, 16).ok()?);
          i += 3;
        } else {
          out.push(bytes[i]);
          i += 1;
        }
      }
      String::from_utf8(out).ok()
    }
    let open = full.find('{')?;
    let prefix = unescape(full.get(..open.checked_sub(1)?)?)?;
    if full.as_bytes()[open - 1] != b':' {
      return None;
    }
    let close = open + 1 + full[open + 1..].find('}')?;
    let rest = &full[close + 1..];
    let mut chars = rest.chars();
    if chars.next()? != ':' {
      return None;
    }
    let part = chars.next()?;
    let tail = chars.as_str();
    let id = if tail.is_empty() {
      unescape(&full[open + 1..close])?
    } else {
      tail.strip_prefix(':')?.to_string()
    };
    let colon = id.find(':')?;
    let space = unescape(&id[..colon])?;
    Some((prefix, space, id[colon + 1..].to_string(), part))
  }

  #[test]
  fn the_issue_pairs_are_distinct_locks() {
    let k = |p: &str, s: &str, key: &str| lease_key(p, s, key);
    assert_ne!(k("keyed-lock", "", "a"), k("keyed-lock", "", "{a}"));
    assert_ne!(k("keyed-lock:app", "", "t"), k("keyed-lock", "", "app:{t}"));
    assert_ne!(k("keyed-lock", "a", "b:c"), k("keyed-lock", "a:b", "c"));
    assert_ne!(
      k("keyed-lock", "{billing}", "acct"),
      k("keyed-lock", "{billing}", "acct:q")
    );
    for part in Part::ALL {
      for evil in [
        "{v}:q", "{v}:m", "{v}:w", "{v}:h", "v}:q", "v}:h", "v:q", ":v",
      ] {
        assert_ne!(
          lock_key("keyed-lock", "", "v", part),
          lease_key("keyed-lock", "", evil)
        );
      }
    }
  }

  #[test]
  fn readable_examples() {
    assert_eq!(lease_key("keyed-lock", "", "a"), "keyed-lock:{:a}:l");
    assert_eq!(lease_key("keyed-lock", "n", "k"), "keyed-lock:{n:k}:l");
    assert_eq!(
      lock_key("keyed-lock", "", "{order:42}:items", Part::Queue),
      "keyed-lock:{order:42}:q::{order:42}:items"
    );
    assert_eq!(
      lease_key("keyed-lock", "{billing}", "acct"),
      "keyed-lock:{billing}:l:{billing}:acct"
    );
    assert_eq!(lease_key("a{b", "", "c}d"), "a%7Bb:{:c%7Dd}:l");
    assert_eq!(ticket_key("keyed-lock", None), "keyed-lock:tkt");
  }

  #[test]
  fn documented_cluster_tags_hold() {
    // Keys sharing a {tag} share a slot, and it is the slot of the user's
    // own keys with that tag.
    let items = slot(&lease_key("keyed-lock", "", "{order:42}:items"));
    assert_eq!(
      items,
      slot(&lease_key("keyed-lock", "", "{order:42}:total"))
    );
    assert_eq!(items, slot("{order:42}"));
    // A name such as '{billing}' tags every key of the lock.
    assert_eq!(
      slot(&lease_key("keyed-lock", "{billing}", "a")),
      slot(&lease_key("keyed-lock", "{billing}", "zzz"))
    );
    // Every structure of a lock is in the lease's slot, and so is the
    // counter of that slot.
    for (s, k) in [("", "a"), ("n", "odd{}name"), ("", "x}y{"), ("{t}", "k")] {
      let keys = lock_keys("keyed-lock", s, k);
      let want = slot(&keys[0]);
      assert!(keys.iter().all(|key| slot(key) == want));
      assert_eq!(slot(&ticket_key("keyed-lock", Some(want))), want);
    }
  }

  #[test]
  fn every_slot_has_a_counter_in_it() {
    for s in [0u16, 1, 866, 12182, 16383] {
      let key = ticket_key("keyed-lock", Some(s));
      assert_eq!(slot(&key), s, "{key}");
    }
    let mut buf = [0u8; 10];
    assert_eq!(decimal(0, &mut buf), b"0");
    assert_eq!(decimal(u32::MAX, &mut buf), b"4294967295");
  }

  #[test]
  fn slots_follow_redis_cluster_hashing() {
    // Values from the Redis Cluster specification.
    assert_eq!(crc16(b"123456789"), 0x31c3);
    assert_eq!(slot("foo"), 12182);
    assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
    assert_eq!(hash_tag("foo{}{bar}"), "foo{}{bar}");
    assert_eq!(hash_tag("foo{{bar}}zap"), "{bar");
    assert_eq!(hash_tag("foo{bar}{zap}"), "bar");
  }

  fn text() -> impl Strategy<Value = String> {
    // Braces, colons, percent signs and the structure letters are the
    // characters that could confuse a parser; any other Unicode scalar
    // (no surrogates: a Rust String cannot hold one) too.
    prop::collection::vec(
      prop_oneof![
        4 => prop::sample::select(vec!['{', '}', ':', '%', 'l', 'm', 'q', 'w', 'h', 'o', 'p', 't', 'k', '7', 'B', 'D']),
        1 => any::<char>(),
      ],
      0..12,
    )
    .prop_map(|cs| cs.into_iter().collect())
  }

  proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_key_parses_back(prefix in text(), space in text(), key in text()) {
      for part in Part::ALL {
        let full = lock_key(&prefix, &space, &key, part);
        prop_assert_eq!(
          parse(&full),
          Some((prefix.clone(), space.clone(), key.clone(), part.letter()))
        );
        // The script twin is chosen by this: never fooled by user text.
        prop_assert_eq!(is_holders_key(&full), part == Part::Holders);
      }
    }

    #[test]
    fn distinct_triples_never_share_a_key(
      a in (text(), text(), text()),
      b in (text(), text(), text()),
    ) {
      let keys_a: Vec<String> = Part::ALL.iter().map(|&p| lock_key(&a.0, &a.1, &a.2, p)).collect();
      let keys_b: Vec<String> = Part::ALL.iter().map(|&p| lock_key(&b.0, &b.1, &b.2, p)).collect();
      for (i, x) in keys_a.iter().enumerate() {
        for (j, y) in keys_b.iter().enumerate() {
          if a != b || i != j {
            prop_assert_ne!(x, y);
          }
        }
        // Nor a counter.
        prop_assert_ne!(x, &ticket_key(&b.0, None));
        prop_assert_ne!(x, &ticket_key(&b.0, Some(slot(x))));
      }
    }

    #[test]
    fn moving_text_between_components_changes_the_lock(
      whole in text(),
      cuts in (0usize..14, 0usize..14, 0usize..14, 0usize..14),
    ) {
      // The same characters split into (prefix, space, key) two ways: the
      // aliasing the issue found came from exactly this.
      let chars: Vec<char> = whole.chars().collect();
      let split = |a: usize, b: usize| {
        let (a, b) = (a.min(chars.len()), b.min(chars.len()));
        let (a, b) = (a.min(b), a.max(b));
        let s = |r: std::ops::Range<usize>| chars[r].iter().collect::<String>();
        (s(0..a), s(a..b), s(b..chars.len()))
      };
      let x = split(cuts.0, cuts.1);
      let y = split(cuts.2, cuts.3);
      if x != y {
        for part in Part::ALL {
          prop_assert_ne!(lock_key(&x.0, &x.1, &x.2, part), lock_key(&y.0, &y.1, &y.2, part));
        }
      }
    }

    #[test]
    fn one_lock_is_one_slot(prefix in text(), space in text(), key in text()) {
      let keys = lock_keys(&prefix, &space, &key);
      let want = slot(&keys[0]);
      prop_assert!(keys.iter().all(|k| slot(k) == want));
      // The tag keyed-lock chose is the one Redis hashes.
      if let Some(tag) = user_tag(&space).or_else(|| user_tag(&key)) {
        prop_assert_eq!(hash_tag(&keys[0]), tag);
      }
    }
  }
}
