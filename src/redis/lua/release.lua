-- RELEASE: free every lease of the caller's grant and hand each on to the
-- head of its queue in the same step (so a hand-off costs the next holder
-- no round trip). A lease that is no longer the caller's is left alone; a
-- lease that already ran out is handed on too (nobody else noticed yet:
-- the next waiter would otherwise wait for its own heartbeat).
-- KEYS: lease, meta, queue, waiters per name (see common.lua), then the
--       ticket counter.
-- ARGV: prefix, lease id.
-- Returns: how many leases were released (0: the lease had been lost).
local prefix, id = ARGV[1], ARGV[2]
local released = 0
for i = 1, names_in_keys() do
  local value = redis.call('GET', KEYS[4 * i - 3])
  if owns(value, id) then
    redis.call('DEL', KEYS[4 * i - 3])
    released = released + 1
    promote(prefix, i)
  elseif not value then
    promote(prefix, i)
  end
end
return released
