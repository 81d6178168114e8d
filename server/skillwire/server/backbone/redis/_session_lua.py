"""The session part of the Redis scripts: a task's events reach its session's log in the
same script as its own log (one round trip, atomic), and the session scripts themselves.

``SESSION_PART`` goes into every task script (``_scripts._COMMON``). It is guarded by whether
the task belongs to a session: a task without one pays one HGET inside the script and
nothing else. A session's keys are built here from the key names of ``_keys`` (Lua format
strings), so a task's script finds its session's hash, log and live channel by its id.
"""

from __future__ import annotations

from collections.abc import Callable

from . import _keys as keys

__all__ = [
    "SESSION_CLOSE_FINISH",
    "SESSION_CLOSE_MARK",
    "SESSION_CREATE_TASK",
    "SESSION_PART",
    "SESSION_SNAPSHOT",
    "SESSION_VIEW",
]


def _format(build: Callable[[str], str]) -> str:
    """A key function of ``_keys`` as a Lua ``string.format`` pattern of the id."""
    name = build("\x00")
    if "%" in name or "'" in name:
        raise ValueError(f"a key name Lua cannot format: {name!r}")
    return name.replace("\x00", "%s")


_NAMES = f"""
local SESSION_HASH_FMT = '{_format(keys.session)}'
local SESSION_TASKS_FMT = '{_format(keys.session_tasks)}'
local SESSION_EVENTS_FMT = '{_format(keys.events)}'
local SESSION_LIVE_FMT = '{_format(keys.live)}'
local TASK_HASH_FMT = '{_format(keys.task)}'
local TASK_OUT_FMT = '{_format(keys.output_prefix)}'
"""

SESSION_PART = (
    _NAMES
    + r"""
-- The session of the task whose hash is h (nil when it has none): its keys, and its live
-- events of this script, published once by publish_session().
local SESSION = nil
local function session_of(h, now, maxlen, ttl)
  local sid = redis.call('HGET', h, 'session')
  if not sid or sid == '' then return nil end
  SESSION = {id = sid, h = string.format(SESSION_HASH_FMT, sid),
    stream = string.format(SESSION_EVENTS_FMT, sid), live = string.format(SESSION_LIVE_FMT, sid),
    tasks = string.format(SESSION_TASKS_FMT, sid), now = now, maxlen = maxlen, ttl = ttl,
    out = {}}
  return SESSION
end

-- Append one session event (its data already JSON); returns its seq. (``updated_at`` is
-- set once per script, by publish_session.)
local function session_emit(s, etype, data)
  local seq = redis.call('HINCRBY', s.h, 'last_seq', 1)
  local json = '{"session_id":"' .. s.id .. '","seq":' .. seq .. ',"type":"' .. etype ..
    '","time":"' .. s.now .. '","data":' .. data .. '}'
  redis.call('XADD', s.stream, 'MAXLEN', '~', s.maxlen, seq .. '-0', 't', etype, 'e', json)
  s.out[#s.out + 1] = seq .. ' ' .. etype .. ' ' .. json
  return seq
end

-- Every session event of this script in one message; retention counts from now.
local function publish_session(s)
  if s == nil or #s.out == 0 then return end
  redis.call('HSET', s.h, 'updated_at', s.now)
  redis.call('PUBLISH', s.live, table.concat(s.out, '\n'))
  redis.call('EXPIRE', s.h, s.ttl)
  redis.call('EXPIRE', s.stream, s.ttl)
  redis.call('EXPIRE', s.tasks, s.ttl)
end

local function session_json(s)
  local t = {}
  local flat = redis.call('HGETALL', s.h)
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  local ids = redis.call('LRANGE', s.tasks, 0, -1)
  local quoted = {}
  for i, id in ipairs(ids) do quoted[i] = '"' .. id .. '"' end
  local status = t['status']
  if status == 'closing' then status = 'closed' end
  return '{"session_id":"' .. s.id .. '","title":' .. t['title'] .. ',"metadata":' ..
    t['meta'] .. ',"status":"' .. status .. '","created_at":"' .. t['created_at'] ..
    '","updated_at":"' .. t['updated_at'] .. '","last_seq":' .. t['last_seq'] ..
    ',"task_ids":[' .. table.concat(quoted, ',') .. ']}'
end
"""
)

