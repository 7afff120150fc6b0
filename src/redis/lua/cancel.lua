-- CANCEL: a waiter gives up (timeout, abort, close). If the grant raced the
-- cancel, the waiter keeps it (it is told so) and nothing is lost; else it
-- leaves every queue, and a lease it was keeping reserved passes on.
-- KEYS: lease, meta, queue, waiters per name (see common.lua), then P:tkt.
-- ARGV: prefix, waiter id.
-- Returns: {1, token per name} granted after all (by a hand-off: the lease
--          started at most CLAIM_MS long); {0} cancelled.
local prefix, id = ARGV[1], ARGV[2]
local n = names_in_keys()
local mine = true
for i = 1, n do
  if not owns(redis.call('GET', KEYS[4 * i - 3]), id) then
    mine = false
    break
  end
end
if mine then
  local out = { 1 }
  for i = 1, n do
    out[i + 1] = tonumber(redis.call('HGET', KEYS[4 * i - 2], 'fence') or '0')
  end
  return out
end
for i = 1, n do
  redis.call('ZREM', KEYS[4 * i - 1], id)
  redis.call('HDEL', KEYS[4 * i], id)
end
for i = 1, n do
  if redis.call('EXISTS', KEYS[4 * i - 3]) == 0 then promote(prefix, i) end
end
return { 0 }
