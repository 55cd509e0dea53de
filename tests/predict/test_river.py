"""The River flavour: served through the registry, learning online, sklearn partial_fit too."""

from __future__ import annotations

import numpy as np
import pytest
from river import datasets, linear_model, preprocessing

from loopml.core.errors import IntegrityError, NotFittedError, SignatureError, ValidationError
from loopml.core.signature import ColumnSpec, Signature
from loopml.predict.flavours import load_predictor, predictor_for, save_model
from loopml.predict.river import PartialFitClassifier, RiverPredictor
from loopml.registry.registry import Registry


def _phishing_model():
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    data = list(datasets.Phishing())
    for x, y in data[:1000]:
        model.learn_one(x, y)
    return model, data


def _signature(data) -> Signature:
    return Signature(tuple(ColumnSpec(name) for name in data[0][0]), classes=(False, True))


def test_registry_round_trip_serves_the_same_probabilities(tmp_path) -> None:
    model, data = _phishing_model()
    sig = _signature(data)
    registry = Registry(f"sqlite:///{tmp_path / 'meta.db'}", str(tmp_path / "artifacts"))
    mv = registry.register("phish", save_model(model, "river"), flavour="river", signature=sig)
    predictor = load_predictor(registry, "phish", "latest")
    assert isinstance(predictor, RiverPredictor) and predictor.version == mv.version
    rows = [x for x, _ in data[1000:1100]]
    batch = {c: [r[c] for r in rows] for c in sig.names}
    expected = [model.predict_proba_one(r)[True] for r in rows]
    assert np.allclose(predictor.predict(batch), expected, rtol=0, atol=1e-15)
    # tampering with the stored artifact is refused before unpickling
    path = registry.artifacts.local_path(mv.artifact_key)
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(IntegrityError):
        load_predictor(registry, "phish", "latest")


def test_learning_online_changes_predictions_and_validation_applies() -> None:
    _, data = _phishing_model()
    sig = _signature(data)
    predictor = predictor_for(linear_model.LogisticRegression(), sig, "river")
    x0 = data[0][0]
    before = predictor.predict_one(x0)
    for x, y in data[:300]:
        predictor.learn_one(x, y)
    assert predictor.predict_one(x0) != before
    with pytest.raises(SignatureError, match="missing column"):
        predictor.predict({"empty_server_form_handler": [0.0]})
    predictor.unload()
    with pytest.raises(NotFittedError, match="not loaded"):
        predictor.predict_one(x0)


def test_multiclass_and_regression_outputs() -> None:
    from river import linear_model as lm
    from river import tree

    sig = Signature((ColumnSpec("x"),), task="multiclass", classes=("a", "b", "c"))
    clf = tree.HoeffdingTreeClassifier(grace_period=5)
    for i in range(90):
        clf.learn_one({"x": float(i % 3)}, "abc"[i % 3])
    out = RiverPredictor(sig, clf).load().predict({"x": [0.0, 2.0]})
    assert out.shape == (2, 3) and np.allclose(out.sum(axis=1), 1.0)
    reg = lm.LinearRegression()
    for i in range(200):
        reg.learn_one({"x": i / 100}, 2 * i / 100)
    pred = RiverPredictor(Signature((ColumnSpec("x"),), task="regression"), reg).load()
    out = pred.predict({"x": [0.5, 1.0]})
    assert out.tolist() == [reg.predict_one({"x": 0.5}), reg.predict_one({"x": 1.0})]
    assert out[1] > out[0]


def test_partial_fit_classifier_learns_in_mini_batches() -> None:
    import pandas as pd
    from sklearn.linear_model import SGDClassifier

    clf = PartialFitClassifier(SGDClassifier(loss="log_loss", random_state=0), crosses=[("a", "b")])
    rng = np.random.default_rng(0)
    a = rng.choice(["u", "v"], 2000)
    b = rng.choice(["p", "q"], 2000)
    y = pd.Series((a == "u") == (b == "p"))  # only the cross predicts the label
    frame = pd.DataFrame({"a": a, "b": b})
    for start in range(0, 2000, 200):
        clf.learn_many(frame.iloc[start : start + 200], y.iloc[start : start + 200])
    proba = clf.predict_proba_many(frame.iloc[:4])
    assert list(proba.columns) == [False, True]
    hits = (proba[True] > 0.5).to_numpy() == y.iloc[:4].to_numpy()
    assert hits.all()
    with pytest.raises(ValidationError, match="has no partial_fit"):
        PartialFitClassifier(object())


def test_bad_artifact_bytes_are_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="not a loopml River model"):
        RiverPredictor.from_bytes(b"not a pickle")
    with pytest.raises(ValidationError, match="neither predict_proba_one nor predict_one"):
        RiverPredictor(Signature(()), object())
