"""Compression variants (quantisation, pruning, distillation) and the trade-off they report."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from loopml.core.errors import ValidationError
from loopml.predict.flavours import load_predictor
from loopml.predict.onnx import OnnxPredictor
from loopml.registry.registry import Registry
from loopml.serve.edge import compression as comp
from loopml.serve.edge.convert import to_onnx
from loopml.serve.edge.export import export_edge
from loopml.serve.edge.loader import load_bundle
from loopml.serve.edge.parity import score
from loopml.serve.edge.sample import estimator_of
from loopml.serve.edge.tradeoff import TradeoffRow, choose, measure, to_markdown


@pytest.fixture(scope="module")
def teacher(edge_cfg, world):  # noqa: ANN001, ANN201
    native = load_predictor(Registry.from_config(edge_cfg), "ctr_gbm", "production")
    model = estimator_of(native)
    original = to_onnx(model, native.signature, "ctr_gbm", 1).SerializeToString()
    frame = world["holdout"].drop(columns="clicked")
    for col in ("age", "hour", "item_ctr", "position"):  # as a device holds them
        frame[col] = frame[col].astype(np.float32).astype(np.float64)
    return native, model, original, frame, world["holdout"]["clicked"].to_numpy()


def test_pruning_keeps_the_first_boosting_rounds(teacher):
    native, model, original, frame, labels = teacher
    variants = comp.prune(model, native.signature, "ctr_gbm", 1)
    assert [v.params["rounds"] for v in variants] == [60, 30, 15]
    sizes = [len(v.onnx) for v in variants]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] < len(original) * 0.6
    for v in variants:  # each pruned graph matches its own pruned native model
        onnx_p = OnnxPredictor(native.signature, v.onnx).load().predict(frame)
        assert np.abs(onnx_p - v.native(frame)).max() < 1e-5
    # fewer trees change the predictions (this is a real truncation)
    assert np.abs(variants[-1].native(frame) - native.predict(frame)).max() > 0.01


def test_pruning_explains_models_without_boosting_rounds(edge_cfg):
    native = load_predictor(Registry.from_config(edge_cfg), "ctr_pipe", "production")
    reason = comp.prune(estimator_of(native), native.signature, "ctr_pipe", 1)
    assert reason.startswith("LogisticRegression is not a gradient-boosted model")


def test_quantisation_applies_to_linear_layers_not_to_trees(teacher):
    native, _, original, frame, labels = teacher
    reason = comp.quantized(original, "int8", "x")
    assert isinstance(reason, str) and "TreeEnsembleClassifier" in reason
    student = comp.distill("mlp", native.signature, frame.iloc[:1500], native.predict, "ctr_gbm", 1)
    q = comp.quantized(student.onnx, "student-mlp-int8", "x")
    ops = {n.op_type for n in onnx.load_from_string(q.onnx).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & ops
    p_float = OnnxPredictor(native.signature, student.onnx).load().predict(frame)
    p_int8 = OnnxPredictor(native.signature, q.onnx).load().predict(frame)
    assert 0 < np.abs(p_float - p_int8).max() < 0.05  # 8-bit weights: close, not identical


@pytest.mark.parametrize("kind", ["gbm", "mlp"])
def test_distilled_students_learn_the_teacher(teacher, kind):
    native, _, original, frame, labels = teacher
    student = comp.distill(kind, native.signature, frame.iloc[:1500], native.predict, "ctr_gbm", 1)
    rest = frame.iloc[1500:]
    p_student = OnnxPredictor(native.signature, student.onnx).load().predict(rest)
    assert np.abs(p_student - student.native(rest)).max() < 1e-4
    assert np.corrcoef(p_student, native.predict(rest))[0, 1] > 0.85
    assert len(student.onnx) < len(original) / 4
    auc_teacher = score("binary", labels[1500:], native.predict(rest)).value
    assert score("binary", labels[1500:], p_student).value > auc_teacher - 0.03


def test_distillation_needs_a_transfer_set(teacher):
    native, _, _, frame, _ = teacher
    reason = comp.distill("gbm", native.signature, frame.iloc[:10], native.predict, "m", 1)
    assert reason == "the transfer set has 10 rows; distillation needs at least 50"


def test_measure_scores_and_times_every_variant(teacher):
    native, model, original, frame, labels = teacher
    variants = [
        comp.Variant("original", "none", "exact", original),
        *comp.prune(model, native.signature, "ctr_gbm", 1),
    ]
    ref = score("binary", labels, native.predict(frame))
    rows = measure(
        variants, native.signature, frame, labels, ref, batch_rows=2000, single_repeats=20
    )
    assert [r.name for r in rows] == ["original", "pruned-50", "pruned-25", "pruned-12.5"]
    assert rows[0].size_ratio == 1.0 and abs(rows[0].metric_loss) < 1e-3
    assert all(r.single_row_us > 0 and r.batch_rows_per_s > 0 for r in rows)
    table = to_markdown(rows, "pruned-50")
    assert "| pruned-50 **(chosen)** | prune: first 60 of 120 boosting rounds |" in table


def _row(name: str, size: int, loss: float) -> TradeoffRow:
    return TradeoffRow(name, "x", "x", size, 1.0, 1.0, 1.0, "roc_auc", 0.7, loss, None)


def test_choose_picks_the_smallest_variant_within_bounds():
    rows = [_row("original", 1000, 0.0), _row("a", 400, 0.004), _row("b", 100, 0.02)]
    assert choose(rows).name == "original"
    assert choose(rows, max_metric_loss=0.005).name == "a"
    assert choose(rows, max_size=500).name == "b"
    assert choose(rows, max_size=500, max_metric_loss=0.005).name == "a"
    with pytest.raises(ValidationError, match="no variant fits --max-size 50.*b: 100 bytes"):
        choose(rows, max_size=50)


def test_parse_methods():
    assert comp.parse_methods("all") == ["quantize", "prune", "distill"]
    assert comp.parse_methods(["distill"]) == ["distill"] and comp.parse_methods(None) == []


def test_export_with_compression_ships_the_chosen_variant(edge_cfg, world, tmp_path):
    result = export_edge(
        edge_cfg,
        "ctr_gbm@production",
        tmp_path / "b",
        data=world["holdout"],
        label="clicked",
        compress="all",
        sample_rows=1600,
        max_metric_loss=0.01,
        batch_rows=2000,
        progress=False,
    )
    bundle = load_bundle(tmp_path / "b")
    names = {r.name for r in result.tradeoff}
    assert {"original", "pruned-50", "student-gbm", "student-mlp", "student-mlp-int8"} <= names
    assert ("int8", result.skipped[0][1]) == result.skipped[0] and "tree" in result.skipped[0][1]
    chosen = next(r for r in result.tradeoff if r.name == result.chosen)
    assert chosen.metric_loss <= 0.01
    assert chosen.size_bytes == min(r.size_bytes for r in result.tradeoff if r.metric_loss <= 0.01)
    assert bundle.manifest["compression"] == result.chosen == result.record.compression
    assert bundle.manifest["files"]["model.onnx"]["bytes"] == chosen.size_bytes
    assert (tmp_path / "b" / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = json.loads((tmp_path / "b" / "tradeoff.json").read_text())
    assert table["chosen"] == result.chosen and len(table["rows"]) == len(result.tradeoff)
    assert "<img" in (tmp_path / "b" / "tradeoff.html").read_text()
    # the shipped variant reaches the promised metric on held-out rows
    holdout = world["holdout"]
    p = bundle.predictor().predict(holdout)
    native = load_predictor(Registry.from_config(edge_cfg), "ctr_gbm", "production")
    loss = (
        score("binary", holdout.clicked, native.predict(holdout)).value
        - score("binary", holdout.clicked, p).value
    )
    assert loss < 0.015


def test_export_compression_needs_labels(edge_cfg, world, tmp_path):
    with pytest.raises(ValidationError, match="needs labels; pass --label COLUMN"):
        export_edge(
            edge_cfg,
            "ctr_gbm@production",
            tmp_path / "b",
            data=world["holdout"].drop(columns="clicked"),
            compress="prune",
            progress=False,
        )
