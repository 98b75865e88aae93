"""The Lua scripts the broker runs with ``EVAL``: each is one atomic step on one response.

Every key a script touches is passed in ``KEYS`` and shares the response's hash tag, so
the scripts run on a Redis Cluster too. They use only commands Redis 7.0, Valkey and
Dragonfly share (``GET``, ``SET``, ``DEL``, ``EXPIRE``, ``XADD``, ``XRANGE``,
``XINFO STREAM``).

Ids travel as two decimal strings (``ms``, ``seq``) and are compared as numbers by their
digits, because Lua's numbers are doubles and stream ids are 64-bit.
"""

from __future__ import annotations

__all__ = ["CLAIM", "PUBLISH", "READ", "RELEASE", "RENEW", "STATUS"]

_NEWER = """
local function newer(am, as, bm, bs)
  if #am ~= #bm then return #am > #bm end
  if am ~= bm then return am > bm end
  if #as ~= #bs then return #as > #bs end
  return as > bs
end
"""

PUBLISH = (
    _NEWER
    + """
-- KEYS: log, last, lease
-- ARGV: lease ('' when published without one), max_events, keep_running, keep_after_end,
--       then four per event: ms, seq, payload, '1' if it is the response's end else '0'
-- Returns how many events were appended, or -1 if the lease is not the current one.
if ARGV[1] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return -1
end
local last = redis.call('GET', KEYS[2])
local top_ms, top_seq = '0', '0'
if last then
  if string.sub(last, -4) == ' end' then
    return 0
  end
  top_ms, top_seq = string.match(last, '^(%d+)-(%d+)')
end
local appended, ended = 0, false
for i = 5, #ARGV, 4 do
  local ms, seq = ARGV[i], ARGV[i + 1]
  if newer(ms, seq, top_ms, top_seq) then
    -- 'p', the id before it: once this is the oldest entry kept, READ knows from it
    -- whether a reader's cursor missed anything trimmed.
    redis.call(
      'XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], ms .. '-' .. seq,
      'e', ARGV[i + 2], 'p', top_ms .. '-' .. top_seq
    )
    top_ms, top_seq, appended = ms, seq, appended + 1
    if ARGV[i + 3] == '1' then
      ended = true
      break
    end
  end
end
if appended > 0 then
  redis.call('SET', KEYS[2], top_ms .. '-' .. top_seq .. (ended and ' end' or ''))
end
local ttl = ended and ARGV[4] or ARGV[3]
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return appended
"""
)

READ = (
    _NEWER
    + """
-- KEYS: log, last
-- ARGV: the id to read after (exclusive), how many entries at most
-- Returns {0} for an unknown or expired response; {2, last} when entries right after
-- the id were trimmed away; else {1, last, entries}.
local last = redis.call('GET', KEYS[2])
if not last then
  return {0}
end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
if #entries > 0 then
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
  if oldest[1][1] == entries[1][1] then
    -- The reader is below the oldest entry kept: was anything after it trimmed?
    -- (XRANGE would skip it without a word.) The oldest entry names the one before it,
    -- the newest trimmed: a reader at or after that one lost nothing.
    local fields, before = oldest[1][2], nil
    for i = 1, #fields, 2 do
      if fields[i] == 'p' then
        before = fields[i + 1]
      end
    end
    if before then
      local bm, bs = string.match(before, '^(%d+)-(%d+)')
      local rm, rs = string.match(ARGV[1], '^(%d+)-(%d+)')
      if newer(bm, bs, rm, rs) then
        return {2, last}
      end
    else
      -- Written by an older respflow, without 'p': any trimming counts.
      local info = redis.call('XINFO', 'STREAM', KEYS[1])
      local field = {}
      for i = 1, #info, 2 do
        field[info[i]] = info[i + 1]
      end
      if field['entries-added'] == nil then
        return redis.error_reply('XINFO STREAM has no entries-added: respflow needs Redis 7.0+')
      end
      if field['entries-added'] > field['length'] then
        return {2, last}
      end
    end
  end
end
return {1, last, entries}
"""
)

STATUS = """
-- KEYS: last, lease
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}
"""

CLAIM = """
-- KEYS: lease
-- ARGV: '<token> <owner>', owner, ttl in ms
-- Returns 1 if the lease is now this claim's, 0 if another owner holds it.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then
  return 1
end
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, (string.find(held, ' ', 1, true) or 0) + 1) == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return 1
end
return 0
"""

RENEW = """
-- KEYS: lease, log, last
-- ARGV: '<token> <owner>', ttl in ms, keep_running in s
-- Returns 1 if renewed, 0 if the lease is no longer this one.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
-- A live producer keeps its log too, through a long silence (code running for minutes).
local last = redis.call('GET', KEYS[3])
if last and string.sub(last, -4) ~= ' end' then
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
return 1
"""

RELEASE = """
-- KEYS: lease
-- ARGV: '<token> <owner>'
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
