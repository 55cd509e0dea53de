"""Operational metrics (seed 002): read a service's Prometheus ``/metrics`` and summarise.

The online service exports counters and histograms; this module turns one scrape into
the numbers a person asks for: requests and error rate, latency percentiles, batch
sizes, cache hit ratio, the model version being served, process CPU and memory. The
prediction log gives the same view per model version over any past window.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from loopml.core.errors import UnavailableError, ValidationError


@dataclass
class OpsSummary:
    """One service's operational state at scrape time (totals since it started)."""

    requests: float = 0.0
    errors: float = 0.0
    error_rate: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    batch_rows: dict[str, float] = field(default_factory=dict)
    cache_hit_ratio: float | None = None
    model_versions: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float | None = None
    memory_mb: float | None = None
    by_model: dict[str, dict[str, float]] = field(default_factory=dict)

    def flat(self) -> dict[str, float]:
        """Flat metric names for alert rules: ``error_rate``, ``latency_p99_ms``, ..."""
        out: dict[str, float] = {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
        }
        out.update({f"latency_{k}_ms": v for k, v in self.latency_ms.items()})
        out.update({f"batch_{k}": v for k, v in self.batch_rows.items()})
        for key in ("cache_hit_ratio", "cpu_seconds", "memory_mb"):
            if getattr(self, key) is not None:
                out[key] = float(getattr(self, key))
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        lat = ", ".join(f"{k} {v:.1f} ms" for k, v in self.latency_ms.items()) or "n/a"
        lines = [
            f"requests {self.requests:,.0f}, errors {self.errors:,.0f} ({self.error_rate:.2%})",
            f"latency: {lat}",
        ]
        if self.batch_rows:
            lines.append(
                f"batch rows: mean {self.batch_rows.get('mean', 0):.1f}, "
                f"p95 {self.batch_rows.get('p95', 0):.0f}"
            )
        if self.cache_hit_ratio is not None:
            lines.append(f"cache hit ratio: {self.cache_hit_ratio:.1%}")
        if self.model_versions:
            lines.append(
                "serving: "
                + ", ".join(f"{m} v{int(v)}" for m, v in sorted(self.model_versions.items()))
            )
        if self.cpu_seconds is not None or self.memory_mb is not None:
            cpu = f"{self.cpu_seconds:.1f} s" if self.cpu_seconds is not None else "n/a"
            mem = f"{self.memory_mb:.0f} MB" if self.memory_mb is not None else "n/a"
            lines.append(f"process: cpu {cpu}, memory {mem}")
        return "\n".join(lines)


