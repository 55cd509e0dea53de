"""What the ``loopml experiment`` commands call, on a real project and registry; the report."""

from __future__ import annotations

import time

import numpy as np
import pytest

from loopml.core.config import ProjectConfig
from loopml.core.errors import ConflictError, NotFoundError, ValidationError
from loopml.core.signature import ColumnSpec, Signature
from loopml.registry import Registry
from loopml.rollout import manage
from loopml.rollout.store import ExperimentStore


@pytest.fixture
def cfg(project_dir):
    cfg = ProjectConfig.load(project_dir)
    reg = Registry.from_config(cfg)
    sig = Signature((ColumnSpec("x"),))
    for weights in (b"v1", b"v2", b"v3"):
        reg.register("ctr", weights, flavour="sklearn", signature=sig)
    reg.set_alias("ctr", "production", 1, actor="test")
    reg.set_alias("ctr", "challenger", 2, actor="test")
    return cfg


def _traffic(cfg, name, rates, n=1500, seed=0, kind="serve"):
    """``n`` requests per arm with clicks at the given rates, written as the router would."""
    store = ExperimentStore.from_config(cfg)
    rng = np.random.default_rng(seed)
    rows, clicks = [], []
    now = time.time()
    for arm, rate in rates.items():
        for i in range(n):
            rid = f"{arm}-{i}"
            rows.append(
                {
                    "experiment": name,
                    "request_id": rid,
                    "unit_id": f"u{i}",
                    "arm": arm,
                    "version": None,
                    "kind": kind,
                    "ts": now + i * 1e-3,
                    "latency_ms": float(rng.gamma(2.0, 1.0)),
                    "error": False,
                    "score": float(rng.random()),
                    "detail": None,
                }
            )
            if rng.random() < rate:
                clicks.append({"request_id": rid, "metric": "click", "value": 1})
    store.add_assignments(rows)
    from loopml.rollout import lifecycle

    out = lifecycle.record_feedback(store, store.get(name), clicks)
    assert out["rejected"] == 0
    return store


def test_start_checks_the_model_and_every_arm(cfg):
    with pytest.raises(NotFoundError, match="arm 'staging'"):
        manage.start_experiment(cfg, "e", model="ctr", policy="ab", arms="production,staging")
    with pytest.raises(NotFoundError):
        manage.start_experiment(cfg, "e", model="nope", policy="ab", arms="production,2")
    with pytest.raises(ValidationError, match="weights"):
        manage.start_experiment(
            cfg, "e", model="ctr", policy="ab", arms="production,2", weights="1,2,3"
        )
    assert manage.experiment_status(cfg) == {"experiments": []}


def test_ab_status_promote_and_report(cfg, tmp_path):
    exp = manage.start_experiment(
        cfg, "ab", model="ctr", policy="ab", arms="production,challenger,3", weights="2,1,1"
    )
    assert exp["weights"] == [0.5, 0.25, 0.25] and exp["status"] == "running"
    with pytest.raises(ConflictError, match="no winner yet"):
        manage.promote_experiment(cfg, "ab")
    _traffic(cfg, "ab", {"production": 0.04, "challenger": 0.04, "3": 0.14}, n=700)
    status = manage.experiment_status(cfg, "ab")
    assert status["decision"]["winner"] == "3"
    by_arm = {c["arm"]: c for c in status["comparisons"]}
    assert by_arm["3"]["diff_low"] > 0 and by_arm["challenger"]["always_valid_p"] > 0.05
    out = tmp_path / "ab.html"
    manage.report_experiment(cfg, "ab", out)
    html = out.read_text()
    assert html.count("<img") >= 3 and "always_valid_p" in html
    promoted = manage.promote_experiment(cfg, "ab")
    assert promoted["arm"] == "3" and promoted["to_version"] == 3
    assert Registry.from_config(cfg).aliases("ctr")["production"] == 3
    moves = Registry.from_config(cfg).alias_history("ctr", "production")
    assert "experiment ab" in moves[-1].reason
    with pytest.raises(ConflictError, match="already promoted"):
        manage.stop_experiment(cfg, "ab")


def test_canary_report_shows_the_rollback_and_its_reason(cfg, tmp_path):
    manage.start_experiment(cfg, "can", model="ctr", policy="canary", arms="production,challenger")
    store = _traffic(cfg, "can", {"production": 0.05, "challenger": 0.05}, n=200)
    store.update("can", action="advance", stage=1, reason="1% -> 5%: guardrails held")
    store.update(
        "can", action="rollback", status="rolled_back", reason="stage 1 (5%): error rate: ..."
    )
    status = manage.experiment_status(cfg, "can")
    assert status["experiment"]["traffic_pct"] == 0.0
    assert [e["action"] for e in status["events"]] == ["start", "advance", "rollback"]
    html = manage.report_experiment(cfg, "can", tmp_path / "can.html").read_text()
    assert "stage 1 (5%): error rate" in html and html.count("<img") >= 3
    with pytest.raises(ConflictError, match="rolled_back"):
        manage.promote_experiment(cfg, "can")


def test_cli_starts_with_an_attribution_window_and_joins_logged_clicks(cfg):
    import datetime as dt
    import json

    from typer.testing import CliRunner

    from loopml.cli.main import app
    from loopml.logs.eventlog import EventLog

    runner = CliRunner()
    root = str(cfg.root)
    out = runner.invoke(
        app,
        [
            "experiment", "start", "web", "--model", "ctr", "--policy", "ab",
            "--arms", "production,challenger", "--attribution-window", "600",
            "--project", root,
        ],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["attribution_window_s"] == 600
    store = ExperimentStore.from_config(cfg)
    now = time.time()
    store.add_assignments(
        [
            {
                "experiment": "web", "request_id": f"r{i}", "unit_id": f"u{i}",
                "arm": "production" if i % 2 else "challenger", "version": None,
                "kind": "serve", "ts": now, "latency_ms": 1.0, "error": False,
                "score": None, "detail": None,
            }
            for i in range(4)
        ]
    )  # fmt: skip
    # outcomes only logged as events: feedback naming the request
    stamp = dt.datetime.fromtimestamp(now + 1, dt.UTC).isoformat()
    logged = EventLog.from_config(cfg).append(
        "feedback",
        [
            {"event_id": f"f{i}", "ts": stamp, "request_id": f"r{i}", "metric": "click",
             "value": 1.0}
            for i in (0, 1)
        ],
    )  # fmt: skip
    assert logged.accepted == 2
    for _ in range(2):  # joining twice counts each event once
        out = runner.invoke(app, ["experiment", "join", "web", "--project", root])
        assert out.exit_code == 0, out.output
    assert json.loads(out.output)["accepted"] == 0  # the second run stored nothing again
    totals = store.outcome_totals("web", "click")
    assert totals["production"]["positive"] == 1 and totals["challenger"]["positive"] == 1
