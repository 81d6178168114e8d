"""Streamed outputs and the output bounds on Redis: APPEND's arguments and its Lua functions.

Each output of request ``i`` is one element of the list ``<outp><i>``; the element at the same
place of ``<outp>m<i>`` (``_keys.output_meta``) says where it came from and where its string
fields end: ``"<emission order> <JSON object: field -> bytes before its closing quote>"``,
computed here when the output is appended. A ``request.delta`` splices its escaped text in at
that offset, in the same script as the event it appends, so a Task read at seq N holds exactly
the appends up to N, and nothing is decoded and re-encoded (cjson would change numbers). The
bounds (``max_outputs`` per request, ``max_output_bytes`` per task, as in
``skillwire.protocol``'s ``OutputBounds``) drop the oldest outputs in the same step.

The task hash keeps, per request ``i``: ``d:i`` outputs dropped and ``r:i`` the result JSON;
and per task ``ob`` bytes held and ``oc`` outputs emitted (the emission order).
"""

from __future__ import annotations

from typing import Any

import msgspec

from skillwire.protocol import Delta, EventType, encode

__all__ = ["OUTPUTS", "group_args", "string_fields"]


def group_args(type_: EventType, data: Any) -> tuple[bytes, bytes, bytes, bytes]:
    """One event's data JSON and the three extra arguments APPEND reads for its type."""
    if type_ is EventType.REQUEST_PROGRESS:
        # None given: the request keeps its progress (an empty one tells the script).
        progress = encode(float(data["progress"])) if "progress" in data else b""
        return encode(data), progress, b"", b""
    if type_ is EventType.REQUEST_FAILED:
        return encode(data), b"", encode(data["error"]), b""
    if type_ is EventType.REQUEST_OUTPUT:
        return string_fields(data)
    if type_ is EventType.REQUEST_DELTA:
        if type(data) is dict:  # a token's delta as a skill's append makes it: no conversion
            output, field, text = data.get("output"), data.get("field"), data.get("append")
            if type(output) is int and output >= 0 and type(field) is str and type(text) is str:
                return encode(data), b"%d" % output, field.encode(), encode(text)[1:-1]
        try:
            delta = msgspec.convert(data, Delta)
        except msgspec.ValidationError as exc:  # the script refuses it where lifecycle would
            return encode(data), b"", b"", f"request.delta: {exc}".encode()
        text = encode(delta.append)[1:-1]
        return encode(data), b"%d" % delta.output, delta.field.encode(), text
    if type_ is EventType.REQUEST_COMPLETED:
        if not isinstance(data, dict):
            return encode(data), b"", b"", b""
        return encode(data), encode(data) if data else b"null", b"", b""
    if type_ is EventType.REQUEST_CALL:
        # The child's id as a JSON string, added to the task's children (lifecycle.append).
        child = data.get("task_id") if isinstance(data, dict) else None
        return encode(data), encode(child) if isinstance(child, str) else b"", b"", b""
    return encode(data), b"", b"", b""


_NO_FIELDS = b"{}"


def string_fields(item: Any) -> tuple[bytes, bytes, bytes, bytes]:
    """An output's JSON and, as a JSON object, where each of its top-level string fields ends
    (the bytes before its closing quote): where a delta's text goes.

    msgspec encodes a dict as ``{"key":value,...}`` in insertion order, so the offsets follow
    from the encoded size of each key and value, measured up to the last string field."""
    json = encode(item)
    if type(item) is not dict:
        return json, _NO_FIELDS, b"", b""
    last = -1
    for position, (key, value) in enumerate(item.items()):
        if type(key) is not str:
            return json, _NO_FIELDS, b"", b""
        if type(value) is str:
            last = position
    offsets: dict[str, int] = {}
    at = 1  # past "{"
    for position, (key, value) in enumerate(item.items()):
        if position > last:
            break
        at += len(encode(key)) + 1  # and ":"
        size = len(encode(value))
        if type(value) is str:
            offsets[key] = at + size - 1
        at += size + 1  # and ","
    if last >= 0 and json[at - 1 : at] not in (b",", b"}"):  # never expected: then none streams
        return json, _NO_FIELDS, b"", b""
    return json, encode(offsets) if offsets else _NO_FIELDS, b"", b""


