"""Offline evaluation: the ML metrics of seed 001/002, by task, and by slice.

Binary models are judged on ranking (ROC AUC, PR AUC), on probability quality (log
loss, normalised entropy, Brier) and on calibration (ECE), because a click model's
probabilities feed bids and rankings directly. Inputs that make a metric meaningless
(a single class, NaN scores, wrong shapes) are errors that say so, never a silent NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

TASKS = ("binary", "multiclass", "multilabel", "regression")
_EPS = 1e-15


def evaluate(task: str, y_true: Any, y_score: Any, sample_weight: Any = None) -> dict[str, float]:
    """Metrics for ``task`` as ``{name: float}``.

    - binary (``y_score`` = P(positive)): roc_auc, pr_auc, log_loss, normalized_entropy
      (log loss / entropy of the base rate; < 1 beats predicting the base rate), ece,
      brier, base_rate, mean_score, n
    - multiclass (``y_score`` = ``(n, k)`` probabilities, labels ``0..k-1``): accuracy,
      macro_f1, cross_entropy, n
    - multilabel (``(n, k)`` 0/1 labels and probabilities): micro_f1, macro_f1,
      hamming_loss, log_loss, n
    - regression: rmse, mae, r2, n

    >>> evaluate("binary", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])["roc_auc"]
    0.75
    >>> evaluate("regression", [1.0, 2.0], [1.5, 2.0])["mae"]
    0.25
    """
    if task not in TASKS:
        raise ValidationError(f"unknown task {task!r}; use one of {TASKS}", field="task")
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if len(y_true) != len(y_score) or (weight is not None and len(weight) != len(y_true)):
        raise ValidationError(
            f"y_true has {len(y_true)} rows, y_score {len(y_score)}"
            + ("" if weight is None else f", sample_weight {len(weight)}")
            + "; they must match",
            field="y_score",
        )
    if len(y_true) == 0:
        raise ValidationError("cannot evaluate on zero rows", field="y_true")
    if not np.isfinite(y_score).all():
        raise ValidationError(
            f"y_score has {int((~np.isfinite(y_score)).sum())} NaN/infinite values; the model "
            "produced invalid predictions",
            field="y_score",
        )
    if task == "binary":
        return _binary(y_true, y_score, weight)
    if task == "multiclass":
        return _multiclass(y_true, y_score, weight)
    if task == "multilabel":
        return _multilabel(y_true, y_score, weight)
    return _regression(y_true.astype(np.float64), y_score, weight)


def _binary(y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    if p.ndim != 1:
        raise ValidationError(
            f"binary y_score must be P(positive) per row, shape (n,), got {p.shape}",
            field="y_score",
        )
    y = _binary_labels(y)
    if ((p < 0) | (p > 1)).any():
        raise ValidationError(
            "binary y_score must be probabilities in [0, 1]; got values from "
            f"{p.min():.3g} to {p.max():.3g}. Pass predict_proba(...)[:, 1], not raw scores",
            field="y_score",
        )
    if len(np.unique(y)) < 2:
        raise ValidationError(
            f"y_true has only class {int(y[0])} in {len(y)} rows; ROC/PR AUC need both classes. "
            "Evaluate on a larger or longer window",
            field="y_true",
        )
    ww = np.ones(len(y)) if w is None else w
    base = float(np.average(y, weights=ww))
    ll = log_loss(y, p, ww)
    entropy = -(base * np.log(base) + (1 - base) * np.log(1 - base))
    return {
        "roc_auc": float(roc_auc_score(y, p, sample_weight=w)),
        "pr_auc": float(average_precision_score(y, p, sample_weight=w)),
        "log_loss": ll,
        "normalized_entropy": float(ll / entropy),
        "ece": expected_calibration_error(y, p, sample_weight=w),
        "brier": float(brier_score_loss(y, p, sample_weight=w)),
        "base_rate": base,
        "mean_score": float(np.average(p, weights=ww)),
        "n": float(len(y)),
    }


def log_loss(y: np.ndarray, p: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Binary cross-entropy with probabilities clipped away from 0 and 1."""
    p = np.clip(p, _EPS, 1 - _EPS)
    losses = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return float(np.average(losses, weights=weight))


def _binary_labels(y: np.ndarray) -> np.ndarray:
    values = np.unique(y)
    if not set(values.tolist()) <= {0, 1}:
        raise ValidationError(
            f"binary y_true must be 0/1, got values {values[:10].tolist()}; map the positive "
            "class to 1",
            field="y_true",
        )
    return y.astype(np.float64)


def _multiclass(y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.metrics import log_loss as sk_log_loss

    if p.ndim != 2:
        raise ValidationError(
            f"multiclass y_score must be (n, k) class probabilities, got shape {p.shape}",
            field="y_score",
        )
    k = p.shape[1]
    labels = y.astype(np.int64) if y.dtype.kind in "iuf" else None
    if labels is None or labels.min() < 0 or labels.max() >= k:
        raise ValidationError(
            f"multiclass y_true must be class indices 0..{k - 1} matching y_score's columns; "
            f"got values {np.unique(y)[:10].tolist()}",
            field="y_true",
        )
    pred = p.argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(labels, pred, sample_weight=w)),
        "macro_f1": float(
            f1_score(
                labels,
                pred,
                average="macro",
                labels=list(range(k)),
                sample_weight=w,
                zero_division=0,
            )
        ),
        "cross_entropy": float(
            sk_log_loss(labels, np.clip(p, _EPS, 1), labels=list(range(k)), sample_weight=w)
        ),
        "n": float(len(labels)),
    }


