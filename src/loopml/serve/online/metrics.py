"""Prometheus metrics for the online service (seed 002: serving time, throughput, counts).

Each app has its own registry, so several apps in one process (tests, embedding)
never clash. Label children are cached per model so the hot path pays one lookup.

The per-request metrics (requests, rows, latency, batch size, cache lookups) are plain
Python numbers that the registry reads when ``/metrics`` is scraped: prometheus-client's
own counters take a lock on every increment, which the prediction path paid four to six
times per request. They are updated only from the server's event loop (the gRPC
service hands its calls to that loop), so they need no lock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

_LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Request, latency, batch, cache, fallback and breaker metrics."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        from prometheus_client import ProcessCollector

        ProcessCollector(registry=self.registry)  # process CPU seconds, resident memory, fds
        r = self.registry
        self.requests = LoopCounter(
            "loopml_requests", "Inference requests answered", ("model", "protocol", "code")
        )
        self.rows = LoopCounter("loopml_rows", "Rows predicted", ("model", "version"))
        self.latency = LoopHistogram(
            "loopml_request_seconds",
            "Time from request body to response, per model",
            ("model",),
            _LATENCY_BUCKETS,
        )
        self.batch_size = LoopHistogram(
            "loopml_batch_rows", "Rows per model call (micro-batching)", ("model",), _BATCH_BUCKETS
        )
        self.cache = LoopCounter(
            "loopml_cache_lookups", "Prediction cache lookups", ("model", "result")
        )
        r.register(
            _LoopCollector([self.requests, self.rows, self.latency, self.batch_size, self.cache])
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
        if type(metric) in _LOOP_TYPES:
            return metric.labels(*labels)
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = metric.labels(*labels)
            self._children[key] = found
        return found

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


# -- metrics updated on the event loop, read at scrape time ----------------------------------------
class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _Buckets:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bucket ``le=b`` holds values <= b: the first bound >= value
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class LoopCounter:
    """A labelled counter of plain floats (see the module docstring for why)."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.children: dict[tuple[str, ...], _Count] = {}

    def labels(self, *values: str) -> _Count:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = _Count()
        return child

    def family(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        fam = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            fam.add_metric(list(values), child.value)
        return fam


class LoopHistogram:
    """A labelled histogram of plain counts (see the module docstring for why)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: tuple[str, ...],
        buckets: tuple[float, ...],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.buckets = tuple(float(b) for b in buckets)
        self.children: dict[tuple[str, ...], _Buckets] = {}

    def labels(self, *values: str) -> _Buckets:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = _Buckets(self.buckets)
        return child

    def family(self) -> Any:
        from prometheus_client.core import HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        fam = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            counts, total = list(child.counts), child.sum
            cumulative, buckets = 0, []
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            fam.add_metric(list(values), buckets, total)
        return fam


class _LoopCollector:
    def __init__(self, metrics: list[LoopCounter | LoopHistogram]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        for metric in self.metrics:
            yield metric.family()


_LOOP_TYPES = (LoopCounter, LoopHistogram)
