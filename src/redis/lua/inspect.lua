-- INSPECT: who holds a lock, for how long, and how many wait for it.
-- KEYS: lease, queue of one name.
-- ARGV: none.
-- Returns: {owner or nil, pttl ms (-2: free), waiters}
local value = redis.call('GET', KEYS[1])
local owner = false
if value then owner = string.match(value, '^[^|]*|(.*)$') or '' end
return { owner, redis.call('PTTL', KEYS[1]), redis.call('ZCARD', KEYS[2]) }
