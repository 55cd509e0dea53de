"""The "without ML" baselines follow the scikit-learn protocol and compute the right rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError

from loopml.core.errors import ValidationError
from loopml.train.baselines import PopularityBaseline, PriorBaseline


def test_prior_baseline_predicts_the_weighted_prior():
    y = np.array([0, 0, 0, 1])
    model = PriorBaseline().fit(np.zeros((4, 2)), y, sample_weight=[1, 1, 1, 3])
    assert model.predict_proba(np.zeros((3, 2)))[:, 1].tolist() == [0.5, 0.5, 0.5]
    assert model.classes_.tolist() == [0, 1]
    assert is_classifier(model)


def test_popularity_baseline_smooths_towards_the_prior():
    X = pd.DataFrame({"item_id": ["a"] * 4 + ["b"] * 96})
    y = np.array([1, 1, 1, 1] + [1] * 6 + [0] * 90)
    model = PopularityBaseline(key="item_id", smoothing=4).fit(X, y)
    prior = 10 / 100
    assert model.prior_ == pytest.approx(prior)
    assert model.rates_["a"] == pytest.approx((4 + 4 * prior) / (4 + 4))
    assert model.rates_["b"] == pytest.approx((6 + 4 * prior) / (96 + 4))
    p = model.predict_proba(pd.DataFrame({"item_id": ["a", "zzz", None]}))[:, 1]
    assert p.tolist() == pytest.approx([model.rates_["a"], prior, prior])
    assert model.predict(pd.DataFrame({"item_id": ["a", "b"]})).tolist() == [1, 0]
    raw = PopularityBaseline(smoothing=0).fit(X, y)
    assert raw.rates_["a"] == 1.0


def test_constructor_only_stores_params_and_clone_works():
    model = PopularityBaseline(key="video_id", smoothing=2.5)
    assert model.get_params() == {"key": "video_id", "smoothing": 2.5}
    assert not hasattr(model, "rates_")
    copy = clone(model.set_params(smoothing=7))
    assert copy.get_params() == {"key": "video_id", "smoothing": 7}
    with pytest.raises(NotFittedError):
        copy.predict_proba(pd.DataFrame({"video_id": ["x"]}))


def test_popularity_baseline_errors_name_the_fix():
    with pytest.raises(ValidationError, match="key column 'item_id'"):
        PopularityBaseline().fit(pd.DataFrame({"x": [1, 2]}), [0, 1])
    with pytest.raises(ValidationError, match="binary"):
        PopularityBaseline().fit(pd.DataFrame({"item_id": ["a", "b", "c"]}), [0, 1, 2])
    with pytest.raises(ValidationError, match="smoothing"):
        PopularityBaseline(smoothing=-1).fit(pd.DataFrame({"item_id": ["a", "b"]}), [0, 1])
