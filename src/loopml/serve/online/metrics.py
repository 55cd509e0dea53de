"""Prometheus metrics for the online service (seed 002: serving time, throughput, counts).

Each app has its own registry, so several apps in one process (tests, embedding)
never clash. Label children are cached per model so the hot path pays one lookup.
"""

from __future__ import annotations

from typing import Any

_LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Request, latency, batch, cache, fallback and breaker metrics."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        from prometheus_client import ProcessCollector

        ProcessCollector(registry=self.registry)  # process CPU seconds, resident memory, fds
        r = self.registry
        self.requests = Counter(
            "loopml_requests",
            "Inference requests answered",
            ["model", "protocol", "code"],
            registry=r,
        )
        self.rows = Counter("loopml_rows", "Rows predicted", ["model", "version"], registry=r)
        self.latency = Histogram(
            "loopml_request_seconds",
            "Time from request body to response, per model",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "loopml_batch_rows",
            "Rows per model call (micro-batching)",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "loopml_cache_lookups", "Prediction cache lookups", ["model", "result"], registry=r
        )
        self.cache_ratio = Gauge(
            "loopml_cache_hit_ratio", "Prediction cache hits / lookups since start", registry=r
        )
        self.fallbacks = Counter(
            "loopml_fallbacks", "Answers served by the fallback", ["model", "reason"], registry=r
        )
        self.breaker = Gauge(
            "loopml_breaker_open",
            "1 while the model's circuit breaker is open",
            ["model"],
            registry=r,
        )
        self.loaded = Gauge(
            "loopml_model_version", "Version serving unversioned requests", ["model"], registry=r
        )
        self.reloads = Counter("loopml_reloads", "Hot reloads of a model", ["model"], registry=r)
        self.events = Counter(
            "loopml_events_ingested",
            "Events received on /v1/events",
            ["event_type", "result"],
            registry=r,
        )
        self.predlog = Counter(
            "loopml_prediction_log_rows", "Prediction log rows", ["result"], registry=r
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = metric.labels(*labels)
            self._children[key] = found
        return found

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
