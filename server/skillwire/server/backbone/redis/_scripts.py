"""Lua scripts: each task mutation is one atomic script, one round trip.

They mirror ``skillwire.protocol.lifecycle`` (the Python rules the memory backbone runs).
Its tables are the one source of the rules: the Lua tables below (terminal statuses, the
terminal event of each, the request transitions) are generated from them when this module
is imported, so an event type added there is known here too.
``tests/server/backbone/test_contract.py`` pushes the same random event sequences through
both backbones and checks that they leave the same logs and tasks.
Task and event JSON are assembled from stored JSON fragments, never re-encoded.
Streamed outputs and the output bounds: ``_outputs`` (APPEND includes its Lua functions).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from skillwire.protocol import lifecycle

from . import _keys as keys
from ._outputs import OUTPUTS
from ._session_lua import SESSION_PART, SESSION_SNAPSHOT

__all__ = [
    "APPEND",
    "CANCEL",
    "CLAIM_DELIVERIES",
    "FINISH_ATTEMPT",
    "FORGET_INDEXES",
    "INDEX",
    "LIFECYCLE",
    "READ",
    "RETRY_DELIVERY",
    "SNAPSHOT",
    "VIEW",
]


def _lua_string(value: str) -> str:
    # Statuses and event types are plain names; anything else must not reach Lua unquoted.
    if not re.fullmatch(r"[a-z_.]+", value):
        raise ValueError(f"not a lifecycle name: {value!r}")
    return f"'{value}'"


def _lua_set(values: Iterable[str]) -> str:
    return "{" + ", ".join(f"[{_lua_string(v)}]=true" for v in sorted(values)) + "}"


def _lua_map(pairs: Mapping[str, str]) -> str:
    return (
        "{" + ", ".join(f"[{_lua_string(k)}]={_lua_string(pairs[k])}" for k in sorted(pairs)) + "}"
    )


def _lifecycle_tables() -> str:
    """The protocol's lifecycle tables as Lua locals."""
    rules = "\n".join(
        f"  [{_lua_string(type_)}] = {{{_lua_set(allowed)}, {_lua_string(to)}}},"
        for type_, (allowed, to) in sorted(lifecycle.REQUEST_TRANSITIONS.items())
    )
    terminal_events = {
        status.value: type_.value for status, type_ in lifecycle.TASK_TERMINAL_EVENTS.items()
    }
    return f"""-- Generated from skillwire.protocol.lifecycle: change the rules there, not here.
local TERMINAL_TASK = {_lua_set(lifecycle.TERMINAL_TASK_STATUSES)}
local TERMINAL_REQ = {_lua_set(lifecycle.TERMINAL_REQUEST_STATUSES)}
-- task status -> the event that ends the task in it
local TERMINAL_EVENT = {_lua_map(terminal_events)}
-- request event type -> {{request statuses it may follow, the status it leaves the request in}}
local RULES = {{
{rules}
}}
"""


# The lifecycle tables alone (tests evaluate them against the protocol's).
LIFECYCLE = _lifecycle_tables()

# The prefix of the status indexes of every task (the owner's is the task's field 'ix'), and the
# set of every index's name.
_INDEX_NAMES = f"local ALL_IX = {keys.index_prefix(None)!r}\nlocal INDEXES = {keys.INDEXES!r}\n"

