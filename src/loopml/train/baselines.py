""" "Can it be done without ML?" (seed 000 §4.1): the baselines every model must beat.

``PriorBaseline`` predicts the class prior for everyone; ``PopularityBaseline``
predicts each item's smoothed click rate. Both are scikit-learn classifiers (the
constructor stores settings, ``fit`` learns attributes ending in ``_``), so they go
through the same trainer, registry and Predictor as any model and show in the same
comparison table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from loopml.core.errors import ValidationError


class _FrameClassifier(ClassifierMixin, BaseEstimator):
    """Shared tags: these baselines read raw frames (strings, missing values)."""

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        return tags

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class per row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class PriorBaseline(_FrameClassifier):
    """Predict the (weighted) class frequencies of the training labels for every row.

    >>> import numpy as np
    >>> from loopml.train.metrics import evaluate
    >>> y = np.array([0] * 90 + [1] * 10)
    >>> model = PriorBaseline().fit(np.zeros((100, 1)), y)
    >>> model.predict_proba(np.zeros((2, 1)))[:, 1].tolist()
    [0.1, 0.1]
    >>> p = model.predict_proba(np.zeros((100, 1)))[:, 1]
    >>> round(evaluate("binary", y, p)["normalized_entropy"], 3)
    1.0
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> PriorBaseline:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) == 0:
            raise ValidationError(f"y must be a non-empty 1-D label array, got shape {y.shape}")
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
        self.classes_, index = np.unique(y, return_inverse=True)
        self.class_prior_ = np.bincount(index, weights=w, minlength=len(self.classes_)) / w.sum()
        self.n_features_in_ = _n_features(X)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "class_prior_")
        return np.tile(self.class_prior_, (_n_rows(X), 1))


class PopularityBaseline(_FrameClassifier):
    """Each key's smoothed positive rate; the global rate for keys never seen.

    ``rate = (positives + smoothing * prior) / (impressions + smoothing)``: an item
    with few impressions stays near the prior instead of jumping to 0 or 1.

    Parameters
    ----------
    key:
        The column holding the item (or any other) identifier.
    smoothing:
        Pseudo-impressions at the prior rate added to every key (>= 0).

    >>> import pandas as pd
    >>> X = pd.DataFrame({"item_id": ["a"] * 10 + ["b"] * 10})
    >>> y = [1] * 5 + [0] * 5 + [0] * 10
    >>> m = PopularityBaseline(smoothing=10).fit(X, y)
    >>> m.predict_proba(pd.DataFrame({"item_id": ["a", "b", "new"]}))[:, 1].round(3).tolist()
    [0.375, 0.125, 0.25]
    """

    def __init__(self, key: str = "item_id", smoothing: float = 10.0) -> None:
        self.key = key
        self.smoothing = smoothing

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> PopularityBaseline:
        import pandas as pd

        if not isinstance(self.smoothing, int | float) or self.smoothing < 0:
            raise ValidationError(
                f"smoothing must be a number >= 0, got {self.smoothing!r}", field="smoothing"
            )
        keys = self._keys(X)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValidationError(
                f"PopularityBaseline is a binary (click / no click) baseline; y has classes "
                f"{self.classes_[:10].tolist()}. Use PriorBaseline for other tasks",
                field="y",
            )
        positive = (y == self.classes_[1]).astype(np.float64)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
        self.prior_ = float(np.average(positive, weights=w))
        stats = (
            pd.DataFrame({"k": keys, "pos": positive * w, "n": w})
            .groupby("k", dropna=True, sort=False)[["pos", "n"]]
            .sum()
        )
        rates = (stats["pos"] + self.smoothing * self.prior_) / (stats["n"] + self.smoothing)
        self.rates_ = {k: float(v) for k, v in rates.items()}
        self.n_features_in_ = _n_features(X)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "rates_")
        keys = self._keys(X)
        p = np.array([self.rates_.get(k, self.prior_) for k in keys], dtype=np.float64)
        return np.column_stack([1.0 - p, p])

    def _keys(self, X: Any) -> list[Any]:
        columns = getattr(X, "columns", None)
        if columns is None or self.key not in columns:
            have = list(columns)[:20] if columns is not None else type(X).__name__
            raise ValidationError(
                f"PopularityBaseline needs a DataFrame with key column {self.key!r}; got "
                f"{have}. Include {self.key!r} in the features or set key=...",
                field="key",
            )
        values = X[self.key].astype(object).to_numpy()
        return [_key(v) for v in values]


def _key(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value)


def _n_rows(X: Any) -> int:
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _n_features(X: Any) -> int:
    shape = getattr(X, "shape", None)
    return int(shape[1]) if shape is not None and len(shape) > 1 else 1
