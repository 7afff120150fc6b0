-- EXTEND: renew the caller's lease on every name, only if it still holds
-- all of them (a lease that expired and was taken is never revived).
-- KEYS: the lease key of each name.
-- ARGV: lease id, ttl ms.
-- Returns: 1 extended; 0 lost (nothing was changed).
local id, ttl = ARGV[1], ARGV[2]
for i = 1, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if not value or string.sub(value, 1, #id + 1) ~= id .. '|' then return 0 end
end
for i = 1, #KEYS do
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return 1
