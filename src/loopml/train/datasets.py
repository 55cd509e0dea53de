"""Building training sets: time-ordered splits, negative downsampling, class weights.

Time data is never split at random (seed 002): the model is validated on days after
the ones it learned from, as it will be used. Downsampling negatives makes training
on rare clicks cheap; :func:`correct_probability` undoes its bias so the model's
probabilities stay calibrated on the real traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

#: Column :func:`negative_downsample` adds: the inverse sampling probability of each row.
WEIGHT_COLUMN = "weight"


@dataclass(frozen=True)
class Splits:
    """Train, validation and test frames, in time order, plus the time range of each.

    ``source`` keeps what the frame's builder recorded about it (``frame.attrs["loopml"]``:
    feature view versions, label window), so lineage survives the split.
    """

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    ts_col: str = "ts"
    source: dict[str, Any] = field(default_factory=dict)

    def ranges(self) -> dict[str, dict[str, str | None]]:
        """``{"train": {"start": iso, "end": iso}, ...}`` for lineage records."""
        out: dict[str, dict[str, str | None]] = {}
        for part in ("train", "valid", "test"):
            frame = getattr(self, part)
            if self.ts_col in frame.columns and len(frame):
                ts = frame[self.ts_col]
                out[part] = {"start": ts.min().isoformat(), "end": ts.max().isoformat()}
            else:
                out[part] = {"start": None, "end": None}
        return out

    def __repr__(self) -> str:
        sizes = ", ".join(f"{p}={len(getattr(self, p))}" for p in ("train", "valid", "test"))
        return f"Splits({sizes})"


def time_split(
    frame: pd.DataFrame,
    ts_col: str = "ts",
    valid_days: float = 1,
    test_days: float = 1,
) -> Splits:
    """Split by time: the last ``test_days`` calendar days are test, the ``valid_days``
    before them validation, everything earlier training.

    Day boundaries are midnight UTC of the last timestamp's day, so a daily pipeline
    gets whole days in each part.

    >>> import pandas as pd
    >>> days = pd.date_range("2026-01-01", periods=10, freq="D", tz="UTC")
    >>> s = time_split(pd.DataFrame({"ts": days, "y": range(10)}), valid_days=2, test_days=1)
    >>> len(s.train), len(s.valid), len(s.test), str(s.test.ts.min().date())
    (7, 2, 1, '2026-01-10')
    """
    import pandas as pd

    if ts_col not in frame.columns:
        raise ValidationError(
            f"time_split needs a timestamp column {ts_col!r}; the frame has "
            f"{list(frame.columns)[:20]}. Pass ts_col=...",
            field="ts_col",
        )
    for name, value in (("valid_days", valid_days), ("test_days", test_days)):
        if not isinstance(value, int | float) or value < 0:
            raise ValidationError(f"{name} must be a number >= 0, got {value!r}", field=name)
    ts = pd.to_datetime(frame[ts_col], utc=True)
    if ts.isna().any():
        raise ValidationError(
            f"column {ts_col!r} has {int(ts.isna().sum())} missing timestamps; drop or fill "
            "them before splitting",
            field=ts_col,
        )
    if len(frame) == 0:
        raise ValidationError("time_split got an empty frame", field="frame")
    end_of_last_day = ts.max().floor("D") + pd.Timedelta(days=1)
    test_start = end_of_last_day - pd.Timedelta(days=test_days)
    valid_start = test_start - pd.Timedelta(days=valid_days)
    ordered = frame.assign(**{ts_col: ts}).sort_values(ts_col, kind="stable")
    ots = ordered[ts_col]
    train = ordered[ots < valid_start].reset_index(drop=True)
    valid = ordered[(ots >= valid_start) & (ots < test_start)].reset_index(drop=True)
    test = ordered[ots >= test_start].reset_index(drop=True)
    if len(train) == 0:
        raise ValidationError(
            f"no rows before {valid_start.isoformat()} are left for training (data spans "
            f"{ts.min().isoformat()} to {ts.max().isoformat()}); lower valid_days/test_days",
            field="valid_days",
        )
    source = dict(frame.attrs.get("loopml", {}) or {})
    return Splits(train, valid, test, ts_col, source)


def negative_downsample(
    frame: pd.DataFrame, label: str, rate: float, seed: int = 0
) -> pd.DataFrame:
    """Keep every positive and a ``rate`` fraction of negatives, chosen with ``seed``.

    The result has a ``weight`` column (1 for positives, ``1/rate`` for negatives) for
    unbiased weighted metrics, and ``frame.attrs["downsample_rate"] = rate``. A model
    trained on it predicts too high; pass its output through
    :func:`correct_probability` with the same rate.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"y": [1] * 10 + [0] * 1000})
    >>> d = negative_downsample(f, "y", 0.1, seed=1)
    >>> int(d.y.sum()), 80 < len(d) - 10 < 120, d.attrs["downsample_rate"]
    (10, True, 0.1)
    """
    if label not in frame.columns:
        raise ValidationError(
            f"label column {label!r} not in frame; it has {list(frame.columns)[:20]}",
            field="label",
        )
    if not isinstance(rate, int | float) or not 0 < rate <= 1:
        raise ValidationError(
            f"downsample rate must be in (0, 1], got {rate!r}; 0.1 keeps 10% of negatives",
            field="rate",
        )
    y = frame[label].to_numpy()
    values = set(np.unique(y[~_isnan(y)]).tolist())
    if not values <= {0, 1}:
        raise ValidationError(
            f"negative downsampling needs a 0/1 label; {label!r} has values "
            f"{sorted(values, key=str)[:10]}",
            field="label",
        )
    rng = np.random.default_rng(seed)
    positive = y == 1
    keep = positive | (rng.random(len(frame)) < rate)
    out = frame[keep].copy()
    out[WEIGHT_COLUMN] = np.where(positive[keep], 1.0, 1.0 / rate)
    out = out.reset_index(drop=True)
    out.attrs["downsample_rate"] = float(rate)
    return out


def correct_probability(p: Any, rate: float) -> Any:
    """Undo negative downsampling: ``p / (p + (1 - p) / rate)``.

    >>> round(float(correct_probability(0.5, 0.1)), 4)
    0.0909
    """
    if not 0 < rate <= 1:
        raise ValidationError(f"rate must be in (0, 1], got {rate!r}", field="rate")
    p = np.asarray(p, dtype=np.float64)
    return p / (p + (1.0 - p) / rate)


def class_weights(y: Any) -> dict[Any, float]:
    """Balanced class weights ``n / (k * count)``: the loss-weighting cure for imbalance.

    >>> class_weights([0, 0, 0, 1])
    {0: 0.6666666666666666, 1: 2.0}
    """
    arr = np.asarray(y)
    if arr.size == 0:
        raise ValidationError("class_weights got an empty label array", field="y")
    classes, counts = np.unique(arr, return_counts=True)
    n, k = arr.size, len(classes)
    return {_plain(c): float(n / (k * m)) for c, m in zip(classes, counts, strict=True)}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _isnan(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    return np.zeros(len(values), dtype=bool)
