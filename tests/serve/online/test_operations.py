"""Async jobs, behaviour-event ingestion and the prediction log, on the shared server."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pandas as pd


def test_async_job_submit_then_poll(served):
    X = served.X.iloc[:3]
    r = httpx.post(f"{served.url}/v1/models/ctr/jobs", json={"rows": X.to_dict(orient="records")})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == job["status_url"]
    deadline = time.time() + 10
    while time.time() < deadline:
        doc = httpx.get(served.url + job["status_url"]).json()
        if doc["status"] != "running":
            break
        time.sleep(0.05)
    assert doc["status"] == "succeeded", doc
    np.testing.assert_allclose(
        doc["result"]["predictions"], served.ctr.predict_proba(X)[:, 1], rtol=1e-9
    )
    assert httpx.get(f"{served.url}/v1/jobs/{'0' * 32}").status_code == 404
    assert httpx.get(f"{served.url}/v1/jobs/../etc").status_code in (400, 404)
    assert httpx.post(f"{served.url}/v1/models/none/jobs", json={"rows": []}).status_code == 404


def test_events_are_validated_and_bad_rows_dead_lettered(served):
    from loopml.logs.eventlog import EventLog

    rows = [
        {
            "event_id": "c-1",
            "ts": "2026-01-01T10:00:00Z",
            "impression_id": "i1",
            "user_id": "u1",
            "item_id": "x1",
        },
        {
            "event_id": "c-2",
            "ts": "2026-01-01T10:00:01Z",
            "impression_id": "i2",
            "user_id": "u1",
            "item_id": "x2",
        },
        {
            "event_id": "c-3",
            "ts": "not a time",
            "impression_id": "i3",
            "user_id": "u2",
            "item_id": "x3",
        },
    ]
    r = httpx.post(f"{served.url}/v1/events", json={"event_type": "click", "rows": rows})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["accepted"] == 2 and doc["rejected"] == 1 and doc["dead_letter"] is True
    log = EventLog.from_config(served.cfg)
    assert int(log.sql("SELECT count(*) AS n FROM click")["n"].iloc[0]) == 2
    assert len(log.dead_letters()) >= 1
    r = httpx.post(f"{served.url}/v1/events", json={"event_type": "clik", "rows": rows})
    assert r.status_code == 400 and "click" in r.json()["error"]


def test_prediction_log_records_inputs_outputs_and_version(served):
    from loopml.logs.eventlog import EventLog

    row = {"f0": 0.31, "f1": -0.42, "f2": 0.5, "f3": 0.05}
    r = httpx.post(
        f"{served.url}/v1/models/ctr/predict",
        json={"features": row},
        headers={"x-request-id": "req-predlog-1"},
    )
    assert r.status_code == 200
    log = EventLog.from_config(served.cfg)
    deadline = time.time() + 10
    found = pd.DataFrame()
    while time.time() < deadline and found.empty:
        time.sleep(0.3)
        try:
            found = log.sql("SELECT * FROM prediction WHERE request_id = 'req-predlog-1'")
        except Exception:  # noqa: BLE001 - the table appears with the first flush
            continue
    assert len(found) == 1
    rec = found.iloc[0]
    assert rec["model"] == "ctr" and rec["version"] == 1
    assert abs(rec["output"] - r.json()["prediction"]) < 1e-12
    assert '"f1":-0.42' in rec["inputs"] and rec["latency_ms"] > 0
    metrics = httpx.get(f"{served.url}/metrics").text
    assert 'loopml_prediction_log_rows_total{result="written"}' in metrics
    assert 'result="failed"' not in metrics
    # process CPU and memory, for `loopml monitor summary` and any Prometheus
    resident = [
        line for line in metrics.splitlines() if line.startswith("process_resident_memory_bytes ")
    ]
    assert resident and float(resident[0].split()[1]) > 10e6
    assert "process_cpu_seconds_total" in metrics
