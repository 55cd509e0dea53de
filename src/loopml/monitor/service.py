"""The monitor of a project: profiles, window checks, performance, alerts, one summary.

This is what the CLI, the jobs and the demo call. It reads the project's event log
(the ``prediction`` and ``feedback`` events loopml writes) and keeps its history in
the metadata database. Settings come from the ``[monitor]`` table of ``loopml.toml``::

    [monitor]
    window = "1d"            # default window size
    label_metric = "click"   # feedback metric that labels predictions
    label_horizon = "1d"     # wait this long before "no feedback" counts as negative
    min_labels = 100         # below this, a window reports rates but no AUC/log loss
    slices = ["segment"]     # performance per value of these inputs
    metrics_url = "http://127.0.0.1:8080/metrics"

    [monitor.drift]          # see loopml.monitor.drift.DriftConfig
    [monitor.quality]        # see loopml.monitor.quality.QualityConfig
    [[monitor.alerts]]       # see loopml.monitor.alerts.AlertRule
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from loopml.core.clock import to_utc, utcnow
from loopml.core.config import ProjectConfig
from loopml.core.errors import ValidationError, did_you_mean
from loopml.monitor.alerts import Alert, AlertEngine, Trigger, rules_from_config
from loopml.monitor.drift import DriftConfig, DriftReport, compare
from loopml.monitor.profile import ReferenceProfile, build_profile
from loopml.monitor.quality import QualityConfig, QualityReport, check_quality
from loopml.monitor.store import MonitorStore
from loopml.monitor.summary import summarise
from loopml.monitor.windows import OUTPUT, parse_duration, prediction_frame

_KEYS = (
    "alerts",
    "drift",
    "label_horizon",
    "label_metric",
    "metrics_url",
    "min_labels",
    "quality",
    "slices",
    "window",
)


@dataclass(frozen=True)
class MonitorSettings:
    """The validated ``[monitor]`` table."""

    window: str = "1d"
    label_metric: str = "click"
    label_horizon: str = "1d"
    min_labels: int = 100
    slices: tuple[str, ...] = ()
    metrics_url: str | None = None
    drift: DriftConfig = field(default_factory=DriftConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)

    @classmethod
    def from_config(cls, cfg: ProjectConfig) -> MonitorSettings:
        section = cfg.section("monitor")
        for key in section:
            if key not in _KEYS:
                raise ValidationError(
                    f"monitor.{key}: unknown key; {did_you_mean(key, list(_KEYS))}",
                    field=f"monitor.{key}",
                )
        parse_duration(section.get("window", "1d"))
        parse_duration(section.get("label_horizon", "1d"))
        return cls(
            window=str(section.get("window", "1d")),
            label_metric=str(section.get("label_metric", "click")),
            label_horizon=str(section.get("label_horizon", "1d")),
            min_labels=int(section.get("min_labels", 100)),
            slices=tuple(section.get("slices", ())),
            metrics_url=section.get("metrics_url"),
            drift=DriftConfig.from_dict(dict(section.get("drift", {}))),
            quality=QualityConfig.from_dict(dict(section.get("quality", {}))),
        )


@dataclass
class WindowResult:
    """One checked window: drift, quality and the id it was stored under."""

    model: str
    version: int
    start: dt.datetime
    end: dt.datetime
    drift: DriftReport
    quality: QualityReport
    window_id: int
    alerts: list[Alert] = field(default_factory=list)

    def __str__(self) -> str:
        span = f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M}"
        head = f"{self.model} v{self.version}  {span}"
        fired = "".join(f"\nALERT {a.rule}: {a.message}" for a in self.alerts)
        return f"{head}  ({self.drift.n_cur:,} rows)\n{self.drift}\n{self.quality}{fired}"


class Monitor:
    """Monitoring for every model of one project.

    Parameters
    ----------
    config: the project.
    trigger: called as ``trigger(job_name, reason)`` when an alert rule names a job
        (the scheduler's ``trigger``); without it such alerts are only recorded.
    """

    def __init__(self, config: ProjectConfig, *, trigger: Trigger | None = None) -> None:
        self.config = config
        self.settings = MonitorSettings.from_config(config)
        self.store = MonitorStore.from_config(config)
        self.rules = rules_from_config(config.section("monitor"))
        self.trigger = trigger
        self._events = None

    @property
    def events(self) -> Any:
        if self._events is None:
            from loopml.logs.eventlog import EventLog

            self._events = EventLog.from_config(self.config)
        return self._events

    # -- reference profiles ---------------------------------------------------------------
    def profile(
        self,
        model: str,
        version: int,
        reference: Any,
        *,
        output: str | None = OUTPUT,
        categorical: tuple[str, ...] = (),
        find_trends: bool = True,
    ) -> ReferenceProfile:
        """Profile the reference rows of a model version once and store the profile.

        ``reference`` holds the model's input features (its training data by default)
        and, for prediction drift, the model's output on them in column ``output``.
        With ``find_trends`` (rows in time order), columns that drift inside the
        reference itself are recorded as trends: reported, not alerted on.
        """
        from loopml.monitor.columns import column_names
        from loopml.monitor.drift import trend_columns

        out = output if output is not None and output in column_names(reference) else None
        trends = (
            trend_columns(reference, self.settings.drift, categorical, out) if find_trends else []
        )
        profile = build_profile(
            reference,
            categorical=categorical,
            output=out,
            meta={"model": model, "version": int(version), "unstable": trends},
        )
        self.store.save_profile(model, version, profile)
        return profile

    # -- drift ------------------------------------------------------------------------------
    def check(
        self,
        model: str,
        version: int,
        frame: Any,
        start: dt.datetime | str,
        end: dt.datetime | str,
        *,
        source: str = "prediction",
        alerts: bool = True,
        profile: ReferenceProfile | None = None,
    ) -> WindowResult:
        """Test one window's rows against the version's profile; store and alert."""
        profile = profile or self.store.load_profile(model, version)
        summary = summarise(profile, frame)
        report = compare(profile, summary, self.settings.drift)
        report.meta.update(model=model, version=int(version), source=source)
        quality = check_quality(profile, summary, self.settings.quality)
        window_id = self.store.record_window(
            model, version, start, end, report, quality, source=source
        )
        result = WindowResult(
            model, int(version), to_utc(start), to_utc(end), report, quality, window_id
        )
        if alerts:
            result.alerts = self.evaluate_alerts(model)
        return result

    def check_predictions(
        self,
        model: str,
        start: dt.datetime | str | None = None,
        end: dt.datetime | str | None = None,
        *,
        version: int | None = None,
        alerts: bool = True,
    ) -> WindowResult:
        """Drift of the logged predictions of ``model`` in ``[start, end)`` (default: the
        last ``window``), against the profile of the version that served them."""
        end_ts = to_utc(end) if end is not None else utcnow()
        start_ts = (
            to_utc(start) if start is not None else end_ts - parse_duration(self.settings.window)
        )
        frame = prediction_frame(self.events, model, start_ts, end_ts, version)
        if version is None:
            if len(frame) == 0:
                raise ValidationError(
                    f"no logged predictions of {model!r} between {start_ts:%Y-%m-%d %H:%M} and "
                    f"{end_ts:%Y-%m-%d %H:%M}; widen the window or pass --version",
                    field="window",
                )
            version = int(frame["version"].mode().iloc[0])
            frame = frame[frame["version"] == version]
        return self.check(model, version, frame, start_ts, end_ts, alerts=alerts)

    # -- performance --------------------------------------------------------------------------
    def performance(
        self,
        model: str,
        start: dt.datetime | str,
        end: dt.datetime | str,
        *,
        size: str | None = None,
        slices: tuple[str, ...] | None = None,
        now: dt.datetime | str | None = None,
        record: bool = True,
    ) -> list[dict[str, Any]]:
        """Delayed-label metrics per window (and slice) of ``model``'s logged predictions."""
        from loopml.monitor.performance import labelled_predictions, performance_windows

        s = self.settings
        slices = tuple(s.slices if slices is None else slices)
        frame = labelled_predictions(
            self.events,
            model,
            start,
            end,
            metric=s.label_metric,
            horizon=s.label_horizon,
            now=now,
            slices=slices,
        )
        rows = performance_windows(frame, start, end, size or s.window, slices, s.min_labels)
        if record:
            by_window: dict[tuple, list[dict[str, Any]]] = {}
            for row in rows:
                by_window.setdefault((row["start"], row["end"]), []).append(row)
            version = int(frame["version"].mode().iloc[0]) if len(frame) else None
            for (lo, hi), values in by_window.items():
                if any(v["metric"] == "n_labelled" and v["value"] > 0 for v in values):
                    self.store.record_performance(model, version, lo, hi, values)
        return rows

    # -- alerts ---------------------------------------------------------------------------------
    def evaluate_alerts(self, model: str, ops: dict[str, float] | None = None) -> list[Alert]:
        engine = AlertEngine(self.store, self.rules, trigger=self.trigger)
        return engine.evaluate(model, ops)

    # -- summary --------------------------------------------------------------------------------
    def summary(
        self, model: str | None = None, metrics_url: str | None = None, last: int = 7
    ) -> dict[str, Any]:
        """Ops (from ``/metrics``), the last drift windows, performance and recent alerts."""
        from loopml.monitor.ops import scrape

        out: dict[str, Any] = {}
        url = metrics_url or self.settings.metrics_url
        if url:
            try:
                out["ops"] = scrape(url).to_dict()
            except Exception as exc:  # noqa: BLE001 - the summary still shows the rest
                out["ops_error"] = str(exc)
        from loopml.monitor.ops import prediction_log_ops

        models = [model] if model else sorted({w["model"] for w in self._recent_windows()})
        end = utcnow()
        for name in models:
            out.setdefault("models", {})[name] = {
                "serving": prediction_log_ops(
                    self.events, name, end - parse_duration(self.settings.window), end
                ),
                "drift": [
                    {
                        k: w[k]
                        for k in (
                            "version",
                            "start",
                            "end",
                            "n_rows",
                            "n_drifted",
                            "share",
                            "dataset_drift",
                            "prediction_drift",
                            "quality_failed",
                        )
                    }
                    for w in self.store.windows(name, limit=last)
                ],
                "performance": [
                    {k: r[k] for k in ("version", "start", "end", "metric", "value", "n")}
                    for r in self.store.performance_history(name)
                    if r["metric"] in ("auc", "label_rate", "logloss", "calibration")
                ][-4 * last :],
                "alerts": [
                    {k: a[k] for k in ("rule", "fired_at", "severity", "message", "job")}
                    for a in self.store.alerts(name, limit=last)
                ],
            }
        return out

    def _recent_windows(self) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        from loopml.monitor.store import windows

        with self.store.engine.connect() as conn:
            return [
                {"model": m} for m in conn.execute(sa.select(windows.c.model).distinct()).scalars()
            ]