def _multilabel(y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> dict[str, float]:
    from sklearn.metrics import f1_score, hamming_loss

    if y.shape != p.shape or p.ndim != 2:
        raise ValidationError(
            f"multilabel y_true and y_score must both be (n, k); got {y.shape} and {p.shape}",
            field="y_score",
        )
    y = y.astype(np.float64)
    pred = (p >= 0.5).astype(np.int64)
    per_row = np.array([log_loss(y[:, j], p[:, j], w) for j in range(p.shape[1])])
    return {
        "micro_f1": float(f1_score(y, pred, average="micro", sample_weight=w, zero_division=0)),
        "macro_f1": float(f1_score(y, pred, average="macro", sample_weight=w, zero_division=0)),
        "hamming_loss": float(hamming_loss(y, pred, sample_weight=w)),
        "log_loss": float(per_row.mean()),
        "n": float(len(y)),
    }


def _regression(y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> dict[str, float]:
    if p.ndim != 1:
        raise ValidationError(f"regression y_score must be (n,), got {p.shape}", field="y_score")
    err = p - y
    ww = np.ones(len(y)) if w is None else w
    mean = np.average(y, weights=ww)
    total = np.average((y - mean) ** 2, weights=ww)
    mse = np.average(err**2, weights=ww)
    return {
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.average(np.abs(err), weights=ww)),
        "r2": float(1 - mse / total) if total > 0 else float("nan"),
        "n": float(len(y)),
    }


# -- calibration ---------------------------------------------------------------------------
def calibration_curve(
    y_true: Any, y_score: Any, bins: int = 10, sample_weight: Any = None
) -> pd.DataFrame:
    """Reliability diagram data: per equal-width score bin, mean prediction vs observed rate.

    >>> c = calibration_curve([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], bins=2)
    >>> c[["mean_score", "fraction_positive", "count"]].values.tolist()
    [[0.15000000000000002, 0.0, 2.0], [0.8500000000000001, 1.0, 2.0]]
    """
    import pandas as pd

    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_score, dtype=np.float64)
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if bins < 1:
        raise ValidationError(f"bins must be >= 1, got {bins}", field="bins")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        weight = w[mask].sum()
        if weight == 0:
            continue
        rows.append(
            {
                "bin_low": edges[b],
                "bin_high": edges[b + 1],
                "mean_score": float(np.average(p[mask], weights=w[mask])),
                "fraction_positive": float(np.average(y[mask], weights=w[mask])),
                "count": float(weight),
            }
        )
    return pd.DataFrame(
        rows, columns=["bin_low", "bin_high", "mean_score", "fraction_positive", "count"]
    )


def expected_calibration_error(
    y_true: Any, y_score: Any, bins: int = 10, sample_weight: Any = None
) -> float:
    """Weighted mean |mean score - observed rate| over equal-width bins (0 = calibrated)."""
    curve = calibration_curve(y_true, y_score, bins, sample_weight)
    if curve.empty:
        return 0.0
    gap = (curve["mean_score"] - curve["fraction_positive"]).abs()
    return float((gap * curve["count"]).sum() / curve["count"].sum())


# -- slices ----------------------------------------------------------------------------------
def by_slice(
    frame: pd.DataFrame,
    column: str,
    y_true: Any,
    y_score: Any,
    task: str = "binary",
    min_rows: int = 1,
) -> pd.DataFrame:
    """Metrics per value of ``column`` (e.g. country, new vs old users), worst first.

    ``y_true``/``y_score`` are column names of ``frame`` or arrays aligned with it. A
    slice whose metric is undefined (one class only) gets NaN for that metric and keeps
    its row, so a small segment is visible rather than dropped.
    """
    import pandas as pd

    if column not in frame.columns:
        raise ValidationError(
            f"slice column {column!r} not in frame; it has {list(frame.columns)[:20]}",
            field="column",
        )
    y = frame[y_true].to_numpy() if isinstance(y_true, str) else np.asarray(y_true)
    p = frame[y_score].to_numpy() if isinstance(y_score, str) else np.asarray(y_score)
    keys = frame[column].astype(object).where(frame[column].notna(), "(missing)").to_numpy()
    rows = []
    for key in pd.unique(keys):
        mask = keys == key
        if mask.sum() < min_rows:
            continue
        row: dict[str, Any] = {column: key, "n": int(mask.sum())}
        try:
            row.update(evaluate(task, y[mask], p[mask]))
        except ValidationError:
            yy, pp = y[mask].astype(np.float64), p[mask].astype(np.float64)
            if task == "binary":
                row.update(log_loss=log_loss(yy, pp), base_rate=float(yy.mean()))
                row.update(mean_score=float(pp.mean()), roc_auc=float("nan"))
        row["n"] = int(mask.sum())
        rows.append(row)
    out = pd.DataFrame(rows)
    sort = {"binary": "roc_auc", "multiclass": "accuracy", "multilabel": "micro_f1"}.get(task)
    if sort and sort in out.columns:
        return out.sort_values(sort, na_position="first").reset_index(drop=True)
    if "rmse" in out.columns:
        return out.sort_values("rmse", ascending=False).reset_index(drop=True)
    return out
