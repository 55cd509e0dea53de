"""The foundation's CLI, run as a user would: init, sim, ingest, sql, runs, models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopml.cli.main import app

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "proj"
    _ok("init", str(root), "--name", "clitest")
    _ok(
        "sim",
        "generate",
        "--days",
        "2",
        "--impressions-per-day",
        "3000",
        "--quiet",
        "--project",
        str(root),
    )
    return root


def test_sim_events_are_queryable_with_sql(project):
    out = _ok("sql", "SELECT count(*) AS n FROM impression", "--project", str(project))
    assert "6000" in out.replace(",", "")
    counts = _ok("events", "counts", "--project", str(project))
    assert "impression" in counts and "6,000" in counts


def test_ingest_sends_bad_rows_to_dead_letters(project, tmp_path):
    csv = tmp_path / "clicks.csv"
    csv.write_text(
        "event_id,ts,impression_id,user_id,item_id\n"
        "c-ok-1,2026-01-06T10:00:00Z,imp-000-0000001,u000001,i0001\n"
        "c-bad-1,not-a-time,imp-000-0000002,u000002,i0002\n"
        "c-bad-2,2026-01-06T10:00:00Z,imp-000-0000003,,i0003\n"
    )
    out = _ok("ingest", str(csv), "--type", "click", "--project", str(project))
    assert "accepted 1" in out and "rejected 2" in out
    dead = _ok("events", "dead-letters", "--project", str(project))
    assert "c-bad-1" in dead.replace("\n", "") or "not-a-time" in dead.replace("\n", "")


def test_models_alias_rollback_show_and_runs(project):
    from loopml.project import Project
    from loopml.sim import World, WorldConfig
    from loopml.train.baselines import PriorBaseline
    from loopml.train.datasets import time_split
    from loopml.train.trainer import train

    proj = Project.open(project)
    frame = World(WorldConfig(days=2, impressions_per_day=3000)).generate()["impression"]
    frame["label"] = (frame["position"] == 0).astype(int)
    splits = time_split(frame, valid_days=0.5, test_days=0.5)
    for _ in range(2):
        result = train(
            PriorBaseline(),
            splits,
            features=["position"],
            label="label",
            name="ctr",
            tracker=proj.runs,
        )
        result.register(proj.registry, name="ctr")
    root = ("--project", str(project))
    assert "v1 -> v2" not in _ok(
        "models", "alias", "ctr", "production", "1", "--reason", "launch", *root
    )
    assert "v1 -> v2" in _ok(
        "models", "alias", "ctr", "production", "2", "--reason", "better", *root
    )
    assert "v2 -> v1" in _ok("models", "rollback", "ctr", "--reason", "regression", *root)
    listing = _ok("models", "ls", *root)
    assert "ctr" in listing and "production->v1" in listing
    shown = _ok("models", "show", "ctr@production", *root)
    assert "sha256=" in shown and "regression" in shown and "position:" in shown
    runs = _ok("runs", "ls", *root)
    assert runs.count("ctr") >= 2


def test_errors_are_one_clear_line_with_exit_code(project):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loopml.cli.main",
            "models",
            "show",
            "nosuch",
            "--project",
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


def test_missing_project_says_how_to_create_one(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "loopml.cli.main", "events", "counts", "--project", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "loopml init" in proc.stderr
