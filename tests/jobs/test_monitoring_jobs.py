"""Monitoring as jobs: a drift check whose alert queues another job, and performance."""

from __future__ import annotations

import pandas as pd
from tests.monitor.helpers import T0, log_predictions, reference

from loopml.core.config import ProjectConfig
from loopml.jobs.scheduler import Scheduler
from loopml.jobs.store import JobSpec
from loopml.monitor.service import Monitor

TOML = """
[monitor]
min_labels = 50

[[monitor.alerts]]
name = "x-drift"
source = "drift"
metric = "drifted"
threshold = 0.5
job = "react"
"""


def test_a_drift_alert_queues_the_job_it_names(project_dir, tmp_path):
    path = project_dir / "loopml.toml"
    path.write_text(path.read_text() + TOML)
    cfg = ProjectConfig.load(project_dir)
    log_predictions(cfg, 1200, days=1)
    log_predictions(
        cfg, 1200, start=T0 + pd.Timedelta(days=1), days=1, shift=1.0, seed=1, prefix="s"
    )
    Monitor(cfg).profile("ctr", 1, reference())
    sched = Scheduler(cfg)
    out = tmp_path / "reacted.txt"
    sched.add(
        JobSpec(
            "react",
            "call",
            params={"target": "tests.jobs.targets:record", "kwargs": {"path": str(out)}},
        )
    )
    for name, end in (("calm", T0 + pd.Timedelta(days=1)), ("moved", T0 + pd.Timedelta(days=2))):
        sched.add(
            JobSpec(
                name, "drift_check", params={"model": "ctr", "end": end.isoformat(), "window": "1d"}
            )
        )
    calm = sched.run_now("calm")
    assert calm.status == "succeeded" and calm.result["drifted"] == [] and not calm.result["alerts"]
    assert sched.tick() == []  # nothing was queued
    moved = sched.run_now("moved")
    assert moved.result["drifted"] == ["x"] and moved.result["prediction_drift"]
    assert moved.result["alerts"][0].startswith("x-drift")
    (reaction,) = sched.tick()
    assert (reaction.job, reaction.trigger, reaction.status) == (
        "react",
        "alert:x-drift",
        "succeeded",
    )
    assert reaction.result == {"executions": 1}
    sched.add(
        JobSpec(
            "perf",
            "performance",
            params={"model": "ctr", "end": (T0 + pd.Timedelta(days=4)).isoformat(), "days": 4},
        )
    )
    perf = sched.run_now("perf")
    assert perf.status == "succeeded" and perf.result["windows"] == 4
    stored = Monitor(cfg).store.performance_history("ctr", "auc")
    assert [r["start"].day for r in stored] == [5, 6]  # the two days with predictions
