"""Model performance once labels arrive: predictions joined to their delayed feedback.

A click comes minutes after the prediction, a conversion days later. A prediction is
*matured* once its label horizon has passed: only then is "no feedback" a negative.
Counting immature predictions as negatives would make every recent window look worse
than it is, so they are reported as pending instead. Each window reports the business
metric (the label rate, e.g. click rate) beside the ML metrics (AUC, log loss,
calibration), overall and per slice (seed 001: business metrics decide).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.clock import to_utc, utcnow
from loopml.core.errors import ValidationError
from loopml.monitor.windows import parse_duration, windows

if TYPE_CHECKING:
    import pandas as pd

    from loopml.logs.eventlog import EventLog

_SLICE_COLUMNS = ("version", "arm")


def labelled_predictions(
    events: EventLog,
    model: str,
    start: dt.datetime | str,
    end: dt.datetime | str,
    *,
    metric: str = "click",
    horizon: str | dt.timedelta = "1d",
    now: dt.datetime | str | None = None,
    slices: tuple[str, ...] | list[str] = (),
) -> pd.DataFrame:
    """Predictions in ``[start, end)`` with ``label`` (1/0, NaN while pending) and slices.

    ``slices`` name prediction columns (``version``, ``arm``) or input features, read
    from the logged ``inputs`` JSON.
    """
    horizon_td = parse_duration(horizon)
    now_ts = to_utc(now) if now is not None else utcnow()
    select = ["p.request_id", "p.ts", "p.version", "p.output"]
    for name in slices:
        if not name.replace("_", "").isalnum():
            raise ValidationError(f"slice {name!r} must be a column name", field="slices")
        if name in _SLICE_COLUMNS:
            select.append(f'CAST(p.{name} AS VARCHAR) AS "{name}"')
        else:
            select.append(f"json_extract_string(p.inputs, '$.{name}') AS \"{name}\"")
    query = f"""
        SELECT {", ".join(select)},
               CASE WHEN p.ts + to_microseconds(?) > ? THEN NULL
                    WHEN f.first_ts <= p.ts + to_microseconds(?) THEN 1.0
                    ELSE 0.0 END AS label
        FROM prediction p
        LEFT JOIN (
            SELECT request_id, min(ts) AS first_ts FROM feedback
            WHERE metric = ? AND value > 0 AND ts <= ? GROUP BY request_id
        ) f ON f.request_id = p.request_id
        WHERE p.model = ? AND p.ts >= ? AND p.ts < ? AND p.output IS NOT NULL
        ORDER BY p.ts
    """
    micros = int(horizon_td.total_seconds() * 1_000_000)
    params = [micros, now_ts, micros, metric, now_ts, model, to_utc(start), to_utc(end)]
    from loopml.logs.eventlog import to_frame

    con = events.connect(("prediction", "feedback"))
    try:
        return to_frame(con.execute(query, params))
    finally:
        con.close()


def scores(labels: np.ndarray, predicted: np.ndarray, min_labels: int = 100) -> dict[str, float]:
    """Business and ML metrics of matured predictions (AUC etc. need ``min_labels``).

    >>> out = scores(np.array([0, 0, 1, 1.0]), np.array([0.1, 0.4, 0.35, 0.8]), min_labels=1)
    >>> out["auc"], out["label_rate"]
    (0.75, 0.5)
    """
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(predicted, dtype=np.float64), 1e-15, 1 - 1e-15)
    n = len(y)
    out: dict[str, float] = {"n_labelled": float(n)}
    if n == 0:
        return out
    rate = float(y.mean())
    out.update(label_rate=rate, mean_prediction=float(p.mean()))
    out["calibration"] = float(p.mean() / rate) if rate > 0 else math.nan
    if n < min_labels:
        return out
    out["logloss"] = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    positives = int(y.sum())
    if 0 < positives < n:
        out["auc"] = auc(y, p)
    return out


def auc(labels: np.ndarray, predicted: np.ndarray) -> float:
    """ROC-AUC by the rank-sum formula (ties share their rank).

    >>> auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8]))
    1.0
    """
    from scipy.stats import rankdata

    y = np.asarray(labels) > 0
    ranks = rankdata(predicted)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def performance_windows(
    frame: pd.DataFrame,
    start: dt.datetime | str,
    end: dt.datetime | str,
    size: str | dt.timedelta = "1d",
    slices: tuple[str, ...] | list[str] = (),
    min_labels: int = 100,
) -> list[dict[str, Any]]:
    """Rows ``{start, end, slice, metric, value, n}`` per window and slice."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    ts = pd.to_datetime(frame["ts"], utc=True) if len(frame) else pd.Series([], dtype=object)
    for lo, hi in windows(start, end, size):
        part = frame[(ts >= pd.Timestamp(lo)) & (ts < pd.Timestamp(hi))] if len(frame) else frame
        groups: list[tuple[str, Any]] = [("all", part)]
        for name in slices:
            if len(part):
                groups += [(f"{name}={value}", g) for value, g in part.groupby(name, dropna=False)]
        for label, group in groups:
            matured = group[group["label"].notna()] if len(group) else group
            values = scores(
                matured["label"].to_numpy() if len(matured) else np.array([]),
                matured["output"].to_numpy() if len(matured) else np.array([]),
                min_labels,
            )
            values["n_predictions"] = float(len(group))
            values["n_pending"] = float(len(group) - len(matured))
            rows += [
                {
                    "start": lo,
                    "end": hi,
                    "slice": label,
                    "metric": metric,
                    "value": value,
                    "n": int(len(matured)),
                }
                for metric, value in values.items()
            ]
    return rows
