-- CANCEL: a waiter gives up (timeout, abort, close). If the grant raced the
-- cancel, the waiter keeps it (it is told so) and nothing is lost; else it
-- leaves every queue, and a lease it was keeping reserved passes on.
-- KEYS: lease, meta, queue, waiters per name (see common.lua), then the
--       ticket counter.
-- ARGV: prefix, waiter id.
-- Returns (outcome codes: src/core/outcome.rs, checked by its tests):
--          {4, token per name, pttl}   HANDED_OFF: granted after all (by a
--                                      hand-off; the leases have pttl ms
--                                      left, the least)
--          {5}                         CANCELLED
local prefix, id = ARGV[1], ARGV[2]
local n = names_in_keys()
local held = held_tokens(id, 4)
if held then return held end
for i = 1, n do
  redis.call('ZREM', KEYS[4 * i - 1], id)
  redis.call('HDEL', KEYS[4 * i], id)
end
for i = 1, n do
  if redis.call('EXISTS', KEYS[4 * i - 3]) == 0 then promote(prefix, i) end
end
return { 5 }
