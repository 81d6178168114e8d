"""The AsyncAPI 3 document: the WebSocket ops and the SSE/NDJSON event frames."""

from __future__ import annotations

from typing import Any

import msgspec

from skillwire.protocol import (
    Accepted,
    Authenticated,
    AuthOp,
    CallOp,
    CancelOp,
    CancelWork,
    Delta,
    Ended,
    ErrorMessage,
    Event,
    EventMessage,
    Heartbeat,
    Ok,
    PingOp,
    Pong,
    SessionEvent,
    SessionEventMessage,
    SessionSnapshot,
    Subscribed,
    SubscribeOp,
    UnsubscribeOp,
    Welcome,
    Work,
    WorkCompleted,
    WorkDelta,
    WorkerHello,
    WorkError,
    WorkFailed,
    WorkOutput,
    WorkProgress,
)

__all__ = ["asyncapi_document"]

REF = "#/components/schemas/{name}"
CLIENT = {
    "auth": AuthOp,
    "call": CallOp,
    "subscribe": SubscribeOp,
    "unsubscribe": UnsubscribeOp,
    "cancel": CancelOp,
    "ping": PingOp,
}
SERVER = {
    "accepted": Accepted,
    "subscribed": Subscribed,
    "ok": Ok,
    "pong": Pong,
    "authenticated": Authenticated,
    "event": EventMessage,
    "session_event": SessionEventMessage,
    "ended": Ended,
    "heartbeat": Heartbeat,
    "error": ErrorMessage,
}

# The remote workers' channel (/api/v1/workers/ws, docs/workers.md).
WORKER_SENDS = {
    "auth": AuthOp,
    "ping": PingOp,
    "hello": WorkerHello,
    "progress": WorkProgress,
    "output": WorkOutput,
    "delta": WorkDelta,
    "completed": WorkCompleted,
    "failed": WorkFailed,
}
WORKER_RECEIVES = {
    "authenticated": Authenticated,
    "pong": Pong,
    "welcome": Welcome,
    "work": Work,
    "cancel": CancelWork,
    "heartbeat": Heartbeat,
    "error": WorkError,
}


def _worker_channel() -> tuple[dict[str, Any], dict[str, Any]]:
    """The workers' channel and its two operations."""
    messages = {
        f"worker_{op}": {"name": op, "payload": {"$ref": REF.format(name=type_.__name__)}}
        for op, type_ in [*WORKER_SENDS.items(), *WORKER_RECEIVES.items()]
    }
    channel = {
        "address": "/api/v1/workers/ws",
        "description": "Remote workers (subprotocol skillwire.worker.v1): hello, then work "
        "in and what it produced out; close 4401 unauthenticated, 4403 no `work` "
        "permission, 1001 silent for three heartbeat intervals.",
        "messages": messages,
        "bindings": {"ws": {"method": "GET"}},
    }

    def refs(ops: dict[str, Any]) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/workers/messages/worker_{op}"} for op in ops]

    operations = {
        "sendWorkerOp": {
            "action": "send",
            "channel": {"$ref": "#/channels/workers"},
            "messages": refs(WORKER_SENDS),
        },
        "receiveWork": {
            "action": "receive",
            "channel": {"$ref": "#/channels/workers"},
            "messages": refs(WORKER_RECEIVES),
        },
    }
    return channel, operations


