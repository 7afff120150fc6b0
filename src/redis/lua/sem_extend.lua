-- SEM_EXTEND: renew the caller's lease on every name (the watchdog, per
-- holder), only if it still holds all of them: a lease that ran out was
-- reaped and its permits given to others, so it is never revived. Names
-- where it is found run out are settled at once.
-- KEYS: holders, meta, queue, waiters per name (see sem_common.lua), then
--       the ticket counter.
-- ARGV: prefix, holder id, ttl ms.
-- Returns: 1 extended; 0 lost (no lease was changed).
local prefix, id, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local n = names_in_keys()
local records = {}
for i = 1, n do
  local value = redis.call('HGET', KEYS[4 * i - 3], id)
  local expiry = value and sem_holder(value)
  if not expiry or expiry <= now_ms then
    for j = 1, n do
      local limit = sem_limit(j)
      if limit then
        sem_settle(prefix, j, limit, nil)
        sem_tidy(j, limit)
      end
    end
    return 0
  end
  records[i] = value
end
for i = 1, n do
  local _, weight, token, owner = sem_holder(records[i])
  redis.call('HSET', KEYS[4 * i - 3], id, fmt(now_ms + ttl) .. '|' .. weight .. '|' .. token .. '|' .. owner)
  sem_tidy(i, nil)
end
return 1
