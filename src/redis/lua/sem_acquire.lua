-- SEM_ACQUIRE: take `weight` of every named counted key at once, or join
-- every queue at once (ACQUIRE's protocol, for counted keys: see
-- sem_common.lua). Idempotent, as ACQUIRE: a re-run keeps the waiter's
-- place, refreshes its liveness, re-enqueues it if the server lost the
-- queue, and finds a grant that raced the reply. A request is granted when
-- it heads every queue (or the queue is empty) and fits in every key:
-- nobody is overtaken by a lighter request behind it.
-- KEYS: holders, meta, queue, waiters per name, then the ticket counter.
-- ARGV: prefix, waiter id, ttl ms, mode (0 try, 1 wait), max pending (-1:
--       no limit), skip queue (0/1), owner, liveness ms, the key's limit
--       (permits), then the weight for each name.
-- Returns (outcome codes: src/core/outcome.rs):
--          {0, token per name}         GRANTED, for the full ttl
--          {4, token per name, pttl}   HANDED_OFF: granted already
--          {1, pttl, now µs}           QUEUED (ms until the first lease in
--                                      the way runs out, or -2)
--          {2, index}                  REJECTED: the queue of name `index`
--                                      (1-based) is full
--          {2, index, limit}           REJECTED: name `index` has another
--                                      limit (the stored one; 1 while it is
--                                      held or waited for as a mutex),
--                                      nothing queued
--          {3, holder, pttl}           BUSY (try mode)
local prefix, id, ttl, mode = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local max_pending, skip, owner, live = tonumber(ARGV[5]), ARGV[6] == '1', ARGV[7], tonumber(ARGV[8])
local limit = tonumber(ARGV[9])
local n = names_in_keys()
local counter = KEYS[#KEYS]
local function weight(i)
  return tonumber(ARGV[9 + i])
end

for i = 1, n do
  local stored = sem_limit(i)
  if not stored then
    -- Held or waited for as a mutex (a lock without permits): its limit is 1.
    local holders = KEYS[4 * i - 3]
    if redis.call('EXISTS', sibling(holders, 'l'), sibling(holders, 'q')) > 0 then stored = 1 end
  end
  if stored and stored ~= limit then return { 2, i, stored } end
end

local held = sem_held(id, 4)
if held then return held end

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
local function record(i)
  return fmt(now_ms + live) .. '|' .. ttl .. '|' .. n .. '|' .. weight(i) .. '|' .. owner
end
if queued == n then
  -- Alive: refreshed before anything is reaped below.
  for i = 1, n do
    redis.call('HSET', KEYS[4 * i], id, record(i))
  end
end

-- Heads in front of this request that fit now (their holder ran out, or a
-- release raced) are granted first: nobody behind a head may pass it.
for i = 1, n do
  local head = reap(KEYS[4 * i - 1], KEYS[4 * i])
  if head and head ~= id then sem_settle(prefix, i, limit, id) end
end
-- (sem_settle stops at this request: it is settled below, in this reply.)

local blocked_at, blocked_pttl, blocked_owner = 0, -2, false
for i = 1, n do
  local out, pttl, who = sem_out(KEYS[4 * i - 3])
  local head = redis.call('ZRANGE', KEYS[4 * i - 1], 0, 0)[1]
  local front = not head or head == id or (skip and queued == 0)
  if not front or out + weight(i) > limit then
    blocked_at, blocked_pttl, blocked_owner = i, pttl, who
    break
  end
end

if blocked_at == 0 then
  local out = { 0 }
  for i = 1, n do
    local holders, meta, queue, waiters = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
    local token = next_token(meta, ttl)
    redis.call('HSET', holders, id, fmt(now_ms + tonumber(ttl)) .. '|' .. weight(i) .. '|' .. fmt(token) .. '|' .. owner)
    redis.call('ZREM', queue, id)
    redis.call('HDEL', waiters, id)
    out[i + 1] = token
  end
  for i = 1, n do
    -- Whoever stood behind this request may fit beside it.
    sem_settle(prefix, i, limit, nil)
    sem_tidy(i, limit)
  end
  return out
end

if mode == 0 then
  return { 3, blocked_owner, blocked_pttl }
end

if queued == 0 then
  if max_pending >= 0 then
    for i = 1, n do
      if redis.call('ZCARD', KEYS[4 * i - 1]) >= max_pending then return { 2, i } end
    end
  end
  -- One ticket for every queue of the request, from one counter (as
  -- ACQUIRE): two waiters are in the same order in every queue they share.
  local ticket = redis.call('INCR', counter)
  local score = ticket
  if skip then score = -ticket end
  for i = 1, n do
    redis.call('ZADD', KEYS[4 * i - 1], 'NX', score, id)
    redis.call('HSET', KEYS[4 * i], id, record(i))
  end
end
for i = 1, n do
  redis.call('PEXPIRE', KEYS[4 * i - 1], live)
  redis.call('PEXPIRE', KEYS[4 * i], live)
  sem_tidy(i, limit)
end
redis.call('PEXPIRE', counter, live)
return { 1, blocked_pttl, fmt(now_us) }
