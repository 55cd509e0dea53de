"""The closed loop on the simulated world: serve, monitor, alert, retrain, gate, promote.

Each simulated day the production model scores that day's impressions (logged as
``prediction`` events, the clicks as delayed ``feedback``), the day is checked for
drift against the serving version's reference profile, delayed-label performance is
computed, and a model-driven feed is replayed against the world's true click
probabilities (the business metric a person cares about). When an alert rule names
the retraining job, the scheduler runs it: retrain, gate, promote. The report keeps
the timeline, with the moments of detection and promotion, and draws it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.config import ProjectConfig
from loopml.core.errors import ValidationError
from loopml.jobs.simulation import ensure_events, features_of, feed_click_rates, serve_day

if TYPE_CHECKING:
    import pandas as pd

    from loopml.sim.world import World

RETRAIN_JOB = "retrain-{model}"
#: Rules whose alerts count as detecting the shift (prediction drift is reported: a
#: model fed with trend features drifts in output while the world is unchanged).
DETECTION_RULES = ("feature-drift", "data-quality")
DETECT_RULE = {
    "name": "feature-drift",
    "source": "drift",
    "metric": "drifted",
    "op": ">",
    "threshold": 0.5,
    "min_columns": 1,
    "consecutive": 2,
}


@dataclass
class LoopDay:
    """One simulated day of the loop."""

    day: int
    date: dt.date
    version: int
    rows: int
    drifted: list[str]
    drift_score: float
    prediction_score: float | None
    auc: float | None
    click_rate: float
    policy_ctr: float
    random_ctr: float
    oracle_ctr: float
    alerts: list[str] = field(default_factory=list)
    retrain: dict[str, Any] | None = None
    promoted: int | None = None


@dataclass
class LoopReport:
    """The timeline: per day, plus when the shift came, was detected and was fixed."""

    model: str
    days: list[LoopDay]
    shift_day: int
    seconds: float = 0.0

    @property
    def detection_day(self) -> int | None:
        """The first day a watched feature raised an alert (drift or data quality)."""
        return next((d.day for d in self.days if set(d.alerts) & set(DETECTION_RULES)), None)

    @property
    def promotion_day(self) -> int | None:
        return next((d.day for d in self.days if d.promoted is not None), None)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        rows = [{k: v for k, v in d.__dict__.items() if k != "retrain"} for d in self.days]
        return pd.DataFrame(rows).set_index("day")

    def __str__(self) -> str:
        lines = [
            f"{'day':>4} {'ver':>4} {'drift':>6} {'auc':>6} {'ctr':>7} {'feed ctr':>8}  events"
        ]
        for d in self.days:
            auc = f"{d.auc:.3f}" if d.auc is not None else "  -  "
            marks = []
            if d.day == self.shift_day:
                marks.append("world shifts")
            marks += [f"ALERT {a}" for a in d.alerts]
            if d.retrain:
                gate = d.retrain["gate"]
                marks.append(
                    f"retrain: {gate['metric']} {gate['challenger']:.3f} vs {gate['champion']:.3f}"
                )
            if d.promoted:
                marks.append(f"v{d.promoted} promoted")
            lines.append(
                f"{d.day:>4} {d.version:>4} {d.drift_score:>6.3f} {auc:>6} "
                f"{d.click_rate:>7.4f} {d.policy_ctr:>8.4f}  {'; '.join(marks)}"
            )
        lines.append(
            f"shift on day {self.shift_day}, detected on day {self.detection_day}, "
            f"new version promoted on day {self.promotion_day}"
        )
        return "\n".join(lines)

    def figure(self) -> Any:
        """Drift, performance and click rate over time, detection and promotion marked."""
        from loopml.monitor.plots import loop_figure

        return loop_figure(self)


def run_monitoring_loop(
    config: ProjectConfig,
    world: World,
    days: Iterable[int],
    *,
    model: str = "ctr",
    alias: str = "production",
    retrain: dict[str, Any] | None = None,
    policy_requests: int = 500,
    candidates: int = 20,
    progress: bool = True,
) -> LoopReport:
    """Run the loop over ``days`` of ``world`` for ``model@alias`` (already registered).

    Days not yet in the event log are simulated and appended. ``retrain`` overrides
    :class:`~loopml.jobs.retrain.RetrainSpec` fields (default: 3 training days,
    automatic promotion). Unless ``[[monitor.alerts]]`` is configured, the loop adds a
    rule that queues the retraining job after two drifted windows in a row.
    """
    from loopml.jobs.scheduler import Scheduler
    from loopml.jobs.store import JobSpec
    from loopml.monitor.alerts import AlertRule
    from loopml.monitor.service import Monitor
    from loopml.predict.flavours import load_predictor
    from loopml.registry.registry import Registry

    started = time.perf_counter()
    chosen = sorted(days)
    if not chosen or chosen[-1] >= world.config.days:
        raise ValidationError(
            f"days must be non-empty and below the world's {world.config.days} days, got "
            f"{chosen[:3]}...{chosen[-3:]}; build the World with more days",
            field="days",
        )
    registry = Registry.from_config(config)
    scheduler = Scheduler(config)
    job = RETRAIN_JOB.format(model=model)
    monitor = Monitor(
        config,
        trigger=lambda name, why: (
            scheduler.trigger(name, why, trigger=f"alert:{why.get('rule')}").id
        ),
    )
    watched = _watched(registry.get(model, alias))
    if config.section("monitor").get("alerts") is None:
        cols = tuple(watched)
        monitor.rules = [
            AlertRule.from_dict({**DETECT_RULE, "columns": cols, "job": job}),
            AlertRule("prediction-drift", "prediction", "drifted", ">", 0.5, consecutive=2),
            AlertRule("data-quality", "quality", "failed", ">", 0.5, columns=cols),
        ]
    rng = np.random.default_rng(world.config.seed + 7)
    report = LoopReport(model, [], world.config.shift_day)
    bar = _Progress(progress, len(chosen))
    for day in chosen:
        bar.step(f"day {day}")
        lo, hi = world.day_start(day).to_pydatetime(), world.day_start(day + 1).to_pydatetime()
        ensure_events(config, world, day)
        champion = registry.get(model, alias)
        predictor = load_predictor(registry, model, champion.version)
        frame = serve_day(config, champion, predictor, lo, hi)
        _ensure_profile(config, monitor, champion, predictor)
        spec = {
            "model": model,
            "alias": alias,
            "train_days": 3.0,
            **(retrain or {}),
            "now": hi.isoformat(),
        }
        scheduler.add(
            JobSpec(job, "retrain", None, spec, max_retries=1, retry_delay_s=0), replace=True
        )
        checked = monitor.check(model, champion.version, _monitored(frame, champion), lo, hi)
        perf = monitor.performance(model, lo, hi, now=hi + dt.timedelta(hours=2), slices=())
        values = {r["metric"]: r["value"] for r in perf if r["slice"] == "all"}
        feed = feed_click_rates(
            config,
            world,
            predictor,
            champion,
            lo + dt.timedelta(hours=12),
            policy_requests,
            candidates,
            rng,
        )
        entry = LoopDay(
            day,
            lo.date(),
            champion.version,
            checked.drift.n_cur,
            checked.drift.drifted,
            _largest_drift(checked.drift, watched),
            checked.drift.prediction.score if checked.drift.prediction else None,
            values.get("auc"),
            float(frame["label"].mean()),
            *feed,
            alerts=[a.rule for a in checked.alerts],
        )
        for run in scheduler.tick(now=hi):
            if run.job == job and run.status == "succeeded" and run.result:
                entry.retrain = run.result
                if run.result.get("promoted"):
                    entry.promoted = run.result["version"]
        report.days.append(entry)
    bar.close()
    report.seconds = time.perf_counter() - started
    return report


# -- one day ------------------------------------------------------------------------------
def _watched(champion: Any) -> list[str]:
    """Features worth an alert: entity attributes (categories), position and hour.

    Windowed counts, rates, recency and ages move every day by construction; they are
    monitored and plotted, but alerting on them would cry wolf daily.
    """
    features = set(features_of(champion))
    named = [c.name for c in champion.signature.inputs if c.kind == "category"]
    return [c for c in [*named, "position", "hour"] if c in features]


def _largest_drift(report: Any, columns: list[str]) -> float:
    """The largest distance among the watched features (what the alert looks at)."""
    scores = [
        c.score
        for c in report.columns
        if c.column in columns and c.method in ("wasserstein", "jensenshannon", "psi")
    ]
    return max(scores, default=0.0)


def _monitored(frame: pd.DataFrame, champion: Any) -> pd.DataFrame:
    return frame[[*features_of(champion), "prediction"]]


def _ensure_profile(config: ProjectConfig, monitor: Any, champion: Any, predictor: Any) -> None:
    """Profile the version's training window once (its reference), with its own outputs."""
    from loopml.core.clock import to_utc
    from loopml.jobs.candidates import default_dataset

    if monitor.store.has_profile(champion.name, champion.version):
        return
    lineage = champion.lineage
    window = lineage.get("retrain") or {}
    start = window.get("train_start") or (lineage.get("data", {}).get("train") or {}).get("start")
    end = window.get("train_end") or (lineage.get("data", {}).get("train") or {}).get("end")
    if not start or not end:
        raise ValidationError(
            f"{champion.name} v{champion.version} records no training window in its lineage; "
            "profile it with Monitor.profile(model, version, reference_frame)",
            field="lineage",
        )
    # the last two or four whole days: enough rows, and halves that split daily cycles evenly
    end_ts = (to_utc(end) + dt.timedelta(seconds=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    span = 4 if end_ts - to_utc(start) >= dt.timedelta(days=4) else 2
    start_ts = end_ts - dt.timedelta(days=span)
    reference = default_dataset(config, start_ts, end_ts, dict(lineage))
    reference["prediction"] = predictor.predict(reference[features_of(champion)])
    monitor.profile(champion.name, champion.version, _monitored(reference, champion))


class _Progress:
    def __init__(self, enabled: bool, total: int) -> None:
        self._progress = None
        if enabled:
            from rich.progress import Progress

            self._progress = Progress()
            self._progress.start()
            self._task = self._progress.add_task("monitoring loop", total=total)

    def step(self, what: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=f"monitoring loop: {what}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
