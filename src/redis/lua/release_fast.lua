-- RELEASE's fast path: the first part of the RELEASE script, before
-- common.lua and release.lua (src/redis/scripts.rs joins them). One name,
-- the lease the caller's, and nobody queued (no queue key): delete the
-- lease, in three commands (GET, EXISTS, DEL) and without the server
-- clock. Anything else falls through to the general path (release.lua),
-- which hands the lease on.
-- KEYS, ARGV: as RELEASE (release.lua); returns 1, as it would.
if #KEYS == 5 then
  local value = redis.call('GET', KEYS[1])
  if value and string.sub(value, 1, #ARGV[2] + 1) == ARGV[2] .. '|'
    and redis.call('EXISTS', KEYS[3]) == 0 then
    redis.call('DEL', KEYS[1])
    return 1
  end
end
