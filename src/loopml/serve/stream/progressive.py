"""Progressive validation: every example is scored before the model learns from it.

The cumulative log loss is computed with the arithmetic of River's ``metrics.LogLoss``
(probability clipped to [1e-15, 1 - 1e-15], a running mean updated as
``river.stats.Mean`` does), in the same order as ``river.evaluate.progressive_val_score``,
so the learner's number equals River's in-memory evaluation; it is done inline over a
whole consumed batch because a metric object per event costs more than the model's
prediction. Around it: accuracy, a rolling log loss over the last ``rolling``
examples, and an exact ROC AUC over that window computed only when asked (River's
``ROCAUC`` bins probabilities into a few thresholds, useless for click rates of a few
percent). A curve of (examples, event time, cumulative and rolling log loss) is kept
for plots and for comparing learners across a drift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_LOW, _HIGH = 1e-15, 1 - 1e-15  # River's _clamp_proba bounds


@dataclass
class CurvePoint:
    """Where the model stood after ``n`` scored examples."""

    n: int
    ts: float
    log_loss: float
    rolling_log_loss: float


class RunningMean:
    """River's ``stats.Mean`` arithmetic (``n += 1; mean += (x - mean) / n``) as plain fields.

    >>> m = RunningMean()
    >>> for x in (1.0, 2.0, 6.0):
    ...     m.update(x)
    >>> m.get(), m.n
    (3.0, 3.0)
    """

    __slots__ = ("_mean", "n")

    def __init__(self, n: float = 0.0, mean: float = 0.0) -> None:
        self.n = n
        self._mean = mean

    def update(self, x: float) -> None:
        self.n += 1.0
        self._mean += (1.0 / self.n) * (x - self._mean)

    def get(self) -> float:
        return self._mean

    def __getstate__(self) -> tuple[float, float]:
        return self.n, self._mean

    def __setstate__(self, state: tuple[float, float]) -> None:
        self.n, self._mean = state

    def __repr__(self) -> str:
        return f"LogLoss: {self._mean:.6f}"


@dataclass
class ProgressiveMetrics:
    """Cumulative and rolling metrics of predictions made before the labels were known.

    An example is positive when ``y == True`` (River's binary metrics say the same).

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
        import numpy as np

        self.log_loss = RunningMean()
        self.correct = 0
        self.positives = 0
        # the last ``rolling`` scored examples, a ring written once per batch
        self._y = np.zeros(self.rolling, dtype=bool)
        self._p = np.zeros(self.rolling)
        self._loss = np.zeros(self.rolling)
        self._head = 0  # where the next example goes
        self._size = 0

    def update(self, y: Any, y_pred: dict[Any, float] | float | None, ts: float) -> None:
        """Score one prediction made before the label was known; ``{}``/None: no opinion."""
        if isinstance(y_pred, dict):
            y_pred = y_pred.get(True, 0.0) if y_pred else None
        if y_pred is not None:
            self.update_many([y], [y_pred], [ts])

    def update_many(self, ys: Sequence[Any], ps: Sequence[float], tss: Sequence[float]) -> None:
        """Score predictions ``ps`` (P(True) made on arrival) of labels ``ys``, in order.

        ``tss`` is the event time at which each was resolved (for the curve).
        """
        mean = self.log_loss
        count, avg = mean.n, mean._mean
        n0 = n = self.n
        correct, positives = self.correct, self.positives
        every = self.curve_every
        log = math.log
        flags: list[bool] = []
        losses: list[float] = []
        marks: list[tuple[int, float, float]] = []  # (index in batch, ts, cumulative)
        for y, p, ts in zip(ys, ps, tss, strict=True):
            positive = y == True  # noqa: E712 - River's pos_val test, not truthiness
            q = _HIGH if p > _HIGH else (_LOW if p < _LOW else p)
            loss = -log(q) if positive else -log(1 - q)
            count += 1.0
            avg += (1.0 / count) * (loss - avg)
            flags.append(positive)
            losses.append(loss)
            n += 1
            positives += positive
            correct += (p > 0.5) == positive
            if n % every == 0:
                marks.append((n - n0 - 1, ts, avg))
        mean.n, mean._mean = count, avg
        self.n, self.correct, self.positives = n, correct, positives
        if not losses:
            return
        if marks:
            for i, ts, cumulative in marks:
                rolling = self._rolling_through(losses, i)
                self.curve.append(CurvePoint(n0 + i + 1, ts, cumulative, rolling))
        self._push(flags, ps, losses)

    def _push(self, flags: list[bool], ps: Sequence[float], losses: list[float]) -> None:
        """Write a batch into the ring (only its last ``rolling`` examples matter)."""
        size = self.rolling
        k = len(losses)
        if k >= size:
            flags, ps, losses = flags[-size:], list(ps)[-size:], losses[-size:]
            k = size
        head = self._head
        first = min(k, size - head)
        for ring, values in ((self._y, flags), (self._p, ps), (self._loss, losses)):
            ring[head : head + first] = values[:first]
            if first < k:
                ring[: k - first] = values[first:k]
        self._head = (head + k) % size
        self._size = min(self._size + k, size)

    def _window(self, ring: Any) -> Any:
        """The ring's examples, oldest first."""
        import numpy as np

        if self._size < self.rolling:
            return ring[: self._size]
        return np.concatenate((ring[self._head :], ring[: self._head]))

    def _rolling_through(self, losses: list[float], i: int) -> float:
        """Rolling log loss right after the batch's ``i``-th example (for the curve)."""
        import numpy as np

        recent = losses[max(0, i + 1 - self.rolling) : i + 1]
        older = self.rolling - len(recent)
        if older > 0:
            previous = self._window(self._loss)[-older:] if self._size else np.zeros(0)
            recent = np.concatenate((previous, recent))
        return float(np.mean(recent))

    def rolling_value(self) -> float:
        return float(self._loss[: self._size].mean()) if self._size else 0.0

    def window_auc(self) -> float | None:
        """Exact ROC AUC of the rolling window (None when it holds one class only)."""
        cached = self.__dict__.get("_auc")
        if cached is not None and cached[0] == self.n:  # a snapshot and a status in a row
            return cached[1]
        auc = self._auc_now()
        self._auc = (self.n, auc)
        return auc

    def _auc_now(self) -> float | None:
        from scipy.stats import rankdata

        if not self._size:
            return None
        y = self._y[: self._size]
        n_pos = int(y.sum())
        n_neg = len(y) - n_pos
        if n_pos == 0 or n_neg == 0:
            return None
        ranks = rankdata(self._p[: self._size])
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

    def __setstate__(self, state: dict[str, Any]) -> None:
        # checkpoints written before the inline update hold River's LogLoss object and
        # the window as a deque of (positive, p, loss)
        ll = state.get("log_loss")
        if ll is not None and not isinstance(ll, RunningMean):
            state["log_loss"] = RunningMean(float(ll._mean.n), float(ll._mean.get()))
        old = state.pop("_window", None)
        state.pop("_window_loss", None)
        self.__dict__.update(state)
        if old is not None:
            import numpy as np

            self._y = np.zeros(self.rolling, dtype=bool)
            self._p = np.zeros(self.rolling)
            self._loss = np.zeros(self.rolling)
            self._head = self._size = 0
            if old:
                ys, ps, losses = zip(*old, strict=True)
                self._push(list(ys), list(ps), list(losses))
