-- The key of structure `letter` of the same (prefix, space, key) as `key`,
-- one of a lock's keys (docs/redis-keys.md): the letter right after the `}`
-- that ends keyed-lock's tag, so the same slot. A mutex and a counted lock of
-- one name keep different keys; each looks at the other's through this to
-- refuse a name held or waited for with another limit. First in every
-- script but INSPECT (src/redis/scripts.rs), so ACQUIRE's fast path, which
-- runs before common.lua, has it too.
local function sibling(key, letter)
  local open = string.find(key, '{', 1, true)
  local close = string.find(key, '}', open + 1, true)
  return string.sub(key, 1, close + 1) .. letter .. string.sub(key, close + 3)
end
