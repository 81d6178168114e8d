"""Prometheus metrics: one registry per application (no module-level globals).

Each process exposes its own counters: gateways their connections and deliveries, workers
their sub-requests (``skillwire worker --metrics-port``). Gauges of shared state (the work
queue) are read from the backbone at scrape time, so every process reports the same value.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS

__all__ = ["CONTENT_TYPE_LATEST", "OPENMETRICS", "Metrics", "Tally"]


class Tally:
    """Counts locally and adds to a counter about once a second: a per-write ``inc`` (which
    takes a lock) would cost more than the write itself on a busy fan-out."""

    __slots__ = ("_counter", "_last", "_pending")

    def __init__(self, counter: Any) -> None:
        self._counter = counter
        self._pending = 0
        self._last = time.monotonic()

    def add(self, n: int) -> None:
        self._pending += n
        now = time.monotonic()
        if now - self._last >= 1.0:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self._pending:
            self._counter.inc(self._pending)
            self._pending = 0
        self._last = time.monotonic() if now is None else now


class Labelled:
    """A labelled metric whose children are found once per label set.

    prometheus_client's ``labels()`` validates and takes a lock on every call; a quick call
    looks up five children, which cost as much as its routing did.
    """

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Labelled(
            Gauge("skillwire_connections", "Open streaming connections", ["channel"], registry=r)
        )
        self.events_delivered = Labelled(
            Counter(
                "skillwire_events_delivered_total",
                "Messages written to clients (events, replies, heartbeats excluded)",
                ["channel"],
                registry=r,
            )
        )
        self.slow_clients = Labelled(
            Counter(
                "skillwire_slow_clients_dropped_total",
                "Connections closed because the client fell too far behind",
                ["channel"],
                registry=r,
            )
        )
        self.calls = Labelled(
            Counter(
                "skillwire_calls_total", "Calls accepted", ["app", "skill", "channel"], registry=r
            )
        )
        self.tasks_finished = Labelled(
            Counter(
                "skillwire_tasks_finished_total",
                "Tasks that reached a terminal status in this process",
                ["app", "skill", "status"],
                registry=r,
            )
        )
        self.subrequest_seconds = Labelled(
            Histogram(
                "skillwire_subrequest_duration_seconds",
                "Time a sub-request ran, from start to its end",
                ["app", "skill", "outcome"],
                buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                registry=r,
            )
        )
        self.queue_depth = Gauge(
            "skillwire_queue_depth", "Work items waiting to be claimed", registry=r
        )
        self.queue_oldest_age = Gauge(
            "skillwire_queue_oldest_age_seconds",
            "Age of the oldest work item waiting to be claimed",
            registry=r,
        )
        self.webhook_attempts = Labelled(
            Counter(
                "skillwire_webhook_attempts_total",
                "Webhook delivery attempts by outcome",
                ["outcome"],
                registry=r,
            )
        )
        self.rate_limited = Labelled(
            Counter(
                "skillwire_rate_limited_total",
                "Requests refused (client) or delayed (provider) by a rate limit",
                ["kind"],
                registry=r,
            )
        )
        self.backbone_errors = Labelled(
            Counter(
                "skillwire_backbone_errors_total",
                "Operations that failed because the backbone did not answer",
                ["where"],
                registry=r,
            )
        )
        self.http_requests = Labelled(
            Counter(
                "skillwire_http_requests_total",
                "HTTP requests answered",
                ["method", "route", "status"],
                registry=r,
            )
        )
        self.http_seconds = Labelled(
            Histogram(
                "skillwire_http_request_duration_seconds",
                "Time to the end of the response (streams: their whole life)",
                ["method", "route"],
                registry=r,
            )
        )

        self.workers_connected = Gauge(
            "skillwire_workers_connected",
            "Remote workers connected to this process",
            registry=r,
        )
        self.remote_in_flight = Gauge(
            "skillwire_remote_in_flight",
            "Unfinished work items on this process's remote workers, by skill",
            ["app", "skill"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
