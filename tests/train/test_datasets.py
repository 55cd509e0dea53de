"""Time splits, negative downsampling with probability correction, class weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.core.errors import ValidationError
from loopml.train.datasets import (
    WEIGHT_COLUMN,
    class_weights,
    correct_probability,
    negative_downsample,
    time_split,
)
from loopml.train.metrics import expected_calibration_error


def test_time_split_is_ordered_disjoint_and_by_whole_days(clicks):
    s = time_split(clicks, valid_days=3, test_days=2)
    assert len(s.train) + len(s.valid) + len(s.test) == len(clicks)
    assert s.train.ts.max() < s.valid.ts.min() <= s.valid.ts.max() < s.test.ts.min()
    last_day = clicks.ts.max().floor("D")
    assert s.test.ts.min() >= last_day - pd.Timedelta(days=1)
    assert s.valid.ts.min() >= last_day - pd.Timedelta(days=4)
    assert s.test.ts.min().floor("D") == last_day - pd.Timedelta(days=1)
    ranges = s.ranges()
    assert ranges["train"]["start"] == clicks.ts.min().isoformat()
    assert ranges["test"]["end"] == clicks.ts.max().isoformat()


def test_time_split_accepts_unsorted_naive_timestamps():
    ts = pd.date_range("2026-03-01", periods=96, freq="h")  # naive: taken as UTC
    frame = pd.DataFrame({"ts": ts[::-1], "v": range(96)})
    s = time_split(frame, valid_days=1, test_days=1)
    assert (len(s.train), len(s.valid), len(s.test)) == (48, 24, 24)
    assert s.test.ts.dt.tz is not None and s.train.ts.is_monotonic_increasing


def test_time_split_errors_say_what_to_change(clicks):
    with pytest.raises(ValidationError, match="timestamp column 'when'"):
        time_split(clicks, ts_col="when")
    with pytest.raises(ValidationError, match="lower valid_days/test_days"):
        time_split(clicks, valid_days=10, test_days=10)
    with pytest.raises(ValidationError, match="valid_days must be a number >= 0"):
        time_split(clicks, valid_days=-1)


def test_negative_downsample_keeps_positives_and_records_rate(clicks):
    out = negative_downsample(clicks, "clicked", 0.2, seed=5)
    assert out.clicked.sum() == clicks.clicked.sum()
    negatives = (clicks.clicked == 0).sum()
    kept = (out.clicked == 0).sum()
    assert abs(kept / negatives - 0.2) < 0.03
    assert set(out.loc[out.clicked == 1, WEIGHT_COLUMN]) == {1.0}
    assert set(out.loc[out.clicked == 0, WEIGHT_COLUMN]) == {5.0}
    assert out.attrs["downsample_rate"] == 0.2
    assert out.equals(negative_downsample(clicks, "clicked", 0.2, seed=5))
    assert not out.equals(negative_downsample(clicks, "clicked", 0.2, seed=6))


def test_negative_downsample_refuses_bad_input(clicks):
    with pytest.raises(ValidationError, match=r"rate must be in \(0, 1\]"):
        negative_downsample(clicks, "clicked", 0.0)
    with pytest.raises(ValidationError, match="0/1 label"):
        negative_downsample(clicks, "position", 0.5)
    with pytest.raises(ValidationError, match="label column 'nope'"):
        negative_downsample(clicks, "nope", 0.5)


def test_corrected_probabilities_are_calibrated_on_the_full_distribution():
    rng = np.random.default_rng(0)
    n = 60_000
    x = rng.normal(size=(n, 2))
    p = 1 / (1 + np.exp(-(-4.0 + 1.2 * x[:, 0] - 0.8 * x[:, 1])))
    y = (rng.random(n) < p).astype(int)
    full = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y})
    rate = 0.05
    sample = negative_downsample(full, "y", rate, seed=1)
    model = LogisticRegression().fit(sample[["a", "b"]], sample.y)
    raw = model.predict_proba(full[["a", "b"]])[:, 1]
    fixed = correct_probability(raw, rate)
    base = y.mean()
    assert raw.mean() > 4 * base  # the uncorrected model badly over-predicts
    assert abs(fixed.mean() - base) < 0.15 * base
    assert expected_calibration_error(y, fixed) < 0.005 < expected_calibration_error(y, raw)


def test_correct_probability_is_identity_at_rate_one_and_monotone():
    p = np.linspace(0.01, 0.99, 50)
    assert np.allclose(correct_probability(p, 1.0), p)
    fixed = correct_probability(p, 0.1)
    assert (np.diff(fixed) > 0).all() and (fixed < p).all()
    with pytest.raises(ValidationError):
        correct_probability(p, 1.5)


def test_class_weights_balance_the_classes():
    y = np.array(["a"] * 8 + ["b"] * 2)
    weights = class_weights(y)
    assert weights == {"a": 0.625, "b": 2.5}
    total = {c: weights[c] * (y == c).sum() for c in weights}
    assert total["a"] == pytest.approx(total["b"])
    with pytest.raises(ValidationError, match="empty"):
        class_weights([])
