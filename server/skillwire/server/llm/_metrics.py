"""The LLM bridge's Prometheus metrics, registered on the process's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from .._metrics import Labelled

__all__ = ["LlmMetrics"]


class LlmMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.tokens = Labelled(
            Counter(
                "skillwire_llm_tokens_total",
                "Tokens by upstream, model and kind (prompt, completion), as upstreams report",
                ["upstream", "model", "kind"],
                registry=r,
            )
        )
        self.first_token = Labelled(
            Histogram(
                "skillwire_llm_time_to_first_token_seconds",
                "From sending a request upstream to its first streamed chunk of answer",
                ["upstream", "model"],
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
                registry=r,
            )
        )
        self.errors = Labelled(
            Counter(
                "skillwire_llm_upstream_errors_total",
                "Upstream failures by status (none: no answer; 200: a stream broken mid-way)",
                ["upstream", "status"],
                registry=r,
            )
        )
        self.retries = Labelled(
            Counter(
                "skillwire_llm_upstream_retries_total",
                "Requests queued again after an upstream 429 or 503",
                ["upstream", "status"],
                registry=r,
            )
        )