def asyncapi_document() -> dict[str, Any]:
    types = [*CLIENT.values(), *SERVER.values(), Event, Delta, SessionEvent, SessionSnapshot]
    types += [*WORKER_SENDS.values(), *WORKER_RECEIVES.values()]
    _, schemas = msgspec.json.schema_components(types, ref_template=REF)
    # request.delta, spelled out: an Event whose data is a Delta (see Streamed outputs).
    schemas["DeltaEvent"] = {
        "title": "DeltaEvent",
        "description": "A request.delta: append `data.append` to string field `data.field` of "
        "output `data.output` of request `index` (outputs count from 0 since the request's "
        "latest request.started; output n sits at output[n - outputs_dropped] while the Task "
        "holds it). Consecutive deltas to one output may arrive merged; never split or "
        "reordered.",
        "allOf": [
            {"$ref": REF.format(name="Event")},
            {
                "type": "object",
                "properties": {
                    "type": {"const": "request.delta"},
                    "data": {"$ref": REF.format(name="Delta")},
                },
                "required": ["index"],
            },
        ],
    }
    messages: dict[str, Any] = {}
    for op, type_ in [*CLIENT.items(), *SERVER.items()]:
        messages[f"ws_{op}"] = {"name": op, "payload": {"$ref": REF.format(name=type_.__name__)}}
    messages["sse_event"] = {
        "name": "event",
        "summary": "One event: `id: <seq>`, `event: <type>`, `data: <Event JSON>`; "
        "NDJSON: one Event per line",
        "payload": {"$ref": REF.format(name="Event")},
    }
    messages["sse_delta"] = {
        "name": "request.delta",
        "summary": "A streamed output grows: `event: request.delta`, `data: <DeltaEvent JSON>`",
        "payload": {"$ref": REF.format(name="DeltaEvent")},
    }
    messages["ws_delta"] = {
        "name": "event",
        "summary": "An `event` message carrying a request.delta",
        "payload": {
            "allOf": [
                {"$ref": REF.format(name="EventMessage")},
                {"properties": {"event": {"$ref": REF.format(name="DeltaEvent")}}},
            ]
        },
    }
    messages["sse_session_event"] = {
        "name": "session_event",
        "summary": "One session event: `id: <the session's seq>`, `event: <type>` "
        "(session.task, task.event, session.closed, session.snapshot), `data: <SessionEvent "
        "JSON>`; NDJSON: one SessionEvent per line. The stream ends after session.closed.",
        "payload": {"$ref": REF.format(name="SessionEvent")},
    }
    messages["sse_heartbeat"] = {
        "name": "heartbeat",
        "summary": "`: heartbeat` comment (SSE) or an empty line (NDJSON)",
        "payload": {"type": "string"},
    }
    workers, worker_operations = _worker_channel()
    client_refs = [{"$ref": f"#/channels/websocket/messages/ws_{op}"} for op in CLIENT]
    server_refs = [{"$ref": f"#/channels/websocket/messages/ws_{op}"} for op in [*SERVER, "delta"]]
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "skillwire streaming channels",
            "version": "1",
            "description": "WebSocket at /api/v1/ws (subprotocol skillwire.v1): JSON text "
            "messages; a server frame may carry several, one per line. Close codes: 4401 "
            "unauthenticated, 4403 forbidden, 1009 message too big, 1012 server restarting, "
            "1013 client too slow (reconnect "
            "and resume with the last seq). SSE and NDJSON at /api/v1/tasks/{task_id}/events.",
        },
        "channels": {
            "websocket": {
                "address": "/api/v1/ws",
                "messages": {k: v for k, v in messages.items() if k.startswith("ws_")},
                "bindings": {"ws": {"method": "GET"}},
            },
            "workers": workers,
            "events": {
                "address": "/api/v1/tasks/{task_id}/events",
                "parameters": {"task_id": {"description": "A task id"}},
                "messages": {
                    "sse_event": messages["sse_event"],
                    "sse_delta": messages["sse_delta"],
                    "sse_heartbeat": messages["sse_heartbeat"],
                },
            },
            "session_events": {
                "address": "/api/v1/sessions/{session_id}/events",
                "parameters": {"session_id": {"description": "A session id"}},
                "messages": {
                    "sse_session_event": messages["sse_session_event"],
                    "sse_heartbeat": messages["sse_heartbeat"],
                },
            },
        },
        "operations": {
            "sendOp": {
                "action": "send",
                "channel": {"$ref": "#/channels/websocket"},
                "messages": client_refs,
            },
            "receiveWebSocket": {
                "action": "receive",
                "channel": {"$ref": "#/channels/websocket"},
                "messages": server_refs,
            },
            "receiveStream": {
                "action": "receive",
                "channel": {"$ref": "#/channels/events"},
                "messages": [
                    {"$ref": "#/channels/events/messages/sse_event"},
                    {"$ref": "#/channels/events/messages/sse_delta"},
                    {"$ref": "#/channels/events/messages/sse_heartbeat"},
                ],
            },
            "receiveSessionStream": {
                "action": "receive",
                "channel": {"$ref": "#/channels/session_events"},
                "messages": [
                    {"$ref": "#/channels/session_events/messages/sse_session_event"},
                    {"$ref": "#/channels/session_events/messages/sse_heartbeat"},
                ],
            },
            **worker_operations,
        },
        "components": {"schemas": schemas},
    }
