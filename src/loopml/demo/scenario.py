"""`loopml demo`: the foundation loop end to end on the simulated world.

simulate 14 days -> event log -> point-in-time training set -> baselines, a linear
model and LightGBM side by side -> register the best as ``ctr@production`` (the
runner-up as ``ctr@challenger``) -> pattern 1 batch predictions into the database ->
then the world moves on: five more days with a preference shift and a new user segment
on the third, monitored day by day until drift fires the alert, retraining runs, the
evaluation gate compares, and the new version is promoted -> an HTML report with plots.
Re-running starts the demo project afresh, so a run interrupted at any point is
recovered by running the same command again.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_NAME = "ctr"
#: Days the monitoring loop runs after the foundation's days; the world shifts on the third.
LOOP_DAYS = 5


@dataclass
class DemoResult:
    """What the demo did, for the summary, the report and tests."""

    root: Path
    report: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    leaderboard: Any = None
    best: str = ""
    production_version: int = 0
    batch_rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    loop: Any = None


class _Steps:
    """Prints each step with its duration; the steps' own progress bars show inside."""

    def __init__(self, result: DemoResult) -> None:
        from rich.console import Console

        self.console = Console()
        self.result = result

    def __call__(self, name: str):  # noqa: ANN204 - a context manager
        return _Step(self, name)


class _Step:
    def __init__(self, steps: _Steps, name: str) -> None:
        self.steps, self.name = steps, name

    def __enter__(self) -> _Step:
        self.start = time.perf_counter()
        self.steps.console.print(f"[bold cyan]>[/] {self.name} ...")
        return self

    def __exit__(self, exc_type, *_: Any) -> None:  # noqa: ANN001
        seconds = time.perf_counter() - self.start
        self.steps.result.timings[self.name] = seconds
        mark = "[green]done[/]" if exc_type is None else "[red]failed[/]"
        self.steps.console.print(f"  {mark} in {seconds:.1f}s")


def run_demo(
    directory: str | Path = "loopml-demo",
    *,
    days: int = 14,
    impressions_per_day: int = 100_000,
    seed: int = 0,
    quick: bool = False,
) -> DemoResult:
    """Run the foundation scenario in ``directory`` and write ``report.html`` there."""
    from loopml.core.config import init_project
    from loopml.project import Project

    if quick:
        days, impressions_per_day = min(days, 10), min(impressions_per_day, 15_000)
    root = Path(directory)
    if (root / ".loopml").exists():
        shutil.rmtree(root / ".loopml")
    init_project(root, name="loopml-demo", force=True)
    project = Project.open(root)
    result = DemoResult(root=root.resolve())
    step = _Steps(result)
    started = time.perf_counter()

    world, frames = _simulate(step, project, days, impressions_per_day, seed)
    data, views = _training_set(step, project, world, days)
    results, splits = _train(step, project, data, views, seed)
    _register(step, project, results, result)
    _batch(step, project, result)
    with step(
        f"monitoring days {days}-{days + LOOP_DAYS - 1} (the world shifts on day {days + 2})"
    ):
        from loopml.jobs.loop import run_monitoring_loop

        result.loop = run_monitoring_loop(
            project.config, world, range(days, days + LOOP_DAYS), model=MODEL_NAME
        )
    with step("writing the report"):
        from loopml.demo.report import write_report

        result.report = write_report(project, world, results, splits, result)
    result.timings["total"] = time.perf_counter() - started
    _summary(step.console, result)
    return result


def _simulate(step, project, days: int, impressions_per_day: int, seed: int):  # noqa: ANN001, ANN202
    from loopml.sim import World, WorldConfig

    with step(f"simulating {days} days x {impressions_per_day:,} impressions"):
        config = WorldConfig(
            seed=seed,
            days=days + LOOP_DAYS,
            impressions_per_day=impressions_per_day,
            shift_day=days + 2,
        )
        world = World(config)
        frames = world.generate(range(days), progress=True)
    with step("appending events to the Parquet event log"):
        for event_type, frame in frames.items():
            project.events.append(event_type, frame, source="sim")
        project.result_counts = project.events.counts()
    return world, frames


