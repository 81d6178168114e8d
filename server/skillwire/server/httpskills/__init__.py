"""HTTP skills: skills served by an HTTP endpoint, declared in the configuration.

``[[http_skills]]`` entries become apps like any other. A call's sub-request is POSTed as
``{"task_id", "index", "input"}``; a JSON answer is one output; an NDJSON or SSE answer is the
worker messages of a remote worker, without ``work_id``. The webhooks' SSRF guard checks every
connection (private addresses only where the entry allows them; metadata addresses never).
"""

from __future__ import annotations

from ._skills import HttpSkills

__all__ = ["HttpSkills"]
