-- Prepended to ACQUIRE, RELEASE, CANCEL and EXTEND (src/redis/scripts.rs
-- joins them at build time, behind ACQUIRE's and RELEASE's fast paths), so
-- the helpers exist once. A lock (prefix, space,
-- key) has 4 Redis keys, passed as KEYS in this order, 4 per name (their
-- names: docs/redis-keys.md, src/redis/keys.rs):
--   lease   STRING "<waiter id>|<owner>"              PX = lease ttl
--   meta    STRING last fencing token                 PX = ttl of the grant
--                                                     that seeded it
--   queue   ZSET   waiter id -> ticket (FIFO order)   PX = liveness window
--   waiters HASH   waiter id -> "<deadline ms>|<ttl ms>|<names>|<owner>"
--                                                     PX = liveness window
-- then the ticket counter (STRING, PX = liveness window) as the last KEY.
-- Nothing outlives its use: an idle lock leaves no key behind once its
-- last lease ran out (meta goes a ttl after the grant that seeded it from
-- the clock; queue, waiters and counter a liveness window after the last
-- heartbeat of a waiter).
-- Losing meta is harmless: tokens are seeded from the server clock (see
-- next_token). Losing the counter is too: it lives as long as any queue
-- that holds its tickets, because every script that extends a queue
-- extends the counter in the same step.
-- Only the server's clock is read (TIME), never a client's.
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
-- A lease handed to a waiter that is not in this script starts at most this
-- long (the waiter liveness window, src/redis/mod.rs CLAIM): a waiter that
-- died since its last heartbeat blocks the key for seconds, not a ttl; a
-- live one's watchdog renews it to its full ttl within a third of it.
local CLAIM_MS = 3000

local function fmt(x)
  return string.format('%.0f', x)
end

local function names_in_keys()
  return (#KEYS - 1) / 4
end

-- Fencing token: strictly increasing per lock. `last + 1` while meta
-- exists (INCR, which keeps meta's expiry), else the server clock in µs
-- (and meta lives `keep` ms, the grant's ttl, at least 1 ms). Every token
-- is at most the clock at its grant: the clock seeds meta, and each later
-- grant adds 1 while the clock has moved on by at least a microsecond
-- (scripts run one at a time and each takes microseconds). So once meta has
-- run out, a token from the clock is larger than every token issued, unless
-- the server clock went back: the same condition as after a restart that
-- lost every key. Below 2^53 until ~2255. ACQUIRE's fast path
-- (acquire_fast.lua, which runs before this file) issues tokens the same way.
local function next_token(meta, keep)
  local token = redis.call('INCR', meta)
  if token == 1 then
    token = now_us
    redis.call('SET', meta, fmt(token), 'PX', keep)
  end
  return token
end

local function owns(value, id)
  return value ~= false and value ~= nil and string.sub(value, 1, #id + 1) == id .. '|'
end

local function owner_of(value)
  if not value then return false end
  return string.match(value, '^[^|]*|(.*)$') or ''
end

local function parse_waiter(record)
  local deadline, ttl, names, owner = string.match(record, '^(%d+)|(%d+)|(%d+)|(.*)$')
  return tonumber(deadline), ttl, tonumber(names), owner
end

-- Grants go to the waiter's process only: one channel per client id.
local function channel_of(prefix, id)
  return prefix .. ':c:' .. string.match(id, '^([^:]*)')
end

-- Drops waiters whose process stopped heartbeating, from the head only
-- (bounded work per call); returns the live head, or nil. A multi-name
-- waiter has the same deadline in each of its queues (one record, written
-- to all of them in one step), so it is dead in all of them at once; the
-- others drop it when they look, and its own heartbeat, if it comes back,
-- leaves every queue it is still in and joins all again (ACQUIRE). Counted
-- queues (sem_*.lua) reap with it too: their records put the weight after
-- the name count, and only the deadline, first in both, is read here.
local function reap(queue, waiters)
  for _ = 1, 64 do
    local head = redis.call('ZRANGE', queue, 0, 0)[1]
    if not head then return nil end
    local record = redis.call('HGET', waiters, head)
    if record then
      local deadline = parse_waiter(record)
      if deadline and deadline >= now_ms then return head end
    end
    redis.call('ZREM', queue, head)
    redis.call('HDEL', waiters, head)
  end
  return nil
end

-- Lease `i` is free: hand it to the live head of its queue. A single-name
-- head gets it here, in this script, and is told by a message carrying the
-- token, the server time of the grant (µs) and the lease's length from
-- then (ms), so that a waiter that reads it late still times its lease
-- from the grant. A multi-name head is only woken (it takes all its names
-- at once in ACQUIRE), and the free lease waits for it, since nobody
-- behind a head may take it.
local function promote(prefix, i)
  local lease, meta, queue, waiters = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local head = reap(queue, waiters)
  if not head then return end
  local _, ttl, names, owner = parse_waiter(redis.call('HGET', waiters, head))
  if names > 1 then
    redis.call('PUBLISH', channel_of(prefix, head), 'w ' .. head)
    return
  end
  local claim = math.min(tonumber(ttl), CLAIM_MS)
  redis.call('SET', lease, head .. '|' .. owner, 'PX', claim)
  local token = next_token(meta, ttl)
  redis.call('ZREM', queue, head)
  redis.call('HDEL', waiters, head)
  redis.call('PUBLISH', channel_of(prefix, head),
    'g ' .. head .. ' ' .. fmt(token) .. ' ' .. fmt(now_us) .. ' ' .. fmt(claim))
end

-- {status, fence of every name, ms the leases have left (the least)}, if
-- `id` holds every lease of the request (a grant that raced the caller's
-- reply, or its cancel); else nil.
local function held_tokens(id, status)
  local out = { status }
  local left
  for i = 1, names_in_keys() do
    local lease = KEYS[4 * i - 3]
    if not owns(redis.call('GET', lease), id) then return nil end
    out[i + 1] = tonumber(redis.call('GET', KEYS[4 * i - 2]) or '0') or 0
    local pttl = redis.call('PTTL', lease)
    if not left or pttl < left then left = pttl end
  end
  out[#out + 1] = left
  return out
end
