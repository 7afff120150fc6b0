-- RELEASE: free every lease of the caller's grant and hand each on to the
-- head of its queue in the same step (so a hand-off costs the next holder
-- no round trip). A lease that is no longer the caller's is left alone.
-- KEYS: lease, meta, queue, waiters per name (see common.lua), then P:tkt.
-- ARGV: prefix, lease id.
-- Returns: how many leases were released (0: the lease had been lost).
local prefix, id = ARGV[1], ARGV[2]
local released = 0
for i = 1, names_in_keys() do
  if owns(redis.call('GET', KEYS[4 * i - 3]), id) then
    redis.call('DEL', KEYS[4 * i - 3])
    released = released + 1
    promote(prefix, i)
  end
end
return released
