"""Pin loopml.jobs' public names and the CLI-facing helpers."""

from __future__ import annotations

import loopml.jobs
from loopml.jobs.actions import add_job, history, list_jobs, run_job


def test_public_names_are_pinned_and_resolve():
    assert loopml.jobs.__all__ == [
        "JobSpec",
        "JobStore",
        "LoopReport",
        "RetrainResult",
        "RetrainSpec",
        "RunRecord",
        "Scheduler",
        "approve",
        "retrain",
        "run_monitoring_loop",
    ]
    for name in loopml.jobs.__all__:
        assert getattr(loopml.jobs, name) is not None


def test_cli_helpers_define_run_and_list(tmp_path):
    from loopml.core.config import ProjectConfig

    cfg = ProjectConfig.from_dict({}, root=tmp_path)
    out = tmp_path / "ran.txt"
    add_job(
        cfg,
        "hello",
        "call",
        schedule="@daily",
        params={"target": "tests.jobs.targets:record", "kwargs": {"path": str(out)}},
    )
    assert [(j.name, j.schedule) for j in list_jobs(cfg)] == [("hello", "@daily")]
    run = run_job(cfg, "hello", progress=False)
    assert run.status == "succeeded" and out.read_text() == "ran\n"
    assert [r.id for r in history(cfg, "hello")] == [run.id]
