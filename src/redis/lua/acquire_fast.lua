-- ACQUIRE's fast path: the first part of the ACQUIRE script, before
-- common.lua and acquire.lua (src/redis/scripts.rs joins them), so that it
-- runs before anything else, the server clock included. One name, not
-- forced, nobody queued (no queue key), the name not a counted lock's (no
-- holders key) and the lease free: then nothing
-- but the lease and the fencing token is touched, in three commands
-- (EXISTS, SET NX, INCR), where the general path below runs ten. Anything
-- else (a busy lease, a queue, several names, force, a re-run after a
-- grant) falls through to the general path, which decides as before; so
-- the fast path grants exactly when the general path would, and the same
-- way (a waiter record cannot exist without its queue).
-- KEYS, ARGV: as ACQUIRE (acquire.lua).
-- The token is next_token's (common.lua), written out here because this
-- runs first: meta + 1 while meta exists, else the server clock in µs.
if #KEYS == 5 and ARGV[4] ~= '2' and redis.call('EXISTS', KEYS[3], sibling(KEYS[1], 'h')) == 0
  and redis.call('SET', KEYS[1], ARGV[2] .. '|' .. ARGV[7], 'NX', 'PX', ARGV[3]) then
  local token = redis.call('INCR', KEYS[2])
  if token == 1 then
    local time = redis.call('TIME')
    token = tonumber(time[1]) * 1000000 + tonumber(time[2])
    redis.call('SET', KEYS[2], string.format('%.0f', token), 'PX', ARGV[3])
  end
  return { 0, token }
end
