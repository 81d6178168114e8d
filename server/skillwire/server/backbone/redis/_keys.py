"""Every Redis key and channel skillwire uses, built here and nowhere else.

A task's keys share the hash tag ``{tsk_...}``, so they live in one slot of a Redis Cluster
and one Lua script may touch them all. Webhook deliveries share the hash tag ``{webhooks}``:
the claim, finish and retry scripts touch only that slot; APPEND and CANCEL create deliveries
next to the task's keys in one script, which a Redis Cluster would need to split.
"""

from __future__ import annotations

__all__ = [
    "CONTROL",
    "DECLARATIONS",
    "DELIVERIES_CLAIMED",
    "DELIVERIES_DUE",
    "DELIVERY_PREFIX",
    "INDEXES",
    "INDEX_SWEEP",
    "REMOTE_DEADLINES",
    "REMOTE_WORKERS",
    "SECRET",
    "SESSIONS",
    "TASKS",
    "WORK",
    "WORK_GROUP",
    "app_tasks",
    "declaration",
    "deliveries",
    "delivery",
    "events",
    "idempotency",
    "index_prefix",
    "live",
    "output_meta",
    "output_prefix",
    "outputs",
    "owner_sessions",
    "owner_tasks",
    "rate_window",
    "remote_attempts",
    "remote_serving",
    "remote_work",
    "remote_worker",
    "scratch",
    "session",
    "session_tasks",
    "skill_tasks",
    "status_tasks",
    "task",
    "ticket",
]

# pub/sub channel every process listens on: "cancel <task_id>" signals.
CONTROL = "sw:control"
# sorted set: the app/skill of every remote skill declaration, scored by when it lapses (ms).
DECLARATIONS = "sw:remote:skills"
# sorted set: the ids of connected remote workers, scored by when their record lapses (ms).
REMOTE_WORKERS = "sw:remote:workers"
# sorted set: "task_id:index" of sub-requests queued with no worker, scored by their deadline (ms).
REMOTE_DEADLINES = "sw:remote:deadlines"
# stream of work items (one entry a chain of sub-requests), read by the consumer group below.
WORK = "sw:work"
WORK_GROUP = "workers"
# sorted set of every task id, scored by creation time in ms (the admin's task list).
TASKS = "sw:tasks"
# sorted set of every session id, scored by creation time in ms (the admin's session list).
SESSIONS = "sw:sessions"
# string: the secret that signs task ids, shared by every process of a deployment.
SECRET = "sw:secret"
# sorted set: ids of pending deliveries waiting for their next attempt, scored by when it is
# due (ms). A claim moves an id from here to DELIVERIES_CLAIMED.
DELIVERIES_DUE = "sw:{webhooks}:due"
# sorted set: ids of deliveries with an attempt in flight, scored by when that claim's lease
# lapses (ms); a lapsed one is claimed again (its process died) as the next attempt.
DELIVERIES_CLAIMED = "sw:{webhooks}:claimed"
# prefix of the delivery hashes (see ``delivery``), for the Lua scripts that build their keys.
DELIVERY_PREFIX = "sw:{webhooks}:d:"


def deliveries(status: str) -> str:
    """Sorted set: ids of the deliveries in ``status`` (pending, delivered, failed), scored by
    creation time in ms."""
    return f"sw:{{webhooks}}:{status}"


def delivery(delivery_id: str) -> str:
    """Hash: one delivery (url, task_id, type, status, attempts, round, last_error, next_at,
    created_at in ms, payload); expires a retention window after it is delivered or failed."""
    return f"{DELIVERY_PREFIX}{delivery_id}"


def task(task_id: str) -> str:
    """Hash: the task's state (status, seqs, per-request status/progress/error, JSON parts)."""
    return f"sw:{{{task_id}}}:task"


def events(task_id: str) -> str:
    """Stream: the task's event log; entry id ``<seq>-0``, fields ``t`` (type) and ``e`` (JSON)."""
    return f"sw:{{{task_id}}}:events"


def output_prefix(task_id: str) -> str:
    """The prefix of the task's output lists: ``<prefix><i>`` (``outputs``) and, beside it,
    ``<prefix>m<i>`` (``output_meta``), built by the Lua scripts from this prefix."""
    return f"sw:{{{task_id}}}:out:"


def outputs(task_id: str, index: int) -> str:
    """List: request ``index``'s outputs the Task holds, each one JSON document."""
    return f"{output_prefix(task_id)}{index}"


def output_meta(task_id: str, index: int) -> str:
    """List: for each element of ``outputs`` at the same place, ``"<emission order> <JSON
    object: string field -> bytes before its closing quote>"`` (where a delta's text goes)."""
    return f"{output_prefix(task_id)}m{index}"


def live(task_id: str) -> str:
    """Pub/sub channel: the task's events as they are appended (``<seq> <type> <json>``)."""
    return f"sw:{{{task_id}}}:live"


def session(session_id: str) -> str:
    """Hash: a session's state (owner, title and metadata JSON, status, times, last_seq).

    A session's log and live channel are ``events(session_id)`` and ``live(session_id)``: the
    same layout as a task's, under the session's own hash tag. Its tasks' scripts write to
    them too (their keys built in Lua from these names), which a Redis Cluster would need to
    place in one slot (a session's tasks tagged with the session's id)."""
    return f"sw:{{{session_id}}}:session"


