"""`loopml predict batch` killed with SIGKILL half-way, then re-run: every row once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from loopml.core.config import ProjectConfig
from loopml.project import Project


@pytest.fixture(scope="module")
def scored_project(tmp_path_factory) -> Path:
    """A small simulated project with a LightGBM model at ctr@production."""
    from lightgbm import LGBMClassifier

    from loopml.core.config import init_project
    from loopml.features.training import build_training_set
    from loopml.features.views import default_catalog
    from loopml.sim import World, WorldConfig
    from loopml.train.datasets import time_split
    from loopml.train.trainer import train

    root = tmp_path_factory.mktemp("batch") / "proj"
    init_project(root, name="batchtest")
    project = Project.open(root)
    world = World(
        WorldConfig(seed=3, n_users=3_000, n_items=120, days=5, impressions_per_day=8_000)
    )
    for event_type, frame in world.generate().items():
        project.events.append(event_type, frame)
    views = [default_catalog().get(n) for n in ("user_activity", "item_popularity")]
    data = build_training_set(
        project.events, views, start=world.day_start(1), end=world.day_start(5)
    )
    features = [c for c in data.columns if "__" in c] + ["position"]
    result = train(
        LGBMClassifier(n_estimators=20, verbose=-1),
        time_split(data, valid_days=1, test_days=1),
        features=features,
        label="label",
        name="ctr",
    )
    mv = result.register(project.registry, name="ctr")
    project.registry.set_alias("ctr", "production", mv.version, actor="test", reason="fixture")
    return root


def _cli(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "loopml.cli.main", *args, "--project", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_sigkill_mid_job_then_rerun_has_every_row_once(scored_project):
    root = scored_project
    cfg = ProjectConfig.load(root)
    args = (
        "predict",
        "batch",
        "ctr",
        "--date",
        "2026-01-10",
        "--top-items",
        "40",
        "--chunk-size",
        "300",
    )
    proc = _cli(root, *args)
    engine = sa.create_engine(cfg.url("predictions"))
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with engine.connect() as conn:
                committed = conn.execute(sa.text("SELECT count(*) FROM batch_job_chunks")).scalar()
        except sa.exc.OperationalError:
            committed = 0
        if committed >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the job finished before it could be killed"
    with engine.connect() as conn:
        partial = conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar()
        total = conn.execute(sa.text("SELECT n_rows FROM batch_jobs")).scalar()
    assert 0 < partial < total

    rerun = _cli(root, *args)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    assert "already done" in out
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar()
        distinct = conn.execute(
            sa.text("SELECT count(*) FROM (SELECT DISTINCT user_id, item_id FROM predictions) d")
        ).scalar()
        status = conn.execute(sa.text("SELECT status FROM batch_jobs")).scalar()
    assert rows == distinct == total
    assert status == "complete"
    engine.dispose()


def test_population_rows_carry_model_version_and_run_id(scored_project):
    from loopml.serve.batch.job import run_batch_job

    project = Project.open(scored_project)
    mv = project.registry.get("ctr", "production")
    first = run_batch_job(project.config, "ctr", score_date="2026-01-10", top_items=40)
    again = run_batch_job(project.config, "ctr", score_date="2026-01-10", top_items=40)
    assert again.job_id == first.job_id and again.chunks_written == 0
    assert project.predictions.count(first.job_id) == first.rows
    rows = project.predictions.read(
        "SELECT DISTINCT model, version, run_id FROM latest_predictions"
    )
    assert rows == [{"model": "ctr", "version": mv.version, "run_id": mv.run_id}]


def test_unknown_population_names_the_choices(scored_project):
    proc = _cli(scored_project, "predict", "batch", "ctr", "--population", "everyone")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "unknown population 'everyone'" in out and "active_users" in out
