"""The learner's fast paths give River's own numbers: scoring and mini-batch updates."""

from __future__ import annotations

import copy
import random

import pandas as pd
import pytest
from river import linear_model, optim, tree

from loopml.serve.stream.features import compile_front
from loopml.serve.stream.models import (
    dense_frame,
    learn_rows,
    make_model,
    proba_scorer,
    sparse_rows,
    split_stateless,
)


def _rows(n: int, seed: int = 0) -> list[tuple[dict, bool]]:
    """Impression-like raw rows whose click odds depend on segment x category."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x = {
            "item_id": f"i{rng.randrange(60)}",
            "position": str(rng.randrange(5)),
            "segment": rng.choice(["organic", "paid", "social"]),
            "category": rng.choice(["news", "sport", "food", "tech"]),
            "device": rng.choice(["ios", "android"]),
        }
        good = (x["segment"], x["category"]) in {("paid", "sport"), ("organic", "news")}
        rows.append((x, rng.random() < (0.4 if good else 0.05)))
    return rows


@pytest.mark.parametrize("name", ["logreg", "ftrl"])
def test_scorer_equals_predict_proba_one_of_the_trained_model(name: str) -> None:
    front, final = split_stateless(make_model(name))
    transform = compile_front(front)
    score = proba_scorer(final)
    checked = 0
    for x, y in _rows(3000):
        xt = transform(x)
        assert score(xt) == final.predict_proba_one(xt)[True]  # the same arithmetic, bit for bit
        final.learn_one(xt, y)
        checked += 1
    assert checked == 3000 and final.weights  # it learnt while being scored
    # saturated logits take River's clipped branches of the sigmoid
    extreme = linear_model.LogisticRegression(optimizer=optim.SGD(0.1))
    extreme._weights["a"] = 40.0
    extreme._weights["b"] = -40.0
    for x in ({"a": 1.0}, {"b": 1.0}, {"a": 1.0, "b": 1.0}, {}):
        assert proba_scorer(extreme)(x) == extreme.predict_proba_one(x)[True]


def test_scorer_asks_other_models_and_reports_no_opinion() -> None:
    model = tree.HoeffdingTreeClassifier(grace_period=20)
    score = proba_scorer(model)
    assert model.predict_proba_one({"a": 1.0}) == {} and score({"a": 1.0}) is None
    for i in range(200):
        model.learn_one({"a": float(i % 2)}, i % 2 == 0)
    assert score({"a": 0.0}) == model.predict_proba_one({"a": 0.0})[True] > 0.5


@pytest.mark.parametrize(
    ("name", "params"),
    [("logreg", {}), ("ftrl", {}), ("logreg", {"l2": 0.01}), ("logreg", {"l1": 0.001})],
)
def test_sparse_mini_batch_step_equals_river_learn_many(name: str, params: dict) -> None:
    front, final = split_stateless(make_model(name, **params))
    transform = compile_front(front)
    reference = copy.deepcopy(final)
    rows = [(transform(x), y) for x, y in _rows(2000, seed=1)]
    for i in range(0, len(rows), 250):
        xs = [x for x, _ in rows[i : i + 250]]
        ys = [y for _, y in rows[i : i + 250]]
        learn_rows(final, xs, ys)
        reference.learn_many(pd.DataFrame(xs).fillna(0.0), pd.Series(ys))
    got, want = final.weights, reference.weights
    assert got.keys() == want.keys() and len(got) > 50
    assert max(abs(got[k] - want[k]) for k in got) < 1e-12
    assert final.intercept == pytest.approx(reference.intercept, abs=1e-12)
    assert final.optimizer.n_iterations == reference.optimizer.n_iterations == 8


def test_other_mini_batch_models_learn_from_a_dense_frame() -> None:
    class Recorder:
        def learn_many(self, frame, y) -> None:
            self.frame, self.y = frame, y

    model = Recorder()
    learn_rows(model, [{"a": 1.0, "b": 2}, {"c": 3.0}], [True, False])
    assert model.frame.to_dict("list") == {"a": [1.0, 0.0], "b": [2.0, 0.0], "c": [0.0, 3.0]}
    assert model.y.tolist() == [True, False]


def test_sparse_and_dense_rows_agree_with_pandas() -> None:
    rows = [{"b": 1.0, "a": 2.0}, {}, {"c": True, "a": 0.5}]
    columns, matrix = sparse_rows(rows)
    expected = pd.DataFrame(rows).fillna(0.0).astype(float)
    assert columns == list(expected.columns) == ["b", "a", "c"]
    assert matrix.toarray().tolist() == expected.to_numpy().tolist()
    assert dense_frame(rows).equals(expected)