_COMMON = (
    LIFECYCLE
    + SESSION_PART
    + _INDEX_NAMES
    + r"""

-- The task leaves one status for another: its id moves from the one's status indexes (every
-- task's and its owner's) to the other's, in the script that changes the status. A task
-- created before the indexes existed has no 'ix' and is in none.
local function reindex(h, task_id, from, to)
  local ix = redis.call('HMGET', h, 'ix', 'cms')
  if not ix[1] then return end
  for _, prefix in ipairs({ALL_IX, ix[1]}) do
    redis.call('ZREM', prefix .. 'status:' .. from, task_id)
    redis.call('ZADD', prefix .. 'status:' .. to, ix[2], task_id)
    redis.call('SADD', INDEXES, prefix .. 'status:' .. to)
  end
end

local function fields(h)
  local flat = redis.call('HGETALL', h)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function quoted_or_null(value)
  if value == nil or value == '' then return 'null' end
  return '"' .. value .. '"'
end

local function task_json(h, outp)
  local t = fields(h)
  local n = tonumber(t['n'])
  local reqs, previews = {}, {}
  for i = 0, n - 1 do
    local out = redis.call('LRANGE', outp .. i, 0, -1)
    for _, o in ipairs(out) do previews[#previews + 1] = o end
    reqs[#reqs + 1] = '{"index":' .. i .. ',"status":"' .. t['s:' .. i] .. '","progress":' ..
      t['p:' .. i] .. ',"output":[' .. table.concat(out, ',') .. '],"outputs_dropped":' ..
      (t['d:' .. i] or '0') .. ',"result":' .. (t['r:' .. i] or 'null') .. ',"error":' ..
      t['e:' .. i] .. '}'
  end
  local finished = 'null'
  if t['finished_at'] ~= '' then finished = '"' .. t['finished_at'] .. '"' end
  return '{' .. t['head'] .. ',"status":"' .. t['status'] .. '","created_at":' .. t['created_at'] ..
    ',"updated_at":"' .. t['updated_at'] .. '","finished_at":' .. finished .. ',"requests":[' ..
    table.concat(reqs, ',') .. '],"previews":[' .. table.concat(previews, ',') .. '],"error":' ..
    t['error'] .. ',"last_seq":' .. t['last_seq'] .. ',"metadata":' .. t['meta'] .. ',"links":' ..
    t['links'] .. ',"session_id":' .. quoted_or_null(t['session']) .. ',"parent_task_id":' ..
    quoted_or_null(t['parent']) .. ',"children":[' .. (t['children'] or '') .. ']}'
end

-- Append one event: the next seq, the log (capped), and a record for the live channel,
-- published once per script by publish(). data_fn builds the data after the seq is taken,
-- so a terminal task's data carries its own last_seq.
-- A script appends to one task at one time: 'updated_at' is written by its first event only.
local LIVE = {}
local TOUCHED = false
local function emit(h, stream, channel, task_id, now, maxlen, etype, index, data_fn, out)
  local seq = redis.call('HINCRBY', h, 'last_seq', 1)
  if not TOUCHED then
    redis.call('HSET', h, 'updated_at', now)
    TOUCHED = true
  end
  local json = '{"task_id":"' .. task_id .. '","seq":' .. seq .. ',"type":"' .. etype ..
    '","time":"' .. now .. '","data":' .. data_fn()
  if index ~= nil then json = json .. ',"index":' .. index end
  json = json .. '}'
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, seq .. '-0', 't', etype, 'e', json)
  if SESSION then session_emit(SESSION, 'task.event', json) end
  LIVE[#LIVE + 1] = seq .. ' ' .. etype .. ' ' .. json
  out[#out + 1] = seq
  out[#out + 1] = etype
  out[#out + 1] = json
end

-- Every event of this script in one message, a line each (event JSON holds no raw newline).
local function publish(channel)
  if #LIVE > 0 then redis.call('PUBLISH', channel, table.concat(LIVE, '\n')) end
  publish_session(SESSION)
end

local function expire_all(h, stream, outp, n, ttl)
  redis.call('EXPIRE', h, ttl)
  redis.call('EXPIRE', stream, ttl)
  for i = 0, n - 1 do
    redis.call('EXPIRE', outp .. i, ttl)
    redis.call('EXPIRE', outp .. 'm' .. i, ttl)
  end
end

-- The webhook part of APPEND's and CANCEL's arguments: the due and pending-index keys, then
-- ARGV from ``first``: now in ms, the delivery hash prefix, the delivery id prefix and the
-- configured URLs.
local function webhooks_from(due, pending, first)
  local urls = {}
  for i = first + 3, #ARGV do urls[#urls + 1] = ARGV[i] end
  return {due = due, pending = pending, now_ms = ARGV[first], prefix = ARGV[first + 1],
    id_prefix = ARGV[first + 2], urls = urls}
end

-- One delivery per URL (the task's own first, then the configured ones, each once), created
-- with the terminal event in the same script: neither exists without the other.
local function create_deliveries(h, task_id, etype, now, data, wh)
  local targets, seen = {}, {}
  local own = redis.call('HGET', h, 'webhook_url')
  if own and own ~= '' then
    targets[1] = own
    seen[own] = true
  end
  for _, url in ipairs(wh.urls) do
    if not seen[url] then
      targets[#targets + 1] = url
      seen[url] = true
    end
  end
  if #targets == 0 then return end
  local payload = '{"type":"' .. etype .. '","timestamp":"' .. now .. '","data":' .. data .. '}'
  for n, url in ipairs(targets) do
    local id = wh.id_prefix .. (n - 1)
    redis.call('HSET', wh.prefix .. id, 'id', id, 'url', url, 'task_id', task_id,
      'type', etype, 'status', 'pending', 'attempts', 0, 'round', 0, 'last_error', '',
      'next_at', wh.now_ms, 'created_at', wh.now_ms, 'payload', payload)
    redis.call('ZADD', wh.due, wh.now_ms, id)
    redis.call('ZADD', wh.pending, wh.now_ms, id)
  end
end

local function finish(h, stream, channel, outp, task_id, now, maxlen, status, ttl, out, wh)
  reindex(h, task_id, redis.call('HGET', h, 'status'), status)
  redis.call('HSET', h, 'status', status, 'finished_at', now)
  local final
  local etype = TERMINAL_EVENT[status]
  emit(h, stream, channel, task_id, now, maxlen, etype, nil,
    function() final = task_json(h, outp); return final end, out)
  expire_all(h, stream, outp, tonumber(redis.call('HGET', h, 'n')), ttl)
  create_deliveries(h, task_id, etype, now, final, wh)
end
"""
)

