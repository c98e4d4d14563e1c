"""The Lua scripts of the Redis backend (transit/storage/redis/): every write, and the HA
lock's acquire, renew and release, each one atomic script."""

from __future__ import annotations

# One script for every write (put, delete, guarded commit), so each is atomic and fenced.
# KEYS: lock, index, the claim key of the first guarded key, G guarded keys, then per
#       write: its data key and its folder ZSETs (root..deepest).
# ARGV: expected lock value ("" = unfenced), channel, G, W, our claim token ("" = none), G
#       expected versions ("" = must be absent, else sha1hex of the stored value), then per
#       write: "p" or "d", the key (relative, for the message), the value ("" for a
#       delete), F, F child names.
# A guarded commit also fails while another writer holds a claim on its first key (see
# `claim`: a writer that keeps losing the race gets its turn).
# Returns -1 fenced, -2 a guard failed, -3 claimed by another writer (nothing written in
# any of these), else the last index.
# A delete walks up from the deepest folder: remove the child; stop as soon as a folder is
# not empty (Redis drops an emptied ZSET, so EXISTS says whether it still has children).
COMMIT = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local g = tonumber(ARGV[3])
local w = tonumber(ARGV[4])
if g > 0 then
  local c = redis.call('GET', KEYS[3])
  if c and c ~= ARGV[5] then return -3 end
end
for i = 1, g do
  local cur = redis.call('GET', KEYS[3 + i])
  local want = ARGV[5 + i]
  if want == '' then
    if cur then return -2 end
  elseif (not cur) or redis.sha1hex(cur) ~= want then
    return -2
  end
end
local k = 4 + g
local a = 6 + g
local n = 0
for _ = 1, w do
  local f = tonumber(ARGV[a + 3])
  if ARGV[a] == 'p' then
    redis.call('SET', KEYS[k], ARGV[a + 2])
    for i = 1, f do redis.call('ZADD', KEYS[k + i], 0, ARGV[a + 3 + i]) end
  else
    redis.call('DEL', KEYS[k])
    for i = f, 1, -1 do
      redis.call('ZREM', KEYS[k + i], ARGV[a + 3 + i])
      if redis.call('EXISTS', KEYS[k + i]) == 1 then break end
    end
  end
  n = redis.call('INCR', KEYS[2])
  redis.call('PUBLISH', ARGV[2], n .. ' ' .. ARGV[a + 1])
  k = k + 1 + f
  a = a + 4 + f
end
return n
"""

# KEYS: lock, epoch. ARGV: owner, ttl ms, lowest epoch allowed minus one (the highest the
# caller has seen: after a failover to a replica that missed some INCRs the epoch still
# moves forward). Returns the new epoch, or 0 when held.
ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local e = redis.call('INCR', KEYS[2])
if e <= tonumber(ARGV[3]) then
  e = tonumber(ARGV[3]) + 1
  redis.call('SET', KEYS[2], e)
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. e, 'PX', ARGV[2])
return e
"""

# KEYS: lock. ARGV: expected value, ttl ms. 1 = renewed.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lock. ARGV: expected value. 1 = released.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
