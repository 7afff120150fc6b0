-- Prepended to every keylock script (src/redis/mod.rs joins them at build
-- time), so the helpers exist once. Layout of one lock name N under prefix P
-- (4 KEYS per name, in this order; see src/redis/mod.rs):
--   lease   P:{N}    STRING "<waiter id>|<owner>", PX = lease ttl
--   meta    P:{N}:m  HASH fence = last fencing token
--   queue   P:{N}:q  ZSET waiter id -> ticket (FIFO order)
--   waiters P:{N}:w  HASH waiter id -> "<deadline ms>|<ttl ms>|<names>|<owner>"
-- The last KEY of ACQUIRE, RELEASE and CANCEL is the ticket counter P:tkt.
-- Only the server's clock is read (TIME), never a client's.
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
-- Queues and meta outlive a burst of use, not forever.
local IDLE_TTL = 604800000
-- A lease handed to a waiter that is not in this script starts at most this
-- long (the waiter liveness window, src/redis/mod.rs CLAIM): a waiter that
-- died since its last heartbeat blocks the key for seconds, not a ttl; a
-- live one's watchdog renews it to its full ttl within a third of it.
local CLAIM_MS = 3000

local function fmt(x)
  return string.format('%.0f', x)
end

-- Fencing token: strictly increasing per lock, and time-seeded so it keeps
-- increasing when the counter is lost (restart without persistence), as
-- long as the server clock does not go back. Below 2^53 until ~2255.
local function next_token(meta)
  local last = tonumber(redis.call('HGET', meta, 'fence') or '0')
  local token = math.max(last + 1, now_us)
  redis.call('HSET', meta, 'fence', fmt(token))
  redis.call('PEXPIRE', meta, IDLE_TTL)
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
-- (bounded work per call); returns the live head, or nil.
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
-- head gets it here, in this script, and is told by a message; a multi-name
-- head is only woken (it takes all its names at once in ACQUIRE), and the
-- free lease waits for it, since nobody behind a head may take it.
local function promote(prefix, i)
  local lease, meta, queue, waiters = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local head = reap(queue, waiters)
  if not head then return end
  local _, ttl, names, owner = parse_waiter(redis.call('HGET', waiters, head))
  if names > 1 then
    redis.call('PUBLISH', channel_of(prefix, head), 'w ' .. head)
    return
  end
  redis.call('SET', lease, head .. '|' .. owner, 'PX', math.min(tonumber(ttl), CLAIM_MS))
  local token = next_token(meta)
  redis.call('ZREM', queue, head)
  redis.call('HDEL', waiters, head)
  redis.call('PUBLISH', channel_of(prefix, head), 'g ' .. head .. ' ' .. fmt(token))
end

-- The fence of every name, if `id` holds every lease of the request (a
-- grant that raced the caller's reply, or its cancel); else nil.
local function held_tokens(id, status)
  local out = { status }
  for i = 1, (#KEYS - 1) / 4 do
    if not owns(redis.call('GET', KEYS[4 * i - 3]), id) then return nil end
    out[i + 1] = tonumber(redis.call('HGET', KEYS[4 * i - 2], 'fence') or '0')
  end
  return out
end

local function names_in_keys()
  return (#KEYS - 1) / 4
end