# Lua functions APPEND includes; they use its locals h, outp, max_outputs and max_bytes.
OUTPUTS = r"""
-- The oldest output of request j leaves the Task: counted in d:j, its bytes given back.
-- Returns the bytes the task still holds.
local function drop_oldest(j)
  local item = redis.call('LPOP', outp .. j)
  redis.call('LPOP', outp .. 'm' .. j)
  redis.call('HINCRBY', h, 'd:' .. j, 1)
  return redis.call('HINCRBY', h, 'ob', -#item)
end

-- Request j starts again: the outputs of its earlier run leave, uncounted.
local function forget_outputs(j)
  local held = 0
  for _, item in ipairs(redis.call('LRANGE', outp .. j, 0, -1)) do held = held + #item end
  if held > 0 then redis.call('HINCRBY', h, 'ob', -held) end
  redis.call('DEL', outp .. j, outp .. 'm' .. j)
  redis.call('HSET', h, 'd:' .. j, 0)
end

-- Over max_output_bytes: the oldest outputs leave, oldest first across requests.
local function enforce_bytes(n, total)
  while total > max_bytes do
    local oldest, which = nil, nil
    for j = 0, n - 1 do
      local m = redis.call('LINDEX', outp .. 'm' .. j, 0)
      if m then
        local order = tonumber(string.match(m, '^(%d+)'))
        if oldest == nil or order < oldest then oldest, which = order, j end
      end
    end
    if which == nil then break end  -- nothing held: nothing more to give back
    total = drop_oldest(which)
  end
end

local function add_output(index, n, data, offsets)
  local order = redis.call('HINCRBY', h, 'oc', 1)
  local held = redis.call('RPUSH', outp .. index, data)
  redis.call('RPUSH', outp .. 'm' .. index, order .. ' ' .. offsets)
  local total = redis.call('HINCRBY', h, 'ob', #data)
  while held > max_outputs do
    total = drop_oldest(index)
    held = held - 1
  end
  enforce_bytes(n, total)
end

-- A delta's checks, in lifecycle's order: nil when it may be appended, else an error reply.
-- Sets DELTA_AT to where it applies ({position, offsets, offset}) or nil (output dropped).
local DELTA_AT = nil
local function check_delta(index, out_n, field, text)
  DELTA_AT = nil
  if out_n == '' then return redis.error_reply('ILLEGAL ' .. text) end
  local dropped = tonumber(redis.call('HGET', h, 'd:' .. index) or '0')
  local emitted = dropped + redis.call('LLEN', outp .. index)
  local wanted = tonumber(out_n)
  if wanted >= emitted then
    return redis.error_reply('ILLEGAL request.delta: output ' .. out_n ..
      ' does not exist (' .. emitted .. ' emitted)')
  end
  local position = wanted - dropped
  if position < 0 then return nil end
  local meta = redis.call('LINDEX', outp .. 'm' .. index, position)
  local order, offsets = string.match(meta, '^(%d+) (.*)$')
  offsets = cjson.decode(offsets)
  local at = offsets[field]
  if type(at) ~= 'number' then
    return redis.error_reply('ILLEGAL request.delta: field `' .. field .. '` of output ' ..
      out_n .. ' is not a string')
  end
  DELTA_AT = {position, order, offsets, at}
  return nil
end

local function apply_delta(index, n, field, text)
  if DELTA_AT == nil or text == '' then return end
  local position, order, offsets, at = DELTA_AT[1], DELTA_AT[2], DELTA_AT[3], DELTA_AT[4]
  local key = outp .. index
  local item = redis.call('LINDEX', key, position)
  redis.call('LSET', key, position, string.sub(item, 1, at) .. text .. string.sub(item, at + 1))
  for f, o in pairs(offsets) do
    if o >= at and f ~= field then offsets[f] = o + #text end
  end
  offsets[field] = at + #text
  redis.call('LSET', outp .. 'm' .. index, position, order .. ' ' .. cjson.encode(offsets))
  enforce_bytes(n, redis.call('HINCRBY', h, 'ob', #text))
end
"""
