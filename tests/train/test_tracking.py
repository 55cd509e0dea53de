"""Run tracking on SQLite and PostgreSQL: lifecycle, crashes, comparison, artifacts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from loopml.core.errors import ClosedError, IntegrityError, NotFoundError, ValidationError
from loopml.train.tracking import RunStore, code_revision


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, metadata_url: str) -> str:
    if request.param == "sqlite":
        return metadata_url
    return request.getfixturevalue("postgres_schema")


@pytest.fixture
def runs(store_url: str, artifact_root: str) -> RunStore:
    return RunStore(store_url, artifact_root)


def test_run_lifecycle_and_listing(runs: RunStore):
    with runs.start("ctr", params={"lr": 0.1, "leaves": 31}, tags={"who": "ana"}) as run:
        running = runs.get(run.run_id)
        assert running.status == "running" and running.ended_at is None
        run.log_metrics({"valid": {"roc_auc": 0.71}})
        run.log_metrics({"test": {"roc_auc": 0.70}})
        run.log_lineage({"dataset_fingerprint": "f00d"})
        digest = run.log_artifact("model.bin", b"weights")
    rec = runs.get(run.run_id)
    assert rec.status == "finished" and rec.duration_s is not None and rec.duration_s >= 0
    assert rec.metrics == {"valid": {"roc_auc": 0.71}, "test": {"roc_auc": 0.70}}
    assert rec.lineage["dataset_fingerprint"] == "f00d" and "code_revision" in rec.lineage
    assert rec.tags == {"who": "ana"} and rec.artifacts == {"model.bin": digest}
    assert runs.artifact(run.run_id, "model.bin") == b"weights"
    with pytest.raises(ClosedError, match="has ended"):
        run.log_metrics({"late": 1})
    with runs.start("other") as second:
        pass
    assert [r.run_id for r in runs.list_runs()] == [second.run_id, run.run_id]
    assert [r.run_id for r in runs.list_runs(name="ctr")] == [run.run_id]
    assert runs.list_runs(status="running") == []
    assert runs.get(run.run_id[:8]).run_id == run.run_id


def test_an_exception_marks_the_run_failed_and_propagates(runs: RunStore):
    with pytest.raises(ZeroDivisionError), runs.start("ctr") as run:
        1 / 0  # noqa: B018
    rec = runs.get(run.run_id)
    assert rec.status == "failed" and "ZeroDivisionError" in rec.error


_CRASH = textwrap.dedent(
    """
    import os, sys
    from loopml.train.tracking import RunStore
    run = RunStore(sys.argv[1], sys.argv[2]).start("ctr", params={"lr": 1})
    print(run.run_id, flush=True)
    os._exit(3)
    """
)


def test_a_crashed_process_leaves_a_visible_run_that_reap_marks_failed(
    runs: RunStore, store_url: str, artifact_root: str
):
    out = subprocess.run(
        [sys.executable, "-c", _CRASH, store_url, artifact_root],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 3, out.stderr
    run_id = out.stdout.strip()
    assert runs.get(run_id).status == "running"  # visible although the process died
    with runs.start("alive") as mine:
        assert runs.reap() == [run_id]  # our own live run is not touched
        assert runs.get(mine.run_id).status == "running"
    rec = runs.get(run_id)
    assert rec.status == "failed" and "exited" in rec.error


def test_compare_puts_params_and_metrics_side_by_side(runs: RunStore):
    with runs.start("ctr", params={"lr": 0.1, "model": "lgbm"}) as a:
        a.log_metrics({"test": {"roc_auc": 0.70, "log_loss": 0.30}})
    with runs.start("ctr", params={"lr": 0.05, "model": "lgbm", "extra": True}) as b:
        b.log_metrics({"test": {"roc_auc": 0.72}})
    frame = runs.compare(a.run_id, b.run_id[:10])
    assert list(frame.columns) == [a.run_id, b.run_id, "diff"]
    assert frame.index.tolist()[:3] == ["param.extra", "param.lr", "param.model"]
    assert frame.loc["metric.test.roc_auc", "diff"] == pytest.approx(0.02)
    assert frame.loc["param.lr", "diff"] == pytest.approx(-0.05)
    assert pd.isna(frame.loc["param.model", "diff"])
    assert pd.isna(frame.loc["metric.test.log_loss", b.run_id])
    assert frame.loc["param.model", a.run_id] == "lgbm"


def test_lookup_errors_and_tampered_artifacts(runs: RunStore):
    with pytest.raises(NotFoundError, match="no run 'ffff'"):
        runs.get("ffff")
    with runs.start("ctr") as run:
        run.log_artifact("report.json", b"{}")
    with pytest.raises(NotFoundError, match=r"it has \['report.json'\]"):
        runs.artifact(run.run_id, "model.bin")
    runs.artifacts.local_path(f"runs/{run.run_id}/report.json").write_bytes(b"[]")
    with pytest.raises(IntegrityError):
        runs.artifact(run.run_id, "report.json")
    with pytest.raises(ValidationError, match="status must be one of"):
        runs.list_runs(status="crashed")


def test_code_revision_reads_git_head_without_git(tmp_path: Path):
    repo = tmp_path / "repo"
    (repo / ".git" / "refs" / "heads").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "refs" / "heads" / "main").write_text("a" * 40 + "\n")
    (repo / "sub").mkdir()
    assert code_revision(repo / "sub") == "git:" + "a" * 40
    (repo / ".git" / "refs" / "heads" / "main").unlink()
    (repo / ".git" / "packed-refs").write_text("# pack\n" + "b" * 40 + " refs/heads/main\n")
    assert code_revision(repo) == "git:" + "b" * 40
    assert code_revision(tmp_path / "elsewhere").startswith(("loopml:", "git:"))
