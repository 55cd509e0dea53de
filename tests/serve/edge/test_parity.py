"""Parity reports: what is measured, and the messages when an export must stop."""

from __future__ import annotations

import numpy as np
import pytest

from loopml.core.errors import ValidationError
from loopml.serve.edge.parity import compare, score


def test_report_records_max_difference_and_metric():
    native = np.array([0.1, 0.4, 0.8, 0.3])
    report = compare(native, native + np.array([0, 2e-5, 0, -5e-5]), "binary", [0, 1, 1, 0])
    assert report.passed and report.rows == 4 and report.rows_over_tolerance == 0
    assert report.max_abs_diff == pytest.approx(5e-5)
    assert report.metric == "roc_auc" and report.metric_native == 1.0
    assert report.to_dict()["passed"] is True


def test_a_difference_above_tolerance_stops_the_export_with_numbers():
    native = np.array([0.1, 0.4, 0.8, 0.3])
    report = compare(native, native + np.array([0, 0.2, 0, 0]), "binary", tolerance=1e-3)
    assert not report.passed and report.rows_over_tolerance == 1
    with pytest.raises(
        ValidationError,
        match=r"max \|p_onnx - p_native\| = 0.2 over 4 rows "
        r"\(1 above\) exceeds the tolerance 0.001",
    ):
        report.raise_if_failed("ctr v3")


def test_a_metric_change_alone_also_fails():
    native = np.array([0.1, 0.4, 0.6, 0.3])
    shifted = np.array([0.1, 0.65, 0.6, 0.3])  # reorders two rows: AUC drops
    report = compare(native, shifted, "binary", [0, 0, 1, 1], tolerance=1.0)
    assert report.metric_diff < 0 and not report.passed
    with pytest.raises(ValidationError, match="roc_auc differs by"):
        report.raise_if_failed("ctr v3")


def test_layout_and_nan_changes_are_refused():
    with pytest.raises(ValidationError, match=r"shape \(3,\) but the ONNX graph returned \(3, 2\)"):
        compare(np.zeros(3), np.zeros((3, 2)), "binary")
    with pytest.raises(ValidationError, match="returned NaN where the native model did not"):
        compare(np.zeros(3), np.array([0.0, np.nan, 0.0]), "binary")


def test_scores_by_task():
    assert score("regression", [1.0, 2.0], np.array([1.0, 4.0])).value == pytest.approx(2**0.5)
    assert score("regression", [1.0], np.array([1.0])).higher_is_better is False
    multi = score("multiclass", ["a", "b", "c"], np.eye(3), classes=("a", "b", "c"))
    assert multi.name == "roc_auc_ovr" and multi.value == 1.0
    with pytest.raises(ValidationError, match="hold a single class"):
        score("binary", [1, 1], np.array([0.2, 0.3]))
