"""Progressive validation: every example is scored before the model learns from it.

The metric objects are River's own (``LogLoss``, ``ROCAUC``, ``Accuracy``), updated in
the same order as ``river.evaluate.progressive_val_score``, so the learner's numbers
equal River's in-memory evaluation. A curve of (events, event time, cumulative and
rolling log loss) is kept for plots and for comparing learners across a drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CurvePoint:
    """Where the model stood after ``n`` scored examples."""

    n: int
    ts: float
    log_loss: float
    rolling_log_loss: float


@dataclass
class ProgressiveMetrics:
    """Cumulative River metrics plus a rolling log loss curve.

    >>> m = ProgressiveMetrics(curve_every=2, rolling=2)
    >>> for y, p in [(True, 0.9), (False, 0.2), (True, 0.6), (False, 0.4)]:
    ...     m.update(y, {True: p, False: 1 - p}, ts=0.0)
    >>> m.summary()["n"], round(m.summary()["log_loss"], 4), len(m.curve)
    (4, 0.3375, 2)
    """

    curve_every: int = 1000
    rolling: int = 5000
    curve: list[CurvePoint] = field(default_factory=list)
    n: int = 0

    def __post_init__(self) -> None:
        from river import metrics, utils

        self.log_loss = metrics.LogLoss()
        self.auc = metrics.ROCAUC()
        self.accuracy = metrics.Accuracy()
        self.rolling_log_loss = utils.Rolling(metrics.LogLoss, window_size=self.rolling)
        self.positives = 0

    def update(self, y: Any, y_pred: dict[Any, float], ts: float) -> None:
        """Score one prediction made before the label was known; ``{}`` means no opinion."""
        if y_pred is None or y_pred == {}:
            return
        self.log_loss.update(y, y_pred)
        self.auc.update(y, y_pred)
        self.accuracy.update(y, max(y_pred, key=y_pred.get))
        self.rolling_log_loss.update(y, y_pred)
        self.n += 1
        self.positives += bool(y)
        if self.n % self.curve_every == 0:
            self.curve.append(
                CurvePoint(self.n, ts, self.log_loss.get(), self.rolling_log_loss.get())
            )

    def summary(self) -> dict[str, float]:
        """Plain numbers for the registry and `loopml stream status`."""
        return {
            "n": self.n,
            "log_loss": float(self.log_loss.get()),
            "roc_auc": float(self.auc.get()),
            "accuracy": float(self.accuracy.get()),
            "rolling_log_loss": float(self.rolling_log_loss.get()),
            "positive_rate": self.positives / self.n if self.n else 0.0,
        }
