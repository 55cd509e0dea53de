"""Ops summary from the online service's real Prometheus metrics, scraped over HTTP."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from prometheus_client import ProcessCollector

from loopml.core.errors import UnavailableError
from loopml.monitor.ops import parse_metrics, scrape
from loopml.serve.online.metrics import Metrics


def _exported() -> bytes:
    metrics = Metrics()
    ProcessCollector(registry=metrics.registry)  # process CPU and memory, as a server adds
    for code, n in (("200", 190), ("400", 6), ("500", 4)):
        for _ in range(n):
            metrics.child(metrics.requests, "ctr", "v2", code).inc()
    for seconds in [0.0008] * 150 + [0.004] * 45 + [0.2] * 5:
        metrics.child(metrics.latency, "ctr").observe(seconds)
    for rows in [1] * 50 + [16] * 50:
        metrics.child(metrics.batch_size, "ctr").observe(rows)
    metrics.cache_ratio.set(0.42)
    metrics.child(metrics.loaded, "ctr").set(3)
    body, _ = metrics.render()
    return body


def test_summary_of_the_services_own_metrics():
    summary = parse_metrics(_exported().decode())
    assert summary.requests == 200 and summary.errors == 10
    assert summary.error_rate == pytest.approx(0.05)
    assert summary.latency_ms["p50"] < 1.0  # 75% of requests under 1 ms
    assert 2.0 < summary.latency_ms["p95"] <= 5.0
    assert summary.latency_ms["p99"] > 100.0  # the slow tail
    assert summary.batch_rows["mean"] == pytest.approx(8.5)
    assert summary.cache_hit_ratio == pytest.approx(0.42)
    assert summary.model_versions == {"ctr": 3.0}
    assert summary.cpu_seconds is not None and summary.memory_mb > 1
    flat = summary.flat()
    assert flat["error_rate"] == pytest.approx(0.05) and "latency_p99_ms" in flat
    assert "serving: ctr v3" in str(summary)


def test_scrape_reads_a_metrics_url_and_explains_a_dead_one():
    body = _exported()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        summary = scrape(f"http://127.0.0.1:{server.server_port}/metrics")
        assert summary.requests == 200
    finally:
        server.shutdown()
    with pytest.raises(UnavailableError, match="is `loopml serve` running there"):
        scrape("http://127.0.0.1:9/metrics", timeout=1.0)
