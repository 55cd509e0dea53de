"""Conversion of other model shapes: multiclass, regression, raw boosters, matrix models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.core.errors import ValidationError
from loopml.core.signature import ColumnSpec, Signature
from loopml.predict.onnx import OnnxPredictor
from loopml.serve.edge.convert import describe_preprocessing, to_onnx


@pytest.fixture(scope="module")
def data():  # noqa: ANN201
    rng = np.random.default_rng(5)
    n = 1500
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.random(n)})
    X = X.astype(np.float32).astype(np.float64)  # device precision
    return X, rng


def test_multiclass_pipeline_keeps_class_order(data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, rng = data
    y = np.where(X.a > 0.5, "high", np.where(X.a < -0.5, "low", "mid"))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y)
    sig = Signature(
        tuple(ColumnSpec(c) for c in X.columns), task="multiclass", classes=tuple(model.classes_)
    )
    p = OnnxPredictor(sig, to_onnx(model, sig).SerializeToString()).load().predict(X)
    assert p.shape == (len(X), 3)
    np.testing.assert_allclose(p, model.predict_proba(X), atol=1e-5)


def test_regression_booster_and_matrix_models(data):
    import lightgbm as lgb
    from sklearn.ensemble import RandomForestClassifier

    X, rng = data
    target = 2 * X.a - X.b + rng.normal(scale=0.1, size=len(X))
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "num_leaves": 7},
        lgb.Dataset(X.to_numpy(), target),
        num_boost_round=30,
    )
    sig = Signature(tuple(ColumnSpec(c) for c in X.columns), task="regression", output="value")
    p = OnnxPredictor(sig, to_onnx(booster, sig).SerializeToString()).load().predict(X)
    np.testing.assert_allclose(p, booster.predict(X.to_numpy()), atol=1e-5)
    # a forest fitted on a bare matrix: inputs follow the signature order
    y = (X.a + X.c > 0.5).astype(int)
    forest = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0)
    forest.fit(X.to_numpy(), y)
    sig = Signature(tuple(ColumnSpec(c) for c in X.columns), task="binary")
    p = OnnxPredictor(sig, to_onnx(forest, sig).SerializeToString()).load().predict(X)
    np.testing.assert_allclose(p, forest.predict_proba(X.to_numpy())[:, 1], atol=1e-5)
    assert describe_preprocessing(forest, sig)[0] == "columns ['a', 'b', 'c'] as a float32 matrix"


def test_unconvertible_models_are_refused_with_the_list_of_what_works(data):
    X, _ = data
    sig = Signature(tuple(ColumnSpec(c) for c in X.columns))
    with pytest.raises(ValidationError, match="cannot convert a builtins.dict to ONNX"):
        to_onnx({}, sig)
    with pytest.raises(ValidationError, match="takes 3 unnamed features but its signature"):
        import lightgbm as lgb

        booster = lgb.train(
            {"objective": "binary", "verbose": -1},
            lgb.Dataset(X.to_numpy(), (X.a > 0).astype(int)),
            5,
        )
        to_onnx(booster, Signature((ColumnSpec("a"),)))
    from sklearn.linear_model import LogisticRegression

    text = Signature((ColumnSpec("a"), ColumnSpec("b", "category")))
    model = LogisticRegression().fit(X[["a", "b"]], (X.a > 0).astype(int))
    with pytest.raises(ValidationError, match=r"column\(s\) \['b'\] are categories but the model"):
        to_onnx(model, text)
