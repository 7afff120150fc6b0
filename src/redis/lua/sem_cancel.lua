-- SEM_CANCEL: a waiter gives up (timeout, abort, close). If the grant raced
-- the cancel, the waiter keeps it (it is told so) and nothing is lost; else
-- it leaves every queue, and whoever its leaving lets fit is granted now
-- (a cancelled head wakes the waiters behind it).
-- KEYS: holders, meta, queue, waiters per name (see sem_common.lua), then
--       the ticket counter.
-- ARGV: prefix, waiter id.
-- Returns: {4, token per name, pttl} HANDED_OFF (granted after all, the
--          leases have pttl ms left, the least); {5} CANCELLED.
local prefix, id = ARGV[1], ARGV[2]
local n = names_in_keys()
local held = sem_held(id, 4)
if held then return held end
for i = 1, n do
  redis.call('ZREM', KEYS[4 * i - 1], id)
  redis.call('HDEL', KEYS[4 * i], id)
end
for i = 1, n do
  local limit = sem_limit(i)
  if limit then
    sem_settle(prefix, i, limit, nil)
    sem_tidy(i, limit)
  end
end
return { 5 }