def _training_set(step, project, world, days: int):  # noqa: ANN001, ANN202
    from loopml.features.training import build_training_set
    from loopml.features.views import default_catalog

    views = list(default_catalog())
    start = world.day_start(min(3, days - 3))
    end = world.day_start(days - 1) + _hours(23)
    with step("building the point-in-time training set"):
        data = build_training_set(
            project.events,
            views,
            start=start,
            end=end,
            label="click",
            label_window="1h",
            progress=True,
        )
        data["hour"] = data["ts"].dt.hour.astype("int64")
    return data, views


def _train(step, project, data, views, seed: int):  # noqa: ANN001, ANN202
    from loopml.demo.models import candidates
    from loopml.train.datasets import time_split
    from loopml.train.trainer import train

    splits = time_split(data, "ts", valid_days=1, test_days=2)
    lineage = {"feature_views": {v.name: v.version for v in views}}
    results = {}
    for name, (estimator, features) in candidates(seed).items():
        rate = 0.1 if name in ("logistic", "lightgbm") else None
        with step(f"training {name}" + (" (negatives down-sampled to 10%)" if rate else "")):
            results[name] = train(
                estimator,
                splits,
                features=features,
                label="label",
                task="binary",
                name=f"{MODEL_NAME}-{name}",
                tracker=project.runs,
                lineage=lineage,
                downsample_rate=rate,
                seed=seed,
            )
    return results, splits


def _register(step, project, results, result: DemoResult) -> None:  # noqa: ANN001
    from loopml.train.trainer import leaderboard

    board = leaderboard(list(results.values()), split="test")
    result.leaderboard = board
    ranked = sorted(results, key=lambda n: results[n].metrics["test"]["log_loss"])
    result.best = ranked[0]
    with step(f"registering {ranked[0]} as {MODEL_NAME}@production"):
        best = results[ranked[0]].register(
            project.registry,
            name=MODEL_NAME,
            description=f"demo: best of {len(results)} by log loss",
        )
        project.registry.set_alias(
            MODEL_NAME,
            "production",
            best.version,
            actor="demo",
            reason="best test log loss in the demo comparison",
        )
        runner = results[ranked[1]].register(
            project.registry, name=MODEL_NAME, description="demo: runner-up"
        )
        project.registry.set_alias(
            MODEL_NAME,
            "challenger",
            runner.version,
            actor="demo",
            reason="runner-up, kept for rollout experiments",
        )
        result.production_version = best.version


def _batch(step, project, result: DemoResult) -> None:  # noqa: ANN001
    from loopml.serve.batch.job import run_batch_job

    with step("pattern 1: batch predictions into the predictions table"):
        out = run_batch_job(project.config, f"{MODEL_NAME}@production", top_items=20, progress=True)
        result.batch_rows = out.rows


def _hours(n: int):  # noqa: ANN202
    import pandas as pd

    return pd.Timedelta(hours=n)


def _summary(console, result: DemoResult) -> None:  # noqa: ANN001
    from rich.table import Table

    table = Table(title="test-day metrics (lower log loss is better)")
    for col in ("model", "roc_auc", "pr_auc", "log_loss", "normalized_entropy", "ece"):
        table.add_column(col)
    board = result.leaderboard.reset_index().rename(columns={"name": "model"})
    for row in board.to_dict(orient="records"):
        table.add_row(
            *[
                _cell(row.get(c))
                for c in ("model", "roc_auc", "pr_auc", "log_loss", "normalized_entropy", "ece")
            ]
        )
    console.print(table)
    console.print(
        f"[bold]{MODEL_NAME}@production[/] = v{result.production_version} ({result.best}); "
        f"{result.batch_rows:,} batch predictions written; total {result.timings['total']:.0f}s"
    )
    if result.loop is not None:
        console.print(str(result.loop))
    console.print(f"report: [bold]{result.report}[/]")


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