def session_tasks(session_id: str) -> str:
    """List: the ids of a session's tasks, in the order they joined."""
    return f"sw:{{{session_id}}}:tasks"


def owner_sessions(owner: str) -> str:
    """Sorted set: one principal's session ids, scored by creation time in ms."""
    return f"sw:owner:{owner}:sessions"


def owner_tasks(owner: str) -> str:
    """Sorted set: one principal's task ids, scored by creation time in ms."""
    return f"sw:owner:{owner}:tasks"


def rate_window(name: str) -> str:
    """String with a TTL: the hits counted in one fixed rate-limit window, ``name`` saying
    which limit counts whom (``LIMITER/<key|ip>/<who>/<amount>/<multiples>/<granularity>``,
    as the ``limits`` library names a limit); it expires when its window ends. Under ``sw:``
    like every other key, so that one prefix covers all of skillwire's data (an ACL, a SCAN,
    a Redis shared with other software), which the ``limits`` library's own ``LIMITS:`` did
    not."""
    return f"sw:rl:{name}"


def ticket(value: str) -> str:
    """String with a TTL: the principal name a browser ticket stands for (spent by GETDEL)."""
    return f"sw:ticket:{value}"


def idempotency(key: str) -> str:
    """String with a TTL: ``<task_id> <fingerprint>`` for a principal's Idempotency-Key."""
    return f"sw:idem:{key}"


def declaration(key: str) -> str:
    """String: a remote skill's declaration (JSON) by ``app/skill``; expires an hour after the
    last worker serving it left (each hello and heartbeat renews it)."""
    return f"sw:remote:skill:{key}"


def remote_work(key: str) -> str:
    """Stream: work items of remote skill ``key`` (app/skill) for whichever process holds a
    free worker, read by the consumer group WORK_GROUP; same fields as WORK."""
    return f"sw:remote:work:{key}"


def remote_serving(key: str) -> str:
    """Sorted set: the processes with a worker for remote skill ``key``, scored by when that
    lapses (ms); each renews its entry while it serves."""
    return f"sw:remote:serving:{key}"


def remote_attempts(task_id: str, index: int) -> str:
    """Integer: how many times a sub-request of a remote skill went to a worker, any process."""
    return f"sw:remote:attempts:{task_id}:{index}"


def remote_worker(worker_id: str) -> str:
    """String: a connected remote worker's record (WorkerInfo JSON), renewed while it is."""
    return f"sw:remote:worker:{worker_id}"


# The filter indexes of ``GET /api/v1/tasks`` (``status_tasks``, ``app_tasks``, ``skill_tasks``):
# sorted sets of task ids scored by creation time in ms, like ``TASKS`` and ``owner_tasks``, one
# set for every task's and one for each principal's. A page filtered on one of them is a
# ZREVRANGE of it, filtered on several a ZINTERSTORE of them into ``scratch``; either way the
# total is exact. Expired tasks' ids are pruned when an index is listed, and every minute by one
# process of the deployment (``_prune``), so that an index nobody lists does not grow forever.

# set: the name of every task index (``TASKS``, ``owner_tasks`` and the filter indexes), added
# where an id enters one, for the sweep; a name whose index is gone (empty) is dropped by it.
INDEXES = "sw:ix:all"
# string with a TTL of one sweep interval: a process is pruning the task indexes (SET NX), so
# that the others skip this round.
INDEX_SWEEP = "sw:ix:sweep"


def _part(value: str) -> str:
    """``value`` without a ``:``, so that no two (scope, filter, value) make the same key."""
    return value.replace("%", "%25").replace(":", "%3A")


def index_prefix(owner: str | None) -> str:
    """The prefix of the filter indexes of one principal's tasks (every task's when None). The
    task hash keeps its owner's (field ``ix``), so the Lua scripts that change a task's status
    move it between ``<prefix>status:<status>`` sets without knowing how owners are escaped."""
    scope = "*" if owner is None else f"@{_part(owner)}"
    return f"sw:ix:{scope}:"


def status_tasks(owner: str | None, status: str) -> str:
    """Sorted set: the ids of the tasks (of ``owner``, or every one) now in ``status``; APPEND
    and CANCEL move an id from one status's set to the next in the script that changes it."""
    return f"{index_prefix(owner)}status:{status}"


def app_tasks(owner: str | None, app: str) -> str:
    """Sorted set: the ids of the tasks (of ``owner``, or every one) of app ``app``."""
    return f"{index_prefix(owner)}app:{_part(app)}"


def skill_tasks(owner: str | None, skill: str) -> str:
    """Sorted set: the ids of the tasks (of ``owner``, or every one) of a skill named ``skill``
    (in any app: the API's filters are independent)."""
    return f"{index_prefix(owner)}skill:{_part(skill)}"


def scratch(token: str) -> str:
    """Sorted set, deleted in the MULTI that fills it: the intersection of filter indexes that
    one filtered list reads its total and page from."""
    return f"sw:ix:tmp:{token}"
