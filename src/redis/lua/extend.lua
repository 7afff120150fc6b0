-- EXTEND: renew the caller's lease on every name, only if it still holds
-- all of them (a lease that expired and was taken is never revived). A
-- lease found run out is handed to the next waiter at once.
-- KEYS: lease, meta, queue, waiters per name (see common.lua), then the
--       ticket counter.
-- ARGV: prefix, lease id, ttl ms.
-- Returns: 1 extended; 0 lost (no lease was changed).
local prefix, id, ttl = ARGV[1], ARGV[2], ARGV[3]
local n = names_in_keys()
for i = 1, n do
  if not owns(redis.call('GET', KEYS[4 * i - 3]), id) then
    for j = 1, n do
      if redis.call('EXISTS', KEYS[4 * j - 3]) == 0 then promote(prefix, j) end
    end
    return 0
  end
end
for i = 1, n do
  redis.call('PEXPIRE', KEYS[4 * i - 3], ttl)
end
return 1
