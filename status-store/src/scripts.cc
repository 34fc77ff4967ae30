#include "scripts.h"

namespace pushgw::status_store::scripts {

const redis::Script& register_device() {
  static const redis::Script s(R"lua(
local function fields(v)
  local t = {}
  local i = 1
  while true do
    local j = string.find(v, '\n', i, true)
    if not j then
      t[#t + 1] = string.sub(v, i)
      return t
    end
    t[#t + 1] = string.sub(v, i, j - 1)
    i = j + 1
  end
end
-- device record: "1\nepoch\nnode\nsession\nplatform\nuid\nsince\nseen"
local cur = redis.call('GET', KEYS[1])
local prev = {}
if cur then
  local f = fields(cur)
  prev = {f[3], f[4], f[2], f[6]}
end
local prev_epoch = tonumber(prev[3] or '0') or 0
local counter = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if counter < prev_epoch then counter = prev_epoch end
local fence = tonumber(ARGV[9]) or 0
local epoch
if fence > 0 then
  if counter > fence then return {-1, counter} end
  epoch = fence
else
  -- A missing counter (new device, expired or lost with Redis) starts at the
  -- time-based seed, above every epoch handed out before.
  if counter == 0 then counter = tonumber(ARGV[10]) or 0 end
  epoch = counter + 1
end
local e = string.format('%d', epoch)
redis.call('SET', KEYS[2], e, 'PX', ARGV[7])
redis.call('SET', KEYS[1], table.concat({'1', e, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],
           ARGV[8]}, '\n'), 'PX', ARGV[6])
redis.call('PEXPIRE', KEYS[3], ARGV[7])
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[7])
else
  redis.call('DEL', KEYS[4])
end
if prev[3] and prev_epoch ~= epoch then
  return {epoch, prev_epoch, prev[1] or '', prev[2] or '', prev[4] or ''}
end
return {epoch}
)lua");
  return s;
}

const redis::Script& unregister_device() {
  static const redis::Script s(R"lua(
local function fields(v)
  local t = {}
  local i = 1
  while true do
    local j = string.find(v, '\n', i, true)
    if not j then
      t[#t + 1] = string.sub(v, i)
      return t
    end
    t[#t + 1] = string.sub(v, i, j - 1)
    i = j + 1
  end
end
local v = redis.call('GET', KEYS[1])
local e = tonumber(ARGV[1])
if not v then
  local counter = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  if counter > e then return {-1} end
  return {0}
end
local f = fields(v)
if tonumber(f[2]) ~= e then return {-1} end
redis.call('DEL', KEYS[1])
return {1, f[6] or ''}
)lua");
  return s;
}

const redis::Script& refresh_lease() {
  static const redis::Script s(R"lua(
local function fields(v)
  local t = {}
  local i = 1
  while true do
    local j = string.find(v, '\n', i, true)
    if not j then
      t[#t + 1] = string.sub(v, i)
      return t
    end
    t[#t + 1] = string.sub(v, i, j - 1)
    i = j + 1
  end
end
local v = redis.call('GET', KEYS[1])
local e = tonumber(ARGV[1])
if not v then
  local counter = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  if counter > e then return -1 end
  return 0
end
local f = fields(v)
if tonumber(f[2]) ~= e or f[3] ~= ARGV[4] then return -1 end
f[8] = ARGV[3]
redis.call('SET', KEYS[1], table.concat(f, '\n'), 'PX', ARGV[2])
return 1
)lua");
  return s;
}

const redis::Script& user_add() {
  static const redis::Script s(R"lua(
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') or 0
if cur <= tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
)lua");
  return s;
}

const redis::Script& user_remove() {
  static const redis::Script s(R"lua(
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and tonumber(cur) == tonumber(ARGV[2]) then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
)lua");
  return s;
}

const redis::Script& known_remove() {
  static const redis::Script s(R"lua(
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cur == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
)lua");
  return s;
}

const redis::Script& node_upsert() {
  static const redis::Script s(R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], string.format('%d', exp), ARGV[1])
return exp
)lua");
  return s;
}

const redis::Script& node_list() {
  static const redis::Script s(R"lua(
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for i = 1, #dead do redis.call('HDEL', KEYS[1], dead[i]) end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
local live = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #live, 2 do
  local p = redis.call('HGET', KEYS[1], live[i])
  if p then
    out[#out + 1] = live[i]
    out[#out + 1] = p
    out[#out + 1] = live[i + 1]
  end
end
return out
)lua");
  return s;
}

const redis::Script& node_remove() {
  static const redis::Script s(R"lua(
local n = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
)lua");
  return s;
}

const redis::Script& topic_add() {
  static const redis::Script s(R"lua(
local c = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if c <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 0
end
return c
)lua");
  return s;
}

const redis::Script& seq_seed() {
  static const redis::Script s(R"lua(
local v = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local seed = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
if v < seed then
  redis.call('SET', KEYS[1], string.format('%d', seed + v), 'KEEPTTL')
  return seed
end
local top = redis.call('INCRBY', KEYS[1], n)
return top - n
)lua");
  return s;
}

const redis::Script& idempotency_replace() {
  static const redis::Script s(R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
)lua");
  return s;
}

}  // namespace pushgw::status_store::scripts
