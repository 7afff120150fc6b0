-- ACQUIRE: take every named lock at once, or join every queue at once.
-- Idempotent: a re-run (heartbeat, lost message, reconnect) keeps the
-- waiter's place, refreshes its liveness deadline, re-enqueues it if the
-- server lost the queue, and finds a grant that raced the reply.
-- All or nothing across queues: a waiter found in some of its queues only
-- (reaped from the others while its process stalled) leaves them all and
-- joins all again, at the back; it never sits at the head of one queue
-- keeping that lock free for a request that cannot be granted.
-- KEYS: lease, meta, queue, waiters per name (see common.lua), then the
--       ticket counter.
-- ARGV: prefix, waiter id, ttl ms, mode (0 try, 1 wait, 2 force),
--       max pending (-1: no limit), skip queue (0/1), owner, liveness ms.
-- Returns (outcome codes: src/core/outcome.rs, checked by its tests):
--          {0, token per name}         GRANTED, for the full ttl
--          {4, token per name, pttl}   HANDED_OFF: granted already, by a
--                                      hand-off; the leases have pttl ms
--                                      left (the least)
--          {1, pttl, now µs}           QUEUED (pttl of the first busy lease;
--                                      the server clock, for timing grants)
--          {2, index}                  REJECTED: the queue of name `index`
--                                      (1-based) is full
--          {2, index, limit}           REJECTED: name `index` is held or
--                                      waited for as a counted lock with
--                                      that limit (sem_*.lua), nothing queued
--          {3, holder, pttl}           BUSY (try mode): the first busy
--                                      lease's owner
local prefix, id, ttl, mode = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local max_pending, skip, owner, live = tonumber(ARGV[5]), ARGV[6] == '1', ARGV[7], tonumber(ARGV[8])
local n = names_in_keys()
local counter = KEYS[#KEYS]

local function grant_all()
  local out = { 0 }
  for i = 1, n do
    redis.call('SET', KEYS[4 * i - 3], id .. '|' .. owner, 'PX', ttl)
    out[i + 1] = next_token(KEYS[4 * i - 2], ttl)
    redis.call('ZREM', KEYS[4 * i - 1], id)
    redis.call('HDEL', KEYS[4 * i], id)
  end
  return out
end

-- A counted lock of the same name (permits > 1) has its own keys: its
-- limit is not this mutex's 1, so the request is refused, as SEM_ACQUIRE
-- refuses a counted request on a name held as a mutex.
for i = 1, n do
  local limit = redis.call('HGET', sibling(KEYS[4 * i - 3], 'h'), '#')
  if limit then return { 2, i, tonumber(limit) } end
end

local held = held_tokens(id, 4)
if held then return held end

if mode == 2 then return grant_all() end

-- In every queue, in none, or (stalled, then reaped from some) in a few:
-- then out of all of them, to join all again below.
local queued = 0
for i = 1, n do
  if redis.call('ZSCORE', KEYS[4 * i - 1], id) then queued = queued + 1 end
end
if queued ~= 0 and queued ~= n then
  for i = 1, n do
    redis.call('ZREM', KEYS[4 * i - 1], id)
    redis.call('HDEL', KEYS[4 * i], id)
  end
  queued = 0
end
local record = fmt(now_ms + live) .. '|' .. ttl .. '|' .. n .. '|' .. owner
if queued == n then
  -- Alive: refreshed before anything is reaped below.
  for i = 1, n do
    redis.call('HSET', KEYS[4 * i], id, record)
  end
end

-- Only the head of a queue may take a free lease: no barging.
local busy_at = 0
for i = 1, n do
  local lease, queue, waiters = KEYS[4 * i - 3], KEYS[4 * i - 1], KEYS[4 * i]
  local head = reap(queue, waiters)
  local busy = redis.call('EXISTS', lease) == 1
  if not busy and head and head ~= id then
    -- The holder expired or crashed; nobody released, so pass it on now.
    promote(prefix, i)
    busy = true
  end
  if busy and busy_at == 0 then busy_at = i end
end
if busy_at == 0 then return grant_all() end

local busy_lease = KEYS[4 * busy_at - 3]
if mode == 0 then
  return { 3, owner_of(redis.call('GET', busy_lease)), redis.call('PTTL', busy_lease) }
end

if queued == 0 then
  if max_pending >= 0 then
    for i = 1, n do
      if redis.call('ZCARD', KEYS[4 * i - 1]) >= max_pending then return { 2, i } end
    end
  end
  -- One ticket for every queue of the request, from one counter: any two
  -- waiters are in the same order in every queue they share, so multi-name
  -- waits can never form a cycle. skipQueue goes before every ticket, the
  -- latest first (async-lock's unshift).
  local ticket = redis.call('INCR', counter)
  local score = ticket
  if skip then score = -ticket end
  for i = 1, n do
    redis.call('ZADD', KEYS[4 * i - 1], 'NX', score, id)
    redis.call('HSET', KEYS[4 * i], id, record)
  end
end
-- Queue, waiters and counter live as long as somebody heartbeats.
for i = 1, n do
  redis.call('PEXPIRE', KEYS[4 * i - 1], live)
  redis.call('PEXPIRE', KEYS[4 * i], live)
end
redis.call('PEXPIRE', counter, live)
return { 1, redis.call('PTTL', busy_lease), fmt(now_us) }