# A task that joins a session: the task, its first event, the session's ``session.task`` and
# the first event as ``task.event``, and its work, in one script (the session must be open).
# With an idempotency key (ARGV[11] = '1'), a key already taken answers {'earlier', value}
# and nothing is created; else the key is taken in the same step.
# KEYS: task hash, task events, the set of index names, (unused), work stream, session hash,
#       session events, session tasks, session live, idempotency key (unused without one),
#       then the task's indexes (as create_task's INDEX script takes them)
# ARGV: task_id, session_id, ttl, created ms, now, maxlen, first seq, first type, first json,
#       session.task data json, with key ('1' or '0'), key value, key ttl,
#       mapping pairs count, mapping..., work items...
SESSION_CREATE_TASK = r"""
if ARGV[11] == '1' then
  local earlier = redis.call('GET', KEYS[10])
  if earlier then return {'earlier', earlier} end
end
local status = redis.call('HGET', KEYS[6], 'status')
if not status then return {'missing'} end
if status ~= 'open' then return {'closed'} end
if ARGV[11] == '1' then redis.call('SET', KEYS[10], ARGV[12], 'EX', ARGV[13]) end
local task_id, sid, ttl, created = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, maxlen = ARGV[5], ARGV[6]
local MAP = 15
local pairs_n = tonumber(ARGV[14])
local mapping = {}
for i = MAP, MAP - 1 + 2 * pairs_n do mapping[#mapping + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(mapping))
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('XADD', KEYS[2], ARGV[7] .. '-0', 't', ARGV[8], 'e', ARGV[9])
redis.call('EXPIRE', KEYS[2], ttl)
for i = 11, #KEYS do
  redis.call('ZADD', KEYS[i], created, task_id)
  redis.call('SADD', KEYS[3], KEYS[i])
end
redis.call('RPUSH', KEYS[8], task_id)
local s = {id = sid, h = KEYS[6], stream = KEYS[7], tasks = KEYS[8], live = KEYS[9],
  now = now, maxlen = maxlen, ttl = ttl, out = {}}
"""

_CREATE_TAIL = r"""
session_emit(s, 'session.task', ARGV[10])
session_emit(s, 'task.event', ARGV[9])
publish_session(s)
for i = MAP + 2 * pairs_n, #ARGV do redis.call('XADD', KEYS[5], '*', 'w', ARGV[i]) end
return {'ok'}
"""

SESSION_CREATE_TASK = SESSION_PART + SESSION_CREATE_TASK + _CREATE_TAIL

# KEYS: session hash, session tasks   ARGV: session id
# Returns nil, or {session json, owner, raw status}.
SESSION_VIEW = (
    SESSION_PART
    + r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local s = {id = ARGV[1], h = KEYS[1], tasks = KEYS[2]}
local state = redis.call('HMGET', KEYS[1], 'owner', 'status')
return {session_json(s), state[1], state[2]}
"""
)

# No task joins from now on ('closing'); returns {'ok', task ids...}, {'missing'} or
# {'conflict'}. A session left 'closing' (its closer stopped before session.closed) may be
# closed again: its tasks are cancelled again and the log ends then.
# KEYS: session hash, session tasks
SESSION_CLOSE_MARK = r"""
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status == 'closed' then return {'conflict'} end
redis.call('HSET', KEYS[1], 'status', 'closing')
local out = {'ok'}
for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do out[#out + 1] = id end
return out
"""

# After its tasks are cancelled: ``session.closed`` (the Session) ends the log.
# KEYS: session hash, session events, session tasks, session live
# ARGV: session id, now, maxlen, ttl.   Returns the session.closed event's JSON, or nil when
# another closer appended it first.
SESSION_CLOSE_FINISH = (
    SESSION_PART
    + r"""
local s = {id = ARGV[1], h = KEYS[1], stream = KEYS[2], tasks = KEYS[3], live = KEYS[4],
  now = ARGV[2], maxlen = ARGV[3], ttl = ARGV[4], out = {}}
-- Two closers of one session: the first ends the log, the second finds it ended.
if redis.call('HGET', KEYS[1], 'status') ~= 'closing' then return false end
redis.call('HSET', KEYS[1], 'status', 'closed')
local seq = redis.call('HINCRBY', s.h, 'last_seq', 1)
redis.call('HSET', s.h, 'updated_at', s.now)
local json = '{"session_id":"' .. s.id .. '","seq":' .. seq .. ',"type":"session.closed",' ..
  '"time":"' .. s.now .. '","data":' .. session_json(s) .. '}'
redis.call('XADD', s.stream, 'MAXLEN', '~', s.maxlen, seq .. '-0', 't', 'session.closed', 'e', json)
s.out[1] = seq .. ' session.closed ' .. json
publish_session(s)
return json
"""
)

# The session and its last ``count`` tasks, as of one moment.
# KEYS: session hash, session tasks   ARGV: session id, count
# Returns nil, or {session json, task json...}. The task part is inserted by _scripts
# (it needs task_json); see ``snapshot_script``.
SESSION_SNAPSHOT = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local s = {id = ARGV[1], h = KEYS[1], tasks = KEYS[2]}
local out = {session_json(s)}
for _, id in ipairs(redis.call('LRANGE', KEYS[2], -tonumber(ARGV[2]), -1)) do
  local th = string.format(TASK_HASH_FMT, id)
  if redis.call('EXISTS', th) == 1 then
    out[#out + 1] = task_json(th, string.format(TASK_OUT_FMT, id))
  end
end
return out
"""
