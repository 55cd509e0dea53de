"""The ONNX Runtime Predictor flavour: conformance suite, registry round trip, clear refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pandas as pd
import pytest

from loopml.core.config import ProjectConfig
from loopml.core.errors import IntegrityError, NotFittedError, ValidationError
from loopml.core.hashing import sha256_bytes
from loopml.core.signature import ColumnSpec, Signature
from loopml.predict.checks import CHECKS, check_predictor
from loopml.predict.flavours import load_predictor, save_model
from loopml.predict.onnx import SIGNATURE_KEY, OnnxPredictor
from loopml.registry.registry import Registry

SIG = Signature(
    (ColumnSpec("x"), ColumnSpec("n", "int"), ColumnSpec("c", "category")),
    task="binary",
    classes=(0, 1),
)


@pytest.fixture(scope="module")
def fitted():  # noqa: ANN201
    """A scikit-learn pipeline with an imputer, a scaler and a one-hot encoder, and its ONNX."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from loopml.serve.edge.convert import to_onnx

    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({
        "x": rng.normal(size=n), "n": rng.integers(0, 5, n).astype(float),
        "c": pd.Series(rng.choice(["a", "b", "c"], n), dtype=object),
    })  # fmt: skip
    frame.loc[::17, "x"] = np.nan
    y = (frame.x.fillna(0) + (frame.c == "a") + rng.normal(size=n) > 0.5).astype(int)
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["x", "n"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["c"]),
    ])  # fmt: skip
    model = make_pipeline(pre, LogisticRegression()).fit(frame, y)
    return model, to_onnx(model, SIG, "toy", 1).SerializeToString(), frame


def test_conformance_suite_through_the_registry(fitted, project_dir):
    _, data, frame = fitted
    registry = Registry.from_config(ProjectConfig.load(project_dir))
    registry.register("toy", save_model(data, "onnx"), flavour="onnx", signature=SIG)
    predictor = load_predictor(registry, "toy", 1)
    assert isinstance(predictor, OnnxPredictor) and predictor.flavour == "onnx"
    ran = check_predictor(lambda: load_predictor(registry, "toy", 1), frame.head(40), atol=1e-6)
    assert ran == list(CHECKS)  # every check ran, none skipped


def test_predictions_match_scikit_learn(fitted):
    model, data, frame = fitted
    p = OnnxPredictor(SIG, data).load()
    frame = frame.assign(x=frame.x.astype(np.float32).astype(float))
    np.testing.assert_allclose(p.predict(frame), model.predict_proba(frame)[:, 1], atol=1e-6)
    # a missing category is sent as "" to the graph and behaves as scikit-learn's None
    row = {"x": 0.5, "n": 2.0, "c": None}
    expected = model.predict_proba(pd.DataFrame({k: [v] for k, v in row.items()}, dtype=object))
    assert p.predict_one(row) == pytest.approx(expected[0, 1], abs=1e-6)


def test_from_bytes_reads_the_signature_stamped_in_the_graph(fitted):
    _, data, frame = fitted
    p = OnnxPredictor.from_bytes(data, name="toy", version=1).load()
    assert p.signature == SIG and p.predict(frame).shape == (len(frame),)
    proto = onnx.load_from_string(data)
    assert {m.key for m in proto.metadata_props} >= {SIGNATURE_KEY, "loopml.model"}
    del proto.metadata_props[:]
    with pytest.raises(ValidationError, match="has no 'loopml.signature' metadata"):
        OnnxPredictor.from_bytes(proto.SerializeToString())


def test_a_tampered_model_is_refused(fitted):
    _, data, _ = fitted
    ok = OnnxPredictor(SIG, data, expected_sha256=sha256_bytes(data)).load()
    assert ok.ready
    with pytest.raises(IntegrityError, match="was modified; refusing to load it"):
        OnnxPredictor(SIG, data + b"\x00", expected_sha256=sha256_bytes(data)).load()


def test_mismatched_signatures_and_tasks_are_explained(fitted, tmp_path):
    _, data, frame = fitted
    other = Signature((ColumnSpec("x"), ColumnSpec("n", "int")), task="binary")
    with pytest.raises(ValidationError, match=r"graph input\(s\) \['c'\] are not columns"):
        OnnxPredictor(other, data).load()
    regression = dataclasses.replace(SIG, task="regression")
    with pytest.raises(ValidationError, match="a regression model needs 'variable'"):
        OnnxPredictor(regression, data).load()
    path = tmp_path / "toy.onnx"
    path.write_bytes(data)
    p = OnnxPredictor(SIG, path)
    with pytest.raises(NotFittedError, match="not loaded; call .load"):
        p.predict(frame)
    assert p.load().predict(frame).shape == (len(frame),)
    with pytest.raises(ValidationError, match="stores an onnx.ModelProto or .onnx bytes"):
        save_model(object(), "onnx")
