-- SEM_RELEASE: give back the caller's permits on every name and grant, in
-- the same step, every waiter that now fits (a run of shared waiters after
-- an exclusive holder is started by this one script). A name the caller no
-- longer holds (its lease ran out, and was reaped) is left alone, but its
-- queue is still settled: a waiter there would otherwise wait for its own
-- heartbeat.
-- KEYS: holders, meta, queue, waiters per name (see sem_common.lua), then
--       the ticket counter.
-- ARGV: prefix, holder id.
-- Returns: how many names were released (0: the lease had been lost).
local prefix, id = ARGV[1], ARGV[2]
local released = 0
for i = 1, names_in_keys() do
  local holders = KEYS[4 * i - 3]
  local value = redis.call('HGET', holders, id)
  if value then
    local expiry = sem_holder(value)
    redis.call('HDEL', holders, id)
    if expiry and expiry > now_ms then released = released + 1 end
  end
  local limit = sem_limit(i)
  if limit then
    sem_settle(prefix, i, limit, nil)
    sem_tidy(i, limit)
  end
end
return released
