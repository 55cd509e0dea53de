"""Progressive validation: every example is scored before the model learns from it.

The cumulative log loss is River's own ``metrics.LogLoss``, updated in the same order
as ``river.evaluate.progressive_val_score``, so the learner's number equals River's
in-memory evaluation. Around it: accuracy, a rolling log loss over the last ``rolling``
examples, and an exact ROC AUC over that window computed only when asked (River's
``ROCAUC`` bins probabilities into a few thresholds, useless for click rates of a few
percent). A curve of (examples, event time, cumulative and rolling log loss) is kept
for plots and for comparing learners across a drift.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

_EPS = 1e-15


@dataclass
class CurvePoint:
    """Where the model stood after ``n`` scored examples."""

    n: int
    ts: float
    log_loss: float
    rolling_log_loss: float


@dataclass
class ProgressiveMetrics:
    """Cumulative and rolling metrics of predictions made before the labels were known.

    >>> m = ProgressiveMetrics(curve_every=2, rolling=2)
    >>> for y, p in [(True, 0.9), (False, 0.2), (True, 0.6), (False, 0.4)]:
    ...     m.update(y, {True: p, False: 1 - p}, ts=0.0)
    >>> s = m.summary()
    >>> s["n"], round(s["log_loss"], 4), round(s["rolling_log_loss"], 4), s["roc_auc"], len(m.curve)
    (4, 0.3375, 0.5108, 1.0, 2)
    """

    curve_every: int = 1000
    rolling: int = 5000
    curve: list[CurvePoint] = field(default_factory=list)
    n: int = 0

    def __post_init__(self) -> None:
        from river import metrics

        self.log_loss = metrics.LogLoss()
        self.correct = 0
        self.positives = 0
        self._window: deque[tuple[bool, float, float]] = deque(maxlen=self.rolling)
        self._window_loss = 0.0

    def update(self, y: Any, y_pred: dict[Any, float], ts: float) -> None:
        """Score one prediction made before the label was known; ``{}`` means no opinion."""
        if not y_pred:
            return
        self.log_loss.update(y, y_pred)
        p = y_pred.get(True, 0.0)
        positive = bool(y)
        loss = -math.log(min(max(p if positive else 1.0 - p, _EPS), 1.0))
        window = self._window
        if len(window) == window.maxlen:
            self._window_loss -= window[0][2]
        window.append((positive, p, loss))
        self._window_loss += loss
        self.n += 1
        self.positives += positive
        self.correct += (p > 0.5) == positive
        if self.n % self.curve_every == 0:
            self.curve.append(CurvePoint(self.n, ts, self.log_loss.get(), self.rolling_value()))

    def rolling_value(self) -> float:
        return self._window_loss / len(self._window) if self._window else 0.0

    def window_auc(self) -> float | None:
        """Exact ROC AUC of the rolling window (None when it holds one class only)."""
        import numpy as np
        from scipy.stats import rankdata

        if not self._window:
            return None
        y = np.fromiter((w[0] for w in self._window), dtype=bool, count=len(self._window))
        p = np.fromiter((w[1] for w in self._window), dtype=float, count=len(self._window))
        n_pos = int(y.sum())
        n_neg = len(y) - n_pos
        if n_pos == 0 or n_neg == 0:
            return None
        ranks = rankdata(p)
        return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

    def summary(self) -> dict[str, float | None]:
        """Plain numbers for the registry and `loopml stream status`."""
        return {
            "n": self.n,
            "log_loss": float(self.log_loss.get()),
            "accuracy": self.correct / self.n if self.n else 0.0,
            "rolling_log_loss": self.rolling_value(),
            "roc_auc": self.window_auc(),
            "positive_rate": self.positives / self.n if self.n else 0.0,
        }