def parse_metrics(text: str) -> OpsSummary:
    """Summarise Prometheus exposition text from loopml's online service.

    >>> text = '''
    ... loopml_requests_total{model="ctr",protocol="v2",code="200"} 98
    ... loopml_requests_total{model="ctr",protocol="v2",code="500"} 2
    ... loopml_request_seconds_bucket{model="ctr",le="0.005"} 50
    ... loopml_request_seconds_bucket{model="ctr",le="0.01"} 100
    ... loopml_request_seconds_bucket{model="ctr",le="+Inf"} 100
    ... loopml_request_seconds_count{model="ctr"} 100
    ... loopml_request_seconds_sum{model="ctr"} 0.6
    ... loopml_model_version{model="ctr"} 3
    ... '''
    >>> s = parse_metrics(text)
    >>> s.requests, s.error_rate, s.latency_ms["p50"], s.model_versions
    (100.0, 0.02, 5.0, {'ctr': 3.0})
    """
    from prometheus_client.parser import text_string_to_metric_families

    out = OpsSummary()
    latency: dict[float, float] = defaultdict(float)
    batches: dict[float, float] = defaultdict(float)
    lat_sum = lat_count = batch_sum = batch_count = 0.0
    cache: dict[str, float] = defaultdict(float)
    per_model: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise ValidationError(f"not Prometheus exposition text: {exc}", field="metrics") from exc
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            model = labels.get("model", "")
            if name == "loopml_requests_total":
                out.requests += value
                per_model[model]["requests"] += value
                if labels.get("code", "200")[:1] in ("4", "5"):
                    out.errors += value
                    per_model[model]["errors"] += value
            elif name == "loopml_request_seconds_bucket":
                latency[_le(labels)] += value
            elif name == "loopml_request_seconds_sum":
                lat_sum += value
            elif name == "loopml_request_seconds_count":
                lat_count += value
            elif name == "loopml_batch_rows_bucket":
                batches[_le(labels)] += value
            elif name == "loopml_batch_rows_sum":
                batch_sum += value
            elif name == "loopml_batch_rows_count":
                batch_count += value
            elif name == "loopml_cache_lookups_total":
                cache[labels.get("result", "")] += value
            elif name == "loopml_cache_hit_ratio":
                out.cache_hit_ratio = value
            elif name == "loopml_model_version":
                out.model_versions[model] = value
            elif name == "process_cpu_seconds_total":
                out.cpu_seconds = value
            elif name == "process_resident_memory_bytes":
                out.memory_mb = value / 2**20
    out.error_rate = out.errors / out.requests if out.requests else 0.0
    if lat_count:
        out.latency_ms = {
            "mean": 1000 * lat_sum / lat_count,
            **{f"p{q}": 1000 * quantile(latency, q / 100) for q in (50, 95, 99)},
        }
    if batch_count:
        out.batch_rows = {"mean": batch_sum / batch_count, "p95": quantile(batches, 0.95)}
    if out.cache_hit_ratio is None and cache:
        lookups = sum(cache.values())
        out.cache_hit_ratio = cache.get("hit", 0.0) / lookups if lookups else None
    out.by_model = {m: dict(v) for m, v in per_model.items()}
    return out


def scrape(url: str, timeout: float = 5.0) -> OpsSummary:
    """GET ``url`` (a service's ``/metrics``) and summarise it."""
    import httpx

    try:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise UnavailableError(
            f"cannot read metrics from {url}: {exc}; is `loopml serve` running there?",
            url=url,
        ) from exc
    return parse_metrics(response.text)


def quantile(buckets: dict[float, float], q: float) -> float:
    """Estimate a quantile from cumulative histogram buckets (linear within a bucket).

    >>> quantile({1.0: 10, 2.0: 20, float("inf"): 20}, 0.75)
    1.5
    """
    edges = sorted(buckets)
    total = buckets[edges[-1]] if edges else 0.0
    if total <= 0:
        return math.nan
    target = q * total
    prev_edge, prev_count = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= target:
            if math.isinf(edge):
                return prev_edge
            if count == prev_count:
                return edge
            return prev_edge + (edge - prev_edge) * (target - prev_count) / (count - prev_count)
        prev_edge, prev_count = edge, count
    return prev_edge


def _le(labels: dict[str, str]) -> float:
    return float(labels.get("le", "+Inf").replace("+Inf", "inf"))


def prediction_log_ops(events: Any, model: str, start: Any, end: Any) -> dict[str, Any]:
    """Per served version, from the prediction log in ``[start, end)``: rows, requests
    and latency percentiles (what ``/metrics`` shows, but for any past window)."""
    from loopml.core.clock import to_utc

    query = (
        "SELECT version, count(*) AS rows, count(DISTINCT split_part(request_id, ':', 1)) "
        "AS requests, quantile_cont(latency_ms, 0.5) AS p50, quantile_cont(latency_ms, 0.95) "
        "AS p95, quantile_cont(latency_ms, 0.99) AS p99 FROM prediction "
        "WHERE model = ? AND ts >= ? AND ts < ? GROUP BY version ORDER BY version"
    )
    con = events.connect(("prediction",))
    try:
        rows = con.execute(query, [model, to_utc(start), to_utc(end)]).fetchall()
    finally:
        con.close()
    out: dict[str, Any] = {}
    for version, n, requests, p50, p95, p99 in rows:
        latency = {
            f"latency_{k}_ms": float(v)
            for k, v in (("p50", p50), ("p95", p95), ("p99", p99))
            if v is not None
        }
        out[f"v{int(version)}"] = {"rows": int(n), "requests": int(requests), **latency}
    return out