# KEYS: task hash, events stream, live channel, deliveries due, deliveries pending
# ARGV: task_id, outputs prefix, now, maxlen, retention ttl, live ttl, count,
#       max outputs per request, max output bytes per task, "1" to have the events back,
#       count groups of (type, index, data json, x1, x2, x3), where by type
#         request.progress:  x1 = progress json, or "" to keep it
#         request.failed:    x2 = error json
#         request.output:    x1 = its string fields' offsets (JSON object)
#         request.delta:     x1 = output n ("" when malformed, x3 the message), x2 = field,
#                            x3 = the appended text as escaped in JSON, without quotes
#         request.completed: x1 = result json (null for {}), or "" when not an object
#       now ms, delivery prefix, delivery id prefix, configured webhook URLs... (only when
#       a group may finish its request: no other batch can end the task)
# Returns {applied, seq, type, json, seq, type, json, ...}: the groups applied, in order,
# stopping at the first one refused (task or request already finished), and their events;
# without the events asked for, {applied, 1 if the task finished else 0}.
APPEND = (
    _COMMON
    + r"""
local h, stream, channel = KEYS[1], KEYS[2], KEYS[3]
local task_id, outp, now, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, live_ttl, count = ARGV[5], ARGV[6], tonumber(ARGV[7])
local max_outputs, max_bytes = tonumber(ARGV[8]), tonumber(ARGV[9])
local with_events = ARGV[10] == '1'
local GROUP, FIRST = 6, 11
local wh = webhooks_from(KEYS[4], KEYS[5], FIRST + GROUP * count)
session_of(h, now, maxlen, ttl)

"""
    + OUTPUTS
    + r"""
-- What this script reads of the task hash more than once, read once: its status and its
-- requests' (kept in step with each HSET below; a status ending the task ends the script),
-- and n, which never changes. A batch of outputs costs fewer commands each.
local STATUS, N, REQ = nil, nil, {}

-- One request event: 'ok', 'refused' (already finished), 'finished' (it ended the task),
-- or an error reply for an illegal transition.
-- The checks come in lifecycle.append's order, so both backbones answer bad input alike.
local function apply(etype, index, data, x1, x2, x3, out)
  if STATUS == nil then STATUS = redis.call('HGET', h, 'status') end
  local status = STATUS
  if not status then return 'refused' end
  local rule = RULES[etype]
  if rule == nil then return redis.error_reply('ILLEGAL ' .. etype .. ' is not a request event') end
  if N == nil then N = tonumber(redis.call('HGET', h, 'n')) end
  local n = N
  local i = tonumber(index)
  if i == nil or i < 0 or i >= n then
    return redis.error_reply('ILLEGAL request index ' .. index .. ' out of range')
  end
  if TERMINAL_TASK[status] then return 'refused' end
  local rs = REQ[index]
  if rs == nil then
    rs = redis.call('HGET', h, 's:' .. index)
    REQ[index] = rs
  end
  if TERMINAL_REQ[rs] then return 'refused' end
  if not rule[1][rs] then
    return redis.error_reply('ILLEGAL ' .. etype .. ' cannot follow request status ' .. rs)
  end
  if etype == 'request.delta' then
    local refused = check_delta(index, x1, x2, x3)
    if refused then return refused end
  elseif etype == 'request.completed' and x1 == '' then
    return redis.error_reply('ILLEGAL request.completed data must be an object')
  end
  if etype == 'request.started' and status == 'queued' then
    reindex(h, task_id, status, 'running')
    redis.call('HSET', h, 'status', 'running')
    STATUS = 'running'
    emit(h, stream, channel, task_id, now, maxlen, 'task.started', nil,
      function() return '{}' end, out)
  end
  if rs ~= rule[2] then  -- an output or a delta leaves a running request running
    redis.call('HSET', h, 's:' .. index, rule[2])
    REQ[index] = rule[2]
  end
  if etype == 'request.started' then
    forget_outputs(index)
    redis.call('HSET', h, 'p:' .. index, '0.0', 'r:' .. index, 'null')
  elseif etype == 'request.progress' then
    if x1 ~= '' then redis.call('HSET', h, 'p:' .. index, x1) end
  elseif etype == 'request.output' then
    add_output(index, n, data, x1)
  elseif etype == 'request.delta' then
    apply_delta(index, n, x2, x3)
  elseif etype == 'request.completed' then
    redis.call('HSET', h, 'p:' .. index, '1.0', 'r:' .. index, x1)
  elseif etype == 'request.failed' then
    redis.call('HSET', h, 'e:' .. index, x2)
  elseif etype == 'request.call' and x1 ~= '' then
    local children = redis.call('HGET', h, 'children')
    if children and children ~= '' then x1 = children .. ',' .. x1 end
    redis.call('HSET', h, 'children', x1)
  end
  emit(h, stream, channel, task_id, now, maxlen, etype, index, function() return data end, out)
  if TERMINAL_REQ[rule[2]] then
    local done = redis.call('HINCRBY', h, 'done', 1)
    if done >= n then
      local completed, failed = 0, 0
      local first_error = nil
      for j = 0, n - 1 do
        local s = redis.call('HGET', h, 's:' .. j)
        if s == 'completed' then completed = completed + 1 end
        if s == 'failed' then
          failed = failed + 1
          if first_error == nil then first_error = redis.call('HGET', h, 'e:' .. j) end
        end
      end
      local final = 'partial'
      if completed == n then final = 'completed' elseif failed == n then final = 'failed' end
      if final == 'failed' and redis.call('HGET', h, 'error') == 'null' then
        redis.call('HSET', h, 'error', first_error)
      end
      finish(h, stream, channel, outp, task_id, now, maxlen, final, ttl, out, wh)
      return 'finished'
    end
  end
  return 'ok'
end

local out = {0}
local outcome = 'ok'
for g = 0, count - 1 do
  local at = FIRST + GROUP * g
  outcome = apply(ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4],
    ARGV[at + 5], out)
  if type(outcome) == 'table' then  -- an illegal transition: what was applied still goes out
    publish(channel)
    return outcome
  end
  if outcome == 'refused' then break end
  out[1] = out[1] + 1
  if outcome == 'finished' then break end
end
if out[1] > 0 and outcome ~= 'finished' then
  expire_all(h, stream, outp, tonumber(redis.call('HGET', h, 'n')), live_ttl)
end
publish(channel)
if not with_events then return {out[1], outcome == 'finished' and 1 or 0} end
return out
"""
)

