-- Counted keys (semaphores, read/write locks: docs/semaphores.md). Prepended,
-- after common.lua, to SEM_ACQUIRE, SEM_RELEASE, SEM_CANCEL and SEM_EXTEND
-- (src/redis/scripts.rs). A counted lock has its own 4 Redis keys, passed as
-- KEYS in this order, 4 per name (their names: docs/redis-keys.md):
--   holders HASH   '#' -> the key's limit (permits), and per holder
--                  holder id -> "<expiry ms>|<weight>|<token>|<owner>"
--                                                     PX = the longest life
--                                                     of a holder or of the
--                                                     queue (see sem_tidy)
--   meta    STRING last fencing token (the mutex's own meta key: tokens
--                  increase across both kinds)        PX = ttl of the last grant
--   queue   ZSET   waiter id -> ticket (FIFO order)   PX = liveness window
--   waiters HASH   waiter id -> "<deadline ms>|<ttl ms>|<names>|<weight>|<owner>"
--                                                     PX = liveness window
-- then the ticket counter, shared with the mutex queues.
-- A holder's lease is its record's expiry, not a key's PX: several holders
-- share one key, so every script reaps the expired ones before it counts
-- (sem_out). The limit lives exactly as long as somebody holds or waits
-- for the key: a request naming another limit is refused (SEM_ACQUIRE).

local function sem_holder(value)
  local expiry, weight, token, owner = string.match(value, '^(%d+)|(%d+)|(%d+)|(.*)$')
  return tonumber(expiry), tonumber(weight), token, owner
end

local function sem_waiter(record)
  local deadline, ttl, names, weight, owner = string.match(record, '^(%d+)|(%d+)|(%d+)|(%d+)|(.*)$')
  return tonumber(deadline), ttl, tonumber(names), tonumber(weight), owner
end

-- Drops the holders of `holders` whose lease ran out (a crashed holder's
-- permits come back here); returns the permits still out, the ms until the
-- first live lease runs out (or -2) and that holder's owner.
local function sem_out(holders)
  local all = redis.call('HGETALL', holders)
  local out, soonest, owner = 0, nil, false
  for j = 1, #all, 2 do
    local field = all[j]
    if field ~= '#' then
      local expiry, weight, _, who = sem_holder(all[j + 1])
      if not expiry or expiry <= now_ms then
        redis.call('HDEL', holders, field)
      else
        out = out + weight
        if not soonest or expiry < soonest then
          soonest, owner = expiry, who
        end
      end
    end
  end
  if soonest then return out, soonest - now_ms, owner end
  return out, -2, owner
end

-- Name `i` may have room: grant its queue's heads in order while they fit,
-- each in this script, each told by its own message (as the mutex's
-- promote: token, server µs of the grant, lease ms from then), so one
-- release can start a run of shared waiters. A multi-name head that fits
-- is only woken (it takes all its names at once in SEM_ACQUIRE) and the
-- queue waits behind it, as it does behind a head that does not fit.
-- `except`: a waiter the caller settles itself (not granted here).
local function sem_settle(prefix, i, limit, except)
  local holders, meta, queue, waiters = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local out = sem_out(holders)
  while true do
    local head = reap(queue, waiters)
    if not head or head == except then return end
    local _, ttl, names, weight, owner = sem_waiter(redis.call('HGET', waiters, head))
    if out + weight > limit then return end
    if names > 1 then
      redis.call('PUBLISH', channel_of(prefix, head), 'w ' .. head)
      return
    end
    local claim = math.min(tonumber(ttl), CLAIM_MS)
    local token = next_token(meta, ttl)
    redis.call('HSET', holders, head, fmt(now_ms + claim) .. '|' .. weight .. '|' .. fmt(token) .. '|' .. owner)
    redis.call('ZREM', queue, head)
    redis.call('HDEL', waiters, head)
    redis.call('PUBLISH', channel_of(prefix, head),
      'g ' .. head .. ' ' .. fmt(token) .. ' ' .. fmt(now_us) .. ' ' .. fmt(claim))
    out = out + weight
  end
end

-- Keeps name `i`'s holders hash (and so its limit) exactly as long as a
-- holder's lease or the queue lives, and no longer: nothing stays in Redis
-- once the last holder and waiter are gone.
local function sem_tidy(i, limit)
  local holders, queue = KEYS[4 * i - 3], KEYS[4 * i - 1]
  local all = redis.call('HGETALL', holders)
  local keep = redis.call('PTTL', queue)
  for j = 1, #all, 2 do
    if all[j] ~= '#' then
      local expiry = sem_holder(all[j + 1])
      if expiry and expiry - now_ms > keep then keep = expiry - now_ms end
    end
  end
  if keep <= 0 then
    redis.call('DEL', holders)
    return
  end
  if limit then redis.call('HSET', holders, '#', limit) end
  redis.call('PEXPIRE', holders, keep)
end

-- The limit stored for name `i` (nil: nobody holds or waits).
local function sem_limit(i)
  return tonumber(redis.call('HGET', KEYS[4 * i - 3], '#'))
end

-- {status, own token per name, ms the leases have left (the least)} if
-- `id` holds every name of the request (a grant that raced the caller's
-- reply or its cancel); else nil.
local function sem_held(id, status)
  local out = { status }
  local left
  for i = 1, names_in_keys() do
    local value = redis.call('HGET', KEYS[4 * i - 3], id)
    if not value then return nil end
    local expiry, _, token = sem_holder(value)
    if not expiry or expiry <= now_ms then return nil end
    out[i + 1] = tonumber(token)
    if not left or expiry - now_ms < left then left = expiry - now_ms end
  end
  out[#out + 1] = left
  return out
end
