"""The project monitor on the real event log and metadata DB: drift windows, delayed labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from tests.monitor.helpers import T0, log_predictions, reference

from loopml.core.config import ProjectConfig
from loopml.core.errors import NotFoundError, ValidationError
from loopml.monitor import actions
from loopml.monitor.ops import prediction_log_ops
from loopml.monitor.service import Monitor


def _with_monitor_section(project_dir, text: str) -> ProjectConfig:
    path = project_dir / "loopml.toml"
    path.write_text(path.read_text() + "\n" + text)
    return ProjectConfig.load(project_dir)


def test_logged_predictions_are_checked_against_the_version_profile(cfg):
    log_predictions(cfg, 1500, days=1)
    log_predictions(
        cfg, 1500, start=T0 + pd.Timedelta(days=1), days=1, shift=1.0, seed=1, prefix="s"
    )
    monitor = Monitor(cfg)
    monitor.profile("ctr", 1, reference())
    calm = monitor.check_predictions("ctr", T0, T0 + pd.Timedelta(days=1))
    moved = monitor.check_predictions("ctr", T0 + pd.Timedelta(days=1), T0 + pd.Timedelta(days=2))
    assert calm.drift.drifted == [] and not calm.drift.prediction.drifted
    assert calm.version == 1 and calm.drift.n_cur == 1500
    assert moved.drift.drifted == ["x"] and moved.drift.prediction.drifted
    history = monitor.store.column_history("ctr")
    assert {r["column"]: r["drifted"] for r in history if r["id"] == moved.window_id} == {
        "x": True,
        "segment": False,
        "prediction": True,
    }
    assert [w["id"] for w in monitor.store.windows("ctr")] == [calm.window_id, moved.window_id]


def test_missing_profile_and_empty_window_say_what_to_do(cfg):
    monitor = Monitor(cfg)
    with pytest.raises(NotFoundError, match="no reference profile for ctr v1"):
        monitor.store.load_profile("ctr", 1)
    with pytest.raises(ValidationError, match="no logged predictions of 'ctr'"):
        monitor.check_predictions("ctr", T0, T0 + pd.Timedelta(days=1))


def test_delayed_labels_count_only_matured_predictions(project_dir):
    cfg = _with_monitor_section(project_dir, '[monitor]\nlabel_horizon = "1d"\nmin_labels = 50\n')
    truth = log_predictions(cfg, 3000, days=3)
    monitor = Monitor(cfg)
    now = T0 + pd.Timedelta(days=2, hours=12)  # day 0 matured, day 1 half, day 2 pending
    rows = pd.DataFrame(monitor.performance("ctr", T0, T0 + pd.Timedelta(days=3), now=now))
    overall = rows[rows["slice"] == "all"].pivot_table(
        index="start", columns="metric", values="value"
    )
    day0 = truth[truth.ts < T0 + pd.Timedelta(days=1)]
    first = overall.iloc[0]
    assert first["n_labelled"] == len(day0) and first["n_pending"] == 0
    assert first["label_rate"] == pytest.approx(day0.clicked.mean())
    assert first["auc"] == pytest.approx(roc_auc_score(day0.clicked, day0.p))
    day1 = (truth.ts >= T0 + pd.Timedelta(days=1)) & (truth.ts < now - pd.Timedelta(days=1))
    matured_day1 = truth[day1]
    assert overall.iloc[1]["n_labelled"] == len(matured_day1)
    assert overall.iloc[2]["n_labelled"] == 0 and overall.iloc[2]["n_pending"] > 900
    stored = monitor.store.performance_history("ctr", "auc")
    assert len(stored) == 2  # the all-pending window is not stored as if it were a result


def test_performance_per_slice_and_late_feedback_beyond_horizon(project_dir):
    cfg = _with_monitor_section(
        project_dir, '[monitor]\nlabel_horizon = "1h"\nmin_labels = 10\nslices = ["segment"]\n'
    )
    truth = log_predictions(cfg, 1200, days=1, click_delay_min=120)  # clicks after 2 h
    monitor = Monitor(cfg)
    rows = pd.DataFrame(
        monitor.performance("ctr", T0, T0 + pd.Timedelta(days=1), now=T0 + pd.Timedelta(days=5))
    )
    rates = rows[rows.metric == "label_rate"].set_index("slice")["value"]
    assert set(rates.index) == {"all", "segment=a", "segment=b"}
    assert rates["all"] == 0.0  # every click arrived after the 1 h horizon: not a label
    assert truth.clicked.sum() > 0


def test_summary_collects_drift_performance_and_alerts(cfg):
    log_predictions(cfg, 900, days=3)
    monitor = Monitor(cfg)
    monitor.profile("ctr", 1, reference())
    for day in range(3):
        lo = T0 + pd.Timedelta(days=day)
        monitor.check_predictions("ctr", lo, lo + pd.Timedelta(days=1))
    monitor.performance("ctr", T0, T0 + pd.Timedelta(days=3), now=T0 + pd.Timedelta(days=9))
    summary = monitor.summary("ctr")["models"]["ctr"]
    assert len(summary["drift"]) == 3
    assert sum(w["n_rows"] for w in summary["drift"]) == 900
    assert {p["metric"] for p in summary["performance"]} >= {"auc", "label_rate"}
    assert summary["alerts"] == []
    served = prediction_log_ops(monitor.events, "ctr", T0, T0 + pd.Timedelta(days=3))
    assert served["v1"]["rows"] == 900 and served["v1"]["requests"] == 900
    assert served["v1"]["latency_p50_ms"] == pytest.approx(np.median(truth_latency(cfg)))
    text = actions.summary(cfg, "ctr")
    assert "== ctr" in text and "3 drift" not in text and text.count("  drift ") == 3
    assert "performance (latest window): auc" in text


def truth_latency(cfg) -> np.ndarray:
    from loopml.logs.eventlog import EventLog

    return (
        EventLog.from_config(cfg).sql("SELECT latency_ms FROM prediction")["latency_ms"].to_numpy()
    )