# KEYS: task hash, events stream, live channel, control channel, deliveries due, pending
# ARGV: task_id, outputs prefix, now, maxlen, retention ttl,
#       now ms, delivery prefix, delivery id prefix, configured webhook URLs...
CANCEL = (
    _COMMON
    + r"""
local h, stream, channel, control = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local task_id, outp, now, maxlen, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local wh = webhooks_from(KEYS[5], KEYS[6], 6)
local status = redis.call('HGET', h, 'status')
session_of(h, now, maxlen, ttl)
if not status then return {'missing'} end
if TERMINAL_TASK[status] then return {'conflict', status} end
local n = tonumber(redis.call('HGET', h, 'n'))
for j = 0, n - 1 do
  if not TERMINAL_REQ[redis.call('HGET', h, 's:' .. j)] then
    redis.call('HSET', h, 's:' .. j, 'cancelled')
  end
end
local out = {'ok'}
finish(h, stream, channel, outp, task_id, now, maxlen, 'cancelled', ttl, out, wh)
publish(channel)
redis.call('PUBLISH', control, 'cancel ' .. task_id)
return out
"""
)

# A session and its last tasks as of one moment (see _session_lua.SESSION_SNAPSHOT).
SNAPSHOT = _COMMON + SESSION_SNAPSHOT

# A new task's id enters its indexes, whose names join the set of every index's: one command
# in create_task's MULTI, not two an index.
# KEYS: the set of index names, the indexes   ARGV: score (creation time in ms), task id
INDEX = r"""
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[1], ARGV[2])
  redis.call('SADD', KEYS[1], KEYS[i])
end
"""

