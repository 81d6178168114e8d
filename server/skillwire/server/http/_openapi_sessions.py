"""The sessions part of the OpenAPI document (API.md "Sessions and task trees")."""

from __future__ import annotations

from typing import Any

from skillwire.protocol import Session, SessionBody, SessionEvent, SessionList, SessionSnapshot

__all__ = ["SESSION_SCHEMAS", "session_paths"]

SESSION_SCHEMAS = [Session, SessionBody, SessionList, SessionEvent, SessionSnapshot]


def session_paths(json: Any, ref: Any, param: Any, auth: Any) -> dict[str, Any]:
    """The session routes, built with the document's own helpers (``_openapi``)."""
    session_id = param("session_id", "path", {"type": "string"}, "A session id (ses_...)", True)
    page = [
        param(
            "limit",
            "query",
            {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
            "Page size",
        ),
        param("offset", "query", {"type": "integer", "minimum": 0, "default": 0}, "Items to skip"),
    ]
    stream = {
        "text/event-stream": {
            "schema": {"type": "string"},
            "x-frames": "id (the session's seq)/event/data, : heartbeat",
            "x-event": ref("SessionEvent"),
        },
        "application/x-ndjson": {
            "schema": {"type": "string"},
            "x-frames": "one SessionEvent per line",
            "x-event": ref("SessionEvent"),
        },
    }
    return {
        "/api/v1/sessions": {
            "post": {
                "operationId": "create_session",
                "summary": "Create a session (a conversation: tasks followed with one cursor)",
                "requestBody": {"required": False, "content": json(ref("SessionBody"))},
                "responses": {
                    "201": {
                        "description": "The session",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": json(ref("Session")),
                    },
                    **auth(("400", "413", "422")),
                },
            },
            "get": {
                "operationId": "list_sessions",
                "summary": "The caller's sessions, newest first (an admin's: all)",
                "parameters": page,
                "responses": {
                    "200": {"description": "A page", "content": json(ref("SessionList"))},
                    **auth(("400",)),
                },
            },
        },
        "/api/v1/sessions/{session_id}": {
            "get": {
                "operationId": "get_session",
                "summary": "A session",
                "parameters": [session_id],
                "responses": {
                    "200": {"description": "The session", "content": json(ref("Session"))},
                    **auth(("404", "410")),
                },
            },
            "delete": {
                "operationId": "close_session",
                "summary": "Close a session and cancel its running tasks",
                "parameters": [session_id],
                "responses": {
                    "200": {"description": "Closed", "content": json(ref("Session"))},
                    **auth(("404", "409", "410")),
                },
            },
        },
        "/api/v1/sessions/{session_id}/events": {
            "get": {
                "operationId": "session_events",
                "summary": "The session's log as SSE (default) or NDJSON",
                "parameters": [
                    session_id,
                    param(
                        "after", "query", {"type": "integer", "minimum": 0}, "Resume after this seq"
                    ),
                    param(
                        "snapshot",
                        "query",
                        {"type": "string", "enum": ["true", "false"]},
                        "Start with a session.snapshot",
                    ),
                    param(
                        "ticket", "query", {"type": "string"}, "A browser ticket instead of a key"
                    ),
                    param(
                        "Last-Event-ID", "header", {"type": "string"}, "Resume after this seq (SSE)"
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "The stream; it ends after session.closed",
                        "content": stream,
                    },
                    **auth(("400", "404", "410")),
                },
            }
        },
    }
