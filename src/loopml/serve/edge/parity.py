"""Parity between an exported graph and the model it came from: proven, not assumed.

A converter can silently change a model (float32 thresholds, a missed encoder option,
a category spelled differently), so every export predicts the same held-out rows with
both and records the largest difference in predicted probability and the difference
in the task's metric. The export fails when either exceeds its tolerance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from loopml.core.errors import ValidationError

#: Default bounds: probabilities within 1e-4, metric within 1e-3.
MAX_ABS_DIFF = 1e-4
MAX_METRIC_DIFF = 1e-3


@dataclass(frozen=True)
class Metric:
    """A task metric's value and which direction is better."""

    name: str
    value: float
    higher_is_better: bool = True

    def loss_against(self, reference: Metric) -> float:
        """How much worse than ``reference`` this is (positive = worse)."""
        diff = reference.value - self.value
        return diff if self.higher_is_better else -diff


def score(task: str, labels: Any, predictions: np.ndarray, classes: Any = None) -> Metric:
    """The metric loopml compares variants by: ROC-AUC (binary, multiclass OvR) or RMSE.

    >>> score("binary", [0, 1, 1, 0], np.array([0.1, 0.8, 0.6, 0.4])).value
    1.0
    """
    y = np.asarray(labels)
    if task == "regression":
        rmse = float(np.sqrt(np.mean((y.astype(float) - predictions) ** 2)))
        return Metric("rmse", rmse, higher_is_better=False)
    from sklearn.metrics import roc_auc_score

    if task == "binary":
        if len(np.unique(y)) < 2:
            raise ValidationError(
                "the evaluation labels hold a single class, so ROC-AUC is undefined; use a "
                "held-out sample with both classes",
                field="labels",
            )
        if classes is not None and len(classes) == 2 and y.dtype.kind not in "biu":
            y = (y == classes[1]).astype(int)
        return Metric("roc_auc", float(roc_auc_score(y, predictions)))
    return Metric(
        "roc_auc_ovr",
        float(roc_auc_score(y, predictions, multi_class="ovr", labels=list(classes or []))),
    )


@dataclass(frozen=True)
class ParityReport:
    """What the export measured; written to the bundle as ``parity.json``."""

    rows: int
    max_abs_diff: float
    mean_abs_diff: float
    rows_over_tolerance: int
    tolerance: float
    metric: str | None = None
    metric_native: float | None = None
    metric_onnx: float | None = None
    metric_diff: float | None = None
    metric_tolerance: float = MAX_METRIC_DIFF

    @property
    def passed(self) -> bool:
        ok = self.max_abs_diff <= self.tolerance
        if self.metric_diff is not None:
            ok = ok and abs(self.metric_diff) <= self.metric_tolerance
        return ok

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data

    def raise_if_failed(self, what: str) -> None:
        """Stop the export with the numbers and the ways out."""
        if self.passed:
            return
        parts = []
        if self.max_abs_diff > self.tolerance:
            parts.append(
                f"max |p_onnx - p_native| = {self.max_abs_diff:.3g} over {self.rows} rows "
                f"({self.rows_over_tolerance} above) exceeds the tolerance {self.tolerance:g}"
            )
        if self.metric_diff is not None and abs(self.metric_diff) > self.metric_tolerance:
            parts.append(
                f"{self.metric} differs by {self.metric_diff:+.4g} "
                f"({self.metric_native:.5f} native vs {self.metric_onnx:.5f} ONNX), above "
                f"{self.metric_tolerance:g}"
            )
        raise ValidationError(
            f"parity check failed for {what}: {'; '.join(parts)}. The ONNX graph does not "
            "reproduce the model; check the preprocessing steps for unsupported options, or "
            "raise the tolerance (--tolerance) if the difference is acceptable",
            field="parity",
            max_abs_diff=self.max_abs_diff,
        )


def compare(
    native: np.ndarray,
    exported: np.ndarray,
    task: str,
    labels: Any = None,
    classes: Any = None,
    tolerance: float = MAX_ABS_DIFF,
    metric_tolerance: float = MAX_METRIC_DIFF,
) -> ParityReport:
    """Compare two prediction arrays for the same rows.

    >>> r = compare(np.array([0.2, 0.9]), np.array([0.2, 0.90001]), "binary", [0, 1])
    >>> r.passed, r.metric, r.metric_diff
    (True, 'roc_auc', 0.0)
    """
    a = np.asarray(native, dtype=np.float64)
    b = np.asarray(exported, dtype=np.float64)
    if a.shape != b.shape:
        raise ValidationError(
            f"native predictions have shape {a.shape} but the ONNX graph returned {b.shape}; "
            "the export changed the output layout",
            field="parity",
        )
    diff = np.abs(a - b).reshape(len(a), -1).max(axis=1) if len(a) else np.zeros(0)
    if np.isnan(diff).any():
        raise ValidationError(
            "the ONNX graph returned NaN where the native model did not (or the reverse); "
            "a missing-value rule was lost in conversion",
            field="parity",
        )
    max_diff = float(diff.max()) if len(diff) else 0.0
    report: dict[str, Any] = {
        "rows": int(len(a)),
        "max_abs_diff": max_diff,
        "mean_abs_diff": float(diff.mean()) if len(diff) else 0.0,
        "rows_over_tolerance": int((diff > tolerance).sum()),
        "tolerance": tolerance,
        "metric_tolerance": metric_tolerance,
    }
    if labels is not None and len(a):
        m_native = score(task, labels, a, classes)
        m_onnx = score(task, labels, b, classes)
        report.update(
            metric=m_native.name,
            metric_native=m_native.value,
            metric_onnx=m_onnx.value,
            metric_diff=_round(m_onnx.value - m_native.value),
        )
    return ParityReport(**report)


def _round(value: float) -> float:
    """Drop float noise below 1e-12 so reports read 0.0 when nothing changed."""
    return 0.0 if math.isclose(value, 0.0, abs_tol=1e-12) else value