# Forget the names of indexes the sweep left empty (Redis deleted them), unless an id entered
# one meanwhile: checked and dropped in one step.
# KEYS: the set of index names   ARGV: index names
FORGET_INDEXES = r"""
for _, index in ipairs(ARGV) do
  if redis.call('EXISTS', index) == 0 then redis.call('SREM', KEYS[1], index) end
end
"""

# KEYS: task hash   ARGV: outputs prefix
VIEW = (
    _COMMON
    + r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local owner_webhook = redis.call('HMGET', KEYS[1], 'owner', 'webhook_url')
return {task_json(KEYS[1], ARGV[1]), owner_webhook[1], owner_webhook[2]}
"""
)

# KEYS: task hash, events stream   ARGV: after, limit
READ = r"""
local state = redis.call('HMGET', KEYS[1], 'status', 'last_seq')
if not state[1] then return nil end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first_seq = state[2]
if #first > 0 then first_seq = string.match(first[1][1], '^(%d+)') end
local entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
return {state[1], state[2], first_seq, entries}
"""

# Claim due deliveries: lapsed claims first (their process died or stalled), then the due ones.
# Each claim counts one attempt and takes a lease; returns the claimed hashes and when the
# next delivery falls due (ms, '' when none).
# KEYS: deliveries due, deliveries claimed   ARGV: now ms, lease ms, count, delivery prefix
CLAIM_DELIVERIES = r"""
local due, claimed = KEYS[1], KEYS[2]
local now, lease, count, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local ids = redis.call('ZRANGEBYSCORE', claimed, '-inf', now, 'LIMIT', 0, count)
if #ids < count then
  local more = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, count - #ids)
  for _, id in ipairs(more) do ids[#ids + 1] = id end
end
local out = {}
for _, id in ipairs(ids) do
  local key = prefix .. id
  redis.call('ZREM', due, id)
  if redis.call('EXISTS', key) == 1 then
    redis.call('ZADD', claimed, now + lease, id)
    redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'next_at', '')
    out[#out + 1] = redis.call('HGETALL', key)
  else
    redis.call('ZREM', claimed, id)
  end
end
local next_due = ''
local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
if #first > 0 then next_due = first[2] end
local lapse = redis.call('ZRANGE', claimed, 0, 0, 'WITHSCORES')
if #lapse > 0 and (next_due == '' or tonumber(lapse[2]) < tonumber(next_due)) then
  next_due = lapse[2]
end
return {out, next_due}
"""

# Record an attempt's outcome, only if that attempt still holds the claim (else 0).
# KEYS: delivery hash, due, claimed, pending index, delivered index, failed index
# ARGV: id, attempt, outcome (delivered|retry|failed), last error, retry at ms, retention ttl
FINISH_ATTEMPT = r"""
local h, due, claimed = KEYS[1], KEYS[2], KEYS[3]
local id, attempt, outcome, err = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local retry_at, ttl = ARGV[5], ARGV[6]
if redis.call('HGET', h, 'attempts') ~= attempt then return 0 end
if not redis.call('ZSCORE', claimed, id) then return 0 end
redis.call('ZREM', claimed, id)
redis.call('HSET', h, 'last_error', err)
if outcome == 'retry' then
  redis.call('HSET', h, 'next_at', retry_at)
  redis.call('ZADD', due, retry_at, id)
  return 1
end
redis.call('HSET', h, 'status', outcome)
local created = redis.call('HGET', h, 'created_at')
redis.call('ZREM', KEYS[4], id)
if outcome == 'delivered' then
  redis.call('ZADD', KEYS[5], created, id)
else
  redis.call('ZADD', KEYS[6], created, id)
end
redis.call('EXPIRE', h, ttl)
return 1
"""

# Make a delivery due now as a new round of attempts ('missing', 'inflight' or 'ok' + hash).
# KEYS: delivery hash, due, claimed, pending index, delivered index, failed index
# ARGV: id, now ms
RETRY_DELIVERY = r"""
local h, due, claimed = KEYS[1], KEYS[2], KEYS[3]
local id, now = ARGV[1], ARGV[2]
if redis.call('EXISTS', h) == 0 then return {'missing'} end
if redis.call('ZSCORE', claimed, id) then return {'inflight'} end
local created = redis.call('HGET', h, 'created_at')
redis.call('ZREM', KEYS[5], id)
redis.call('ZREM', KEYS[6], id)
redis.call('ZADD', KEYS[4], created, id)
redis.call('HSET', h, 'status', 'pending', 'round', redis.call('HGET', h, 'attempts'),
  'next_at', now)
redis.call('PERSIST', h)
redis.call('ZADD', due, now, id)
return {'ok', redis.call('HGETALL', h)}
"""
