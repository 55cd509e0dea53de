"""The monitoring history on both metadata backends (SQLite and the real PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest

from loopml.monitor.drift import check_drift
from loopml.monitor.plots import drift_figure
from loopml.monitor.profile import build_profile
from loopml.monitor.quality import check_quality
from loopml.monitor.store import MonitorStore
from loopml.monitor.summary import summarise


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> MonitorStore:
    if request.param == "postgres":
        return MonitorStore(request.getfixturevalue("postgres_schema"))
    return MonitorStore(f"sqlite:///{tmp_path}/meta.db")


def test_profiles_windows_columns_performance_and_alerts_round_trip(store, tmp_path):
    rng = np.random.default_rng(0)
    ref = {"x": rng.normal(0, 1, 3000), "c": rng.choice(["a", "b"], 3000)}
    store.save_profile("ctr", 2, build_profile(ref))
    profile = store.load_profile("ctr", 2)
    assert profile["x"].n == 3000 and store.has_profile("ctr", 2)
    assert not store.has_profile("ctr", 1)
    for day, shift in ((1, 0.0), (2, 1.0)):
        cur = {"x": rng.normal(shift, 1, 3000), "c": rng.choice(["a", "b", "z"], 3000)}
        summary = summarise(profile, cur)
        store.record_window(
            "ctr",
            2,
            f"2026-01-0{day}",
            f"2026-01-0{day + 1}",
            check_drift(profile, cur),
            check_quality(profile, summary),
        )
    windows = store.windows("ctr")
    assert [w["n_drifted"] for w in windows] == [1, 2]  # the unseen "z" drifts c both days
    assert windows[0]["quality_failed"] == 1 and windows[0]["end"].day == 2
    history = store.column_history("ctr")
    assert {(r["end"].day, r["column"]): r["drifted"] for r in history} == {
        (2, "x"): False,
        (2, "c"): True,
        (3, "x"): True,
        (3, "c"): True,
    }
    store.record_performance(
        "ctr",
        2,
        "2026-01-01",
        "2026-01-02",
        [
            {"metric": "auc", "value": 0.71, "n": 900},
            {"metric": "auc", "value": float("nan"), "n": 0, "slice": "x=1"},
        ],
    )
    (row,) = store.performance_history("ctr", "auc")
    assert row["value"] == pytest.approx(0.71)
    alert_id = store.record_alert({"rule": "r", "model": "ctr", "message": "m", "value": 1.0})
    store.update_alert(alert_id, webhook="204")
    assert store.alerts("ctr")[0]["webhook"] == "204"
    path = tmp_path / "drift.png"
    drift_figure(history).savefig(path)
    assert path.stat().st_size > 5_000
