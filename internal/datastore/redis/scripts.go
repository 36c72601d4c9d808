package redis

import goredis "github.com/redis/go-redis/v9"

// Scripts. Each runs atomically on the server, which is what makes the
// compare-and-delete and compare-and-set steps safe against the application
// writing at the same time. They are loaded (SCRIPT LOAD) at the head of
// every pipeline that uses them, so a SCRIPT FLUSH or a restarted server
// never leaves a pipeline with NOSCRIPT.
var (
	// KEYS: keys; ARGV[1]: hash field; ARGV[1+i]: the value read for KEYS[i].
	// Unlinks the keys whose field still holds the value read.
	casUnlinkScript = newScript(`
local n = 0
for i, k in ipairs(KEYS) do
  local v = redis.pcall('HGET', k, ARGV[1])
  if v == ARGV[i + 1] then
    n = n + redis.call('UNLINK', k)
  end
end
return n`)

	// KEYS: keys; ARGV[1]: hash field; ARGV[2]: threshold in Unix seconds.
	// Unlinks the keys whose field holds whole Unix seconds below the
	// threshold, at once; returns {unlinked, {index, value, …}} with the
	// values written otherwise (RFC 3339, decimals…), which the client
	// parses and deletes with casUnlinkScript.
	ageUnlinkScript = newScript(`
local t = tonumber(ARGV[2])
local n = 0
local other = {}
for i, k in ipairs(KEYS) do
  local v = redis.pcall('HGET', k, ARGV[1])
  if type(v) == 'string' then
    if #v <= 15 and string.match(v, '^%d+$') then
      if tonumber(v) < t then
        n = n + redis.call('UNLINK', k)
      end
    else
      other[#other + 1] = i
      other[#other + 1] = v
    end
  end
end
return {n, other}`)

	// KEYS: keys; ARGV[1]: cutoff in Unix milliseconds. Unlinks the keys
	// whose last access (server TIME − OBJECT IDLETIME) is before it.
	idleUnlinkScript = newScript(`
local t = redis.call('TIME')
local d = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
local n = 0
for _, k in ipairs(KEYS) do
  local idle = redis.pcall('OBJECT', 'IDLETIME', k)
  if type(idle) == 'table' and idle.err then
    return idle
  end
  if type(idle) == 'number' and idle * 1000 > d then
    n = n + redis.call('UNLINK', k)
  end
end
return n`)

	// KEYS[1]: key; ARGV[1]: exclusive max score; ARGV[2]: most members to
	// remove. Returns {removed, still selected}.
	zTrimScript = newScript(`
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then
  return {0, 0}
end
local n = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1])
if n == 0 then
  return {0, 0}
end
local lim = tonumber(ARGV[2])
if n <= lim then
  return {redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]), 0}
end
return {redis.call('ZREMRANGEBYRANK', KEYS[1], 0, lim - 1), n - lim}`)

	// KEYS: keys; ARGV[1]: "1" to unlink them. Returns their records:
	// members of sorted sets, entries of streams, 1 for other keys.
	recordsScript = newScript(`
local n = 0
for _, k in ipairs(KEYS) do
  local t = redis.call('TYPE', k).ok
  if t == 'zset' then
    n = n + redis.call('ZCARD', k)
  elseif t == 'stream' then
    n = n + redis.call('XLEN', k)
  elseif t ~= 'none' then
    n = n + 1
  end
  if t ~= 'none' and ARGV[1] == '1' then
    redis.call('UNLINK', k)
  end
end
return n`)

	// KEYS[1]: hash; ARGV[1]: m; then m triples: field, value read ("0" when
	// absent, "1".. value), value to write ("0" to delete the field, "1"..
	// value, "-" to leave it). Returns 1 when written, 0 when the key is
	// gone, -1 when a field changed since it was read, -2 when not a hash.
	anonScript = newScript(`
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then
  return 0
end
if t ~= 'hash' then
  return -2
end
local m = tonumber(ARGV[1])
for i = 0, m - 1 do
  local cur = redis.call('HGET', KEYS[1], ARGV[2 + 3 * i])
  if cur then cur = '1' .. cur else cur = '0' end
  if cur ~= ARGV[3 + 3 * i] then
    return -1
  end
end
for i = 0, m - 1 do
  local f, nv = ARGV[2 + 3 * i], ARGV[4 + 3 * i]
  if nv == '0' then
    redis.call('HDEL', KEYS[1], f)
  elseif nv ~= '-' then
    redis.call('HSET', KEYS[1], f, string.sub(nv, 2))
  end
end
return 1`)
)

// script is a Lua script with its source, for SCRIPT LOAD.
type script struct {
	src string
	*goredis.Script
}

func newScript(src string) script { return script{src: src, Script: goredis.NewScript(src)} }
