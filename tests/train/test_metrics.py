"""Evaluation metrics by task, calibration and slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from loopml.core.errors import ValidationError
from loopml.train.metrics import (
    by_slice,
    calibration_curve,
    evaluate,
    expected_calibration_error,
)


def test_binary_metrics_match_references(clicks):
    y, p = clicks.clicked.to_numpy(), clicks.p_true.to_numpy()
    m = evaluate("binary", y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["log_loss"] == pytest.approx(sk_log_loss(y, p))
    base = y.mean()
    entropy = -(base * np.log(base) + (1 - base) * np.log(1 - base))
    assert m["normalized_entropy"] == pytest.approx(m["log_loss"] / entropy)
    assert m["normalized_entropy"] < 1.0  # the truth beats the base rate
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert m["base_rate"] == pytest.approx(base) and m["n"] == len(y)
    assert set(m) >= {"pr_auc", "ece", "mean_score"}


def test_calibration_separates_the_truth_from_a_distorted_score(clicks):
    y, p = clicks.clicked.to_numpy(), clicks.p_true.to_numpy()
    distorted = np.clip(p * 2.5, 0, 1)
    assert expected_calibration_error(y, p) < 0.02
    assert expected_calibration_error(y, distorted) > 0.05
    curve = calibration_curve(y, p, bins=5)
    assert list(curve.columns) == [
        "bin_low",
        "bin_high",
        "mean_score",
        "fraction_positive",
        "count",
    ]
    assert curve["count"].sum() == len(y)
    big = curve[curve["count"] >= 100]  # small bins are noise
    assert len(big) >= 2 and (big.mean_score - big.fraction_positive).abs().max() < 0.08


def test_weights_change_the_metric_as_replicated_rows_would():
    y = np.array([0, 1, 0, 1, 1])
    p = np.array([0.2, 0.7, 0.6, 0.4, 0.9])
    w = np.array([1, 2, 1, 1, 3])
    weighted = evaluate("binary", y, p, sample_weight=w)
    replicated = evaluate("binary", np.repeat(y, w), np.repeat(p, w))
    for key in ("roc_auc", "log_loss", "brier", "base_rate"):
        assert weighted[key] == pytest.approx(replicated[key])


def test_binary_input_errors_are_explicit():
    with pytest.raises(ValidationError, match="only class 0"):
        evaluate("binary", [0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValidationError, match="must match"):
        evaluate("binary", [0, 1], [0.1])
    with pytest.raises(ValidationError, match="NaN/infinite"):
        evaluate("binary", [0, 1], [0.1, np.nan])
    with pytest.raises(ValidationError, match="probabilities in"):
        evaluate("binary", [0, 1], [-2.0, 3.0])
    with pytest.raises(ValidationError, match="must be 0/1"):
        evaluate("binary", [1, 2], [0.2, 0.3])
    with pytest.raises(ValidationError, match="unknown task"):
        evaluate("ranking", [0, 1], [0.2, 0.3])
    two_columns = evaluate("binary", [0, 1], [[0.8, 0.2], [0.3, 0.7]])
    assert two_columns["roc_auc"] == 1.0


def test_multiclass_multilabel_and_regression():
    y = np.array([0, 1, 2, 2])
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.1, 0.4]])
    m = evaluate("multiclass", y, p)
    assert m["accuracy"] == 0.75
    assert m["cross_entropy"] == pytest.approx(sk_log_loss(y, p))
    assert 0 < m["macro_f1"] < 1
    with pytest.raises(ValidationError, match="class indices 0..2"):
        evaluate("multiclass", [0, 5, 1, 1], p)
    ml = evaluate("multilabel", [[1, 0], [0, 1], [1, 1]], [[0.9, 0.2], [0.4, 0.6], [0.7, 0.3]])
    assert ml["hamming_loss"] == pytest.approx(1 / 6)
    r = evaluate("regression", [1.0, 2.0, 3.0], [1.0, 2.5, 2.0])
    assert r["mae"] == pytest.approx(0.5)
    assert r["rmse"] == pytest.approx(np.sqrt((0.25 + 1.0) / 3))


def test_by_slice_lists_worst_first_and_keeps_single_class_slices():
    frame = pd.DataFrame(
        {
            "country": ["kr"] * 4 + ["us"] * 4 + ["jp"] * 2,
            "y": [0, 1, 0, 1, 0, 1, 0, 1, 0, 0],
            "p": [0.1, 0.9, 0.2, 0.8, 0.9, 0.1, 0.6, 0.4, 0.3, 0.2],
        }
    )
    out = by_slice(frame, "country", "y", "p")
    assert out.country.tolist()[0] == "jp"  # undefined AUC is shown first, not dropped
    assert np.isnan(out.roc_auc.iloc[0]) and out.n.iloc[0] == 2
    auc = dict(zip(out.country, out.roc_auc, strict=True))
    assert auc["kr"] == 1.0 and auc["us"] == 0.0
    assert out.country.tolist()[1:] == ["us", "kr"]
    with pytest.raises(ValidationError, match="slice column 'city'"):
        by_slice(frame, "city", "y", "p")
