"""The OpenAPI 3.1 document, generated from the protocol's msgspec schemas and the skills.

Every registered skill gets its own call operation whose request body carries that skill's
input schema, so clients (and schemathesis) see exactly what each skill accepts.
"""

from __future__ import annotations

from typing import Any

import msgspec

from skillwire.protocol import (
    AppsList,
    Delivery,
    DeliveryList,
    DeliveryStatus,
    Delta,
    ErrorEnvelope,
    Event,
    HealthStatus,
    ReadyStatus,
    Skill,
    Task,
    TaskList,
    TaskStatus,
    Ticket,
    WorkerList,
)

from ..engine import Registry
from ._openapi_sessions import SESSION_SCHEMAS, session_paths

__all__ = ["openapi_document"]

REF = "#/components/schemas/{name}"
_ERRORS = {
    "400": "Malformed JSON, a bad query parameter or an unsupported version",
    "401": "Missing or invalid credentials",
    "403": "The key's role or scopes do not allow this",
    "404": "Unknown route, skill or task",
    "409": "Conflict (a finished task, an idempotency key reused with another body)",
    "410": "The task or session is past the retention window",
    "413": "The body is over the size limit",
    "422": "The body does not match the schema",
    "429": "Over the rate limit",
    "503": "The backbone is unavailable or the server is draining",
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(name=name)}


def _errors(*codes: str) -> dict[str, Any]:
    return {
        code: {"description": _ERRORS[code], "content": _json(_ref("ErrorEnvelope"))}
        for code in codes
    }


def _auth(codes: tuple[str, ...] = ()) -> dict[str, Any]:
    return _errors("401", "403", "429", "503", *codes)


def _param(
    name: str, where: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "schema": schema,
        "description": description,
    }


TASK_ID = _param("task_id", "path", {"type": "string"}, "A task id (tsk_...)", required=True)
STREAM_CONTENT = {
    "text/event-stream": {
        "schema": {"type": "string"},
        "x-frames": "id/event/data, : heartbeat",
        "x-event": _ref("Event"),
    },
    "application/x-ndjson": {
        "schema": {"type": "string"},
        "x-frames": "one Event per line",
        "x-event": _ref("Event"),
    },
}


