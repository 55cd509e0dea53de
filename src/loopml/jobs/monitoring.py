"""Monitoring as scheduled jobs: drift checks and delayed-label performance.

Alerts raised by a check can name a job (``job = "retrain-ctr"`` in the rule); here
that job is queued on the scheduler, so drift detected at night is retrained by the
next tick, and a burst of alerts queues one run, not many.
"""

from __future__ import annotations

from typing import Any

from loopml.core.clock import to_utc, utcnow
from loopml.jobs.kinds import JobContext
from loopml.monitor.windows import parse_duration


def _monitor(ctx: JobContext) -> Any:
    from loopml.jobs.scheduler import Scheduler
    from loopml.monitor.service import Monitor

    scheduler = Scheduler(ctx.config)

    def trigger(job: str, reason: dict[str, Any]) -> str:
        run = scheduler.trigger(job, reason, trigger=f"alert:{reason.get('rule', '?')}")
        return f"queued run {run.id}"

    return Monitor(ctx.config, trigger=trigger)


def drift_check(ctx: JobContext) -> dict[str, Any]:
    """Params: ``model``; optional ``window`` (default ``[monitor] window``), ``end``."""
    monitor = _monitor(ctx)
    end = to_utc(ctx.param("end", None) or utcnow())
    size = parse_duration(ctx.param("window", monitor.settings.window))
    result = monitor.check_predictions(str(ctx.param("model")), end - size, end)
    return {
        "window_id": result.window_id,
        "version": result.version,
        "rows": result.drift.n_cur,
        "drifted": result.drift.drifted,
        "share": result.drift.share,
        "prediction_drift": bool(result.drift.prediction and result.drift.prediction.drifted),
        "quality_failed": len(result.quality.failed),
        "alerts": [f"{a.rule}: {a.message}" for a in result.alerts],
    }


def performance(ctx: JobContext) -> dict[str, Any]:
    """Params: ``model``; optional ``days`` back from ``end`` (default 7)."""
    monitor = _monitor(ctx)
    model = str(ctx.param("model"))
    end = to_utc(ctx.param("end", None) or utcnow())
    start = end - parse_duration(f"{float(ctx.param('days', 7))}d")
    rows = monitor.performance(model, start, end)
    alerts = monitor.evaluate_alerts(model)
    latest = {r["metric"]: r["value"] for r in rows if r["slice"] == "all"}
    return {
        "windows": len({(r["start"], r["end"]) for r in rows}),
        "latest": latest,
        "alerts": [f"{a.rule}: {a.message}" for a in alerts],
    }
