"""What ``loopml monitor ...`` and ``loopml alerts ls`` do, as plain functions.

The CLI parses arguments and prints what these return; nothing here reads argv or
writes to the terminal, so the same calls work from Python and from the web UI.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from loopml.core.clock import to_utc, utcnow
from loopml.core.config import ProjectConfig
from loopml.monitor.service import Monitor, WindowResult
from loopml.monitor.windows import parse_duration


def drift(
    config: ProjectConfig,
    model: str,
    *,
    window: str | None = None,
    end: str | dt.datetime | None = None,
    version: int | None = None,
    plot: str | Path | None = None,
) -> WindowResult:
    """``loopml monitor drift MODEL``: check the last window of logged predictions.

    Stores the window, evaluates alert rules, and with ``plot`` saves the drift history
    of the model as a PNG there.
    """
    monitor = Monitor(config)
    stop = to_utc(end) if end is not None else utcnow()
    size = parse_duration(window or monitor.settings.window)
    result = monitor.check_predictions(model, stop - size, stop, version=version)
    if plot is not None:
        from loopml.monitor.plots import drift_figure

        drift_figure(monitor.store.column_history(model), f"{model}: drift per window").savefig(
            plot, dpi=100
        )
    return result


def performance(
    config: ProjectConfig,
    model: str,
    *,
    days: float = 7.0,
    end: str | dt.datetime | None = None,
    slices: tuple[str, ...] | None = None,
) -> Any:
    """``loopml monitor performance MODEL``: delayed-label metrics per window, as a table
    (rows: window start and slice; columns: auc, logloss, label_rate, calibration, ...)."""
    monitor = Monitor(config)
    stop = to_utc(end) if end is not None else utcnow()
    start = stop - dt.timedelta(days=float(days))
    rows = monitor.performance(model, start, stop, slices=slices)
    import pandas as pd

    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    return frame.pivot_table(index=["start", "slice"], columns="metric", values="value")


def summary(config: ProjectConfig, model: str | None = None, metrics_url: str | None = None) -> str:
    """``loopml monitor summary [MODEL] [--metrics-url URL]``: ops, drift, performance
    and alerts as text a person reads."""
    from loopml.monitor.ops import OpsSummary

    data = Monitor(config).summary(model, metrics_url)
    lines: list[str] = []
    if "ops" in data:
        lines += ["== serving (from /metrics)", str(OpsSummary(**data["ops"]))]
    elif "ops_error" in data:
        lines += ["== serving", f"unavailable: {data['ops_error']}"]
    for name, info in (data.get("models") or {}).items():
        lines.append(f"== {name}")
        for version, ops in (info.get("serving") or {}).items():
            lat = ", ".join(
                f"{k.split('_')[1]} {v:.1f} ms" for k, v in ops.items() if k.startswith("latency")
            )
            lines.append(
                f"  served {version} (last window): {ops['rows']:,} rows, "
                f"{ops['requests']:,} requests; latency {lat or 'n/a'}"
            )
        for w in info["drift"]:
            pred = (
                ""
                if w["prediction_drift"] is None
                else f", prediction drift {w['prediction_drift']}"
            )
            lines.append(
                f"  drift {w['end']:%Y-%m-%d %H:%M} v{w['version']}: {w['n_drifted']} drifted "
                f"(share {w['share']:.2f}){pred}, quality failures {w['quality_failed']}, "
                f"{w['n_rows']:,} rows"
            )
        latest: dict[str, float] = {}
        for row in info["performance"]:
            latest[row["metric"]] = row["value"]
        if latest:
            lines.append(
                "  performance (latest window): "
                + ", ".join(f"{k} {v:.4f}" for k, v in sorted(latest.items()) if v is not None)
            )
        for a in info["alerts"]:
            lines.append(f"  ALERT {a['fired_at']:%Y-%m-%d %H:%M} {a['rule']}: {a['message']}")
    return "\n".join(lines) or "nothing monitored yet: run `loopml monitor drift MODEL`"


def alerts(config: ProjectConfig, model: str | None = None, limit: int = 50) -> list[dict]:
    """``loopml alerts ls [MODEL]``: recorded alerts, newest first (rule, when, what, the
    webhook status and the job it triggered)."""
    return Monitor(config).store.alerts(model, limit=limit)
