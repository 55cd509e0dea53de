"""The per-request metrics are exported in Prometheus's format with its bucket semantics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from loopml.serve.online.metrics import Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    body, _ = metrics.render()
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_and_histograms_render_as_prometheus_reads_them():
    m = Metrics()
    m.child(m.requests, "ctr", "simple", "200").inc()
    m.child(m.requests, "ctr", "simple", "200").inc()
    m.child(m.requests, "ctr", "v2", "400").inc()
    m.child(m.rows, "ctr", "3").inc(5)
    lat = m.child(m.latency, "ctr")
    for seconds in (0.0001, 0.0002, 0.0003, 7.0):  # 0.0002 sits exactly on a bound
        lat.observe(seconds)
    found = _samples(m)
    req = "loopml_requests_total"
    assert found[(req, (("code", "200"), ("model", "ctr"), ("protocol", "simple")))] == 2
    assert found[(req, (("code", "400"), ("model", "ctr"), ("protocol", "v2")))] == 1
    assert found[("loopml_rows_total", (("model", "ctr"), ("version", "3")))] == 5
    bucket = "loopml_request_seconds_bucket"
    assert found[(bucket, (("le", "0.0002"), ("model", "ctr")))] == 2  # le is inclusive
    assert found[(bucket, (("le", "0.0005"), ("model", "ctr")))] == 3
    assert found[(bucket, (("le", "5.0"), ("model", "ctr")))] == 3
    assert found[(bucket, (("le", "+Inf"), ("model", "ctr")))] == 4
    assert found[("loopml_request_seconds_count", (("model", "ctr"),))] == 4
    assert abs(found[("loopml_request_seconds_sum", (("model", "ctr"),))] - 7.0006) < 1e-12


def test_each_app_has_its_own_numbers():
    a, b = Metrics(), Metrics()
    a.child(a.requests, "ctr", "simple", "200").inc()
    assert (
        "loopml_requests_total",
        (("code", "200"), ("model", "ctr"), ("protocol", "simple")),
    ) in _samples(a)
    assert not any(name == "loopml_requests_total" for name, _ in _samples(b))