def _call_operation(spec: Any, max_requests: int) -> dict[str, Any]:
    # A skill declared by a JSON Schema (an HTTP skill) shows that schema itself.
    items = spec.input_schema if spec.check is not None else _ref(spec.input_type.__name__)
    body = {
        "type": "object",
        "properties": {
            "requests": {
                "type": "array",
                "items": items,
                "minItems": 1,
                "maxItems": max_requests,
            },
            "webhook_url": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "metadata": {"type": "object"},
            "version": {"type": "string", "enum": ["1"]},
            "session_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["requests"],
    }
    return {
        "operationId": f"call_{spec.app}_{spec.name}".replace("-", "_"),
        "summary": f"Call {spec.app}/{spec.name}"
        + (f": {spec.description}" if spec.description else ""),
        "tags": [spec.app],
        "parameters": [
            _param("Prefer", "header", {"type": "string"}, "respond-async, or wait=N seconds"),
            _param("Idempotency-Key", "header", {"type": "string"}, "Replays return the same task"),
            _param(
                "stream",
                "query",
                {"type": "string", "enum": ["true", "false"]},
                "true: answer NDJSON",
            ),
        ],
        "requestBody": {"required": True, "content": _json(body)},
        "responses": {
            "200": {
                "description": "Finished within the wait (or the stream, with an SSE or "
                "NDJSON Accept)",
                "content": {**_json(_ref("Task")), **STREAM_CONTENT},
            },
            "202": {
                "description": "Accepted; poll the Location",
                "headers": {"Location": {"schema": {"type": "string"}}},
                "content": _json(_ref("Task")),
            },
            **_auth(("400", "404", "409", "410", "413", "422")),
        },
    }


def openapi_document(registry: Registry, max_requests: int) -> dict[str, Any]:
    skill_types = [spec.input_type for spec in registry.specs() if spec.check is None]
    _, components = msgspec.json.schema_components(
        [
            Task,
            TaskList,
            Event,
            Delta,
            AppsList,
            Delivery,
            DeliveryList,
            Skill,
            ErrorEnvelope,
            Ticket,
            HealthStatus,
            ReadyStatus,
            *SESSION_SCHEMAS,
            WorkerList,
            *skill_types,
        ],
        ref_template=REF,
    )
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness",
                "security": [],
                "responses": {
                    "200": {"description": "Alive", "content": _json(_ref("HealthStatus"))}
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness",
                "security": [],
                "responses": {
                    "200": {"description": "Alive", "content": _json(_ref("HealthStatus"))}
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness (the backbone answers)",
                "security": [],
                "responses": {
                    "200": {"description": "Ready", "content": _json(_ref("ReadyStatus"))},
                    "503": {"description": "Not ready", "content": _json(_ref("ReadyStatus"))},
                },
            }
        },
        "/api/v1/apps": {
            "get": {
                "operationId": "list_apps",
                "summary": "Apps and their skills",
                "responses": {
                    "200": {"description": "Apps", "content": _json(_ref("AppsList"))},
                    **_auth(),
                },
            }
        },
        "/api/v1/apps/{app}/{skill}": {
            "get": {
                "operationId": "get_skill",
                "summary": "Describe one skill",
                "parameters": [
                    _param("app", "path", {"type": "string"}, "App slug", True),
                    _param("skill", "path", {"type": "string"}, "Skill slug", True),
                ],
                "responses": {
                    "200": {"description": "The skill", "content": _json(_ref("Skill"))},
                    **_auth(("404",)),
                },
            }
        },
        "/api/v1/tasks": {
            "get": {
                "operationId": "list_tasks",
                "summary": "The caller's tasks, newest first (an admin's: all)",
                "parameters": [
                    _param(
                        "limit",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                        "Page size",
                    ),
                    _param(
                        "offset",
                        "query",
                        {"type": "integer", "minimum": 0, "default": 0},
                        "Items to skip",
                    ),
                    _param(
                        "status",
                        "query",
                        {"type": "string", "enum": [s.value for s in TaskStatus]},
                        "Filter",
                    ),
                    _param("app", "query", {"type": "string"}, "Filter"),
                    _param("skill", "query", {"type": "string"}, "Filter"),
                ],
                "responses": {
                    "200": {"description": "A page", "content": _json(_ref("TaskList"))},
                    **_auth(("400",)),
                },
            }
        },
        "/api/v1/tasks/{task_id}": {
            "get": {
                "operationId": "get_task",
                "summary": "A task; ?wait=N long-polls until it is finished",
                "parameters": [
                    TASK_ID,
                    _param(
                        "wait",
                        "query",
                        {"type": "number", "minimum": 0, "maximum": 60},
                        "Seconds to wait",
                    ),
                ],
                "responses": {
                    "200": {"description": "The task", "content": _json(_ref("Task"))},
                    **_auth(("400", "404", "410")),
                },
            },
            "delete": {
                "operationId": "cancel_task",
                "summary": "Cancel a task",
                "responses": {
                    "200": {"description": "Cancelled", "content": _json(_ref("Task"))},
                    **_auth(("404", "409", "410")),
                },
                "parameters": [TASK_ID],
            },
        },
        "/api/v1/tasks/{task_id}/events": {
            "get": {
                "operationId": "task_events",
                "summary": "The task's events as SSE (default) or NDJSON",
                "parameters": [
                    TASK_ID,
                    _param(
                        "after", "query", {"type": "integer", "minimum": 0}, "Resume after this seq"
                    ),
                    _param(
                        "snapshot",
                        "query",
                        {"type": "string", "enum": ["true", "false"]},
                        "Start with a task.snapshot",
                    ),
                    _param(
                        "ticket", "query", {"type": "string"}, "A browser ticket instead of a key"
                    ),
                    _param(
                        "Last-Event-ID", "header", {"type": "string"}, "Resume after this seq (SSE)"
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "The stream; it ends after the terminal event",
                        "content": STREAM_CONTENT,
                    },
                    **_auth(("400", "404", "410")),
                },
            }
        },
        "/api/v1/tickets": {
            "post": {
                "operationId": "issue_ticket",
                "summary": "A single-use 30 s ticket for browser WS/SSE URLs",
                "responses": {
                    "200": {"description": "The ticket", "content": _json(_ref("Ticket"))},
                    **_auth(),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (metrics permission)",
                "responses": {
                    "200": {
                        "description": "Prometheus text",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_auth(),
                },
            }
        },
    }
    paths.update(session_paths(_json, _ref, _param, _auth))
    paths["/api/v1/webhooks/deliveries"] = {
        "get": {
            "operationId": "list_deliveries",
            "summary": "Webhook deliveries by status (admin)",
            "parameters": [
                _param(
                    "status",
                    "query",
                    {"type": "string", "enum": [s.value for s in DeliveryStatus]},
                    "Filter",
                ),
                _param(
                    "limit",
                    "query",
                    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                    "Page size",
                ),
                _param(
                    "offset",
                    "query",
                    {"type": "integer", "minimum": 0, "maximum": 1000000, "default": 0},
                    "Skip",
                ),
            ],
            "responses": {
                "200": {"description": "A page", "content": _json(_ref("DeliveryList"))},
                **_auth(("400",)),
            },
        }
    }
    paths["/api/v1/webhooks/deliveries/{delivery_id}/retry"] = {
        "post": {
            "operationId": "retry_delivery",
            "summary": "Send a delivery again under the same webhook-id (admin)",
            "parameters": [
                _param("delivery_id", "path", {"type": "string"}, "Its webhook-id", True)
            ],
            "responses": {
                "202": {"description": "Scheduled", "content": _json(_ref("Delivery"))},
                **_auth(("404", "409")),
            },
        }
    }
    paths["/api/v1/workers"] = {
        "get": {
            "operationId": "list_workers",
            "summary": "The remote workers connected to every gateway (admin)",
            "responses": {
                "200": {"description": "The workers", "content": _json(_ref("WorkerList"))},
                **_auth(),
            },
        }
    }
    for spec in registry.specs():
        limit = registry.max_requests(spec)
        paths[f"/api/v1/apps/{spec.app}/{spec.name}"] = {
            "get": paths["/api/v1/apps/{app}/{skill}"]["get"]
            | {"operationId": f"get_{spec.app}_{spec.name}".replace("-", "_"), "parameters": []},
            "post": _call_operation(spec, limit),
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "skillwire",
            "version": "1",
            "description": "A real-time streaming gateway for AI agent and skill work. "
            "The WebSocket "
            "channel (/api/v1/ws) and the stream frames are described in /asyncapi.json.",
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
