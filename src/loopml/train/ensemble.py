"""``SchemaEnsemble``: one model per log schema version, combined (seed 000 §4.3).

When a log format gains a field, old rows do not have it. Rather than drop the new
field or drop the old data, fit one model per ``schema_version`` (the newer one with
the extra field) and route each row to the model that matches its schema, or blend
every model that can read the row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from loopml.core.errors import ValidationError
from loopml.train.frame_model import infer_signature, infer_task
from loopml.train.preprocessing import auto_preprocess
from loopml.train.preprocessing import wants_category_dtype as _wants_category_dtype

MODES = ("match", "blend")


class SchemaEnsemble(BaseEstimator):
    """Per-schema-version models behind one scikit-learn estimator.

    Parameters
    ----------
    estimator:
        The estimator cloned for each schema version (preprocessing added as needed).
    schema_col:
        Column holding each row's schema version (integers; newer is larger).
    features:
        ``{version: [columns]}``; by default each version uses every column that is
        not entirely missing in its own rows (so the newer model gets the new field).
    mode:
        ``match``: a row is scored by the newest model not newer than its schema;
        ``blend``: by every model not newer than its schema, averaged with ``weights``.
        A row with no version is read as the oldest schema.
    weights:
        ``{version: weight}`` for ``blend`` (default: equal).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> n = 2000
    >>> v = np.where(np.arange(n) < n // 2, 1, 2)
    >>> x, z = rng.normal(size=n), rng.normal(size=n)
    >>> y = (x + 2 * z * (v == 2) + rng.normal(size=n) > 0).astype(int)
    >>> X = pd.DataFrame({"schema_version": v, "x": x, "z": np.where(v == 2, z, np.nan)})
    >>> model = SchemaEnsemble(LogisticRegression()).fit(X, y)
    >>> model.features_
    {1: ['x'], 2: ['x', 'z']}
    >>> from loopml.train.metrics import evaluate
    >>> new = v == 2
    >>> round(evaluate("binary", y[new], model.predict_proba(X[new])[:, 1])["roc_auc"], 2)
    0.95
    """

    def __init__(
        self,
        estimator: Any,
        schema_col: str = "schema_version",
        features: dict[int, list[str]] | None = None,
        mode: str = "match",
        weights: dict[int, float] | None = None,
    ) -> None:
        self.estimator = estimator
        self.schema_col = schema_col
        self.features = features
        self.mode = mode
        self.weights = weights

    def wants_category_dtype(self) -> bool:
        """Pass pandas ``category`` columns through when the inner estimator reads them."""
        return _wants_category_dtype(self.estimator)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SchemaEnsemble:
        if self.mode not in MODES:
            raise ValidationError(f"mode must be one of {MODES}, got {self.mode!r}", field="mode")
        versions_col = self._versions(X)
        y = np.asarray(y)
        self.task_ = infer_task(y)
        self.versions_ = sorted({int(v) for v in versions_col})
        self.models_: dict[int, Any] = {}
        self.features_: dict[int, list[str]] = {}
        classes = np.unique(y) if self.task_ != "regression" else None
        for version in self.versions_:
            rows = versions_col == version
            if classes is not None and len(np.unique(y[rows])) != len(classes):
                raise ValidationError(
                    f"schema version {version} rows have classes {np.unique(y[rows]).tolist()} "
                    f"but the labels have {classes.tolist()}; every version needs every class "
                    "(collect more data for it or pass features= to merge versions)",
                    field="y",
                )
            subset = X[rows]
            feats = self._features_for(version, subset)
            sig = infer_signature(subset[feats], self.task_)
            numbers = [c.name for c in sig.inputs if c.kind != "category"]
            missing = bool(numbers) and bool(subset[numbers].isna().to_numpy().any())
            model = auto_preprocess(clone(self.estimator), sig, missing)
            fit_params = {}
            if sample_weight is not None:
                name = f"{model.steps[-1][0]}__sample_weight" if hasattr(model, "steps") else None
                fit_params[name or "sample_weight"] = np.asarray(sample_weight)[rows]
            self.models_[version] = model.fit(subset[feats], y[rows], **fit_params)
            self.features_[version] = feats
        self._check_classes()
        self.n_features_in_ = X.shape[1]
        return self

    def _features_for(self, version: int, subset: Any) -> list[str]:
        if self.features is not None:
            if version not in self.features:
                raise ValidationError(
                    f"features has no entry for schema version {version}; it has "
                    f"{sorted(self.features)}",
                    field="features",
                )
            feats = list(self.features[version])
            absent = [c for c in feats if c not in subset.columns]
            if absent:
                raise ValidationError(f"features for version {version} not in frame: {absent}")
            return feats
        feats = [str(c) for c in subset.columns if c != self.schema_col and subset[c].notna().any()]
        if not feats:
            raise ValidationError(f"schema version {version} rows have no non-empty features")
        return feats

    def _check_classes(self) -> None:
        first = self.models_[self.versions_[0]]
        classes = getattr(first, "classes_", None)
        for version, model in self.models_.items():
            theirs = getattr(model, "classes_", None)
            if (classes is None) != (theirs is None) or (
                classes is not None and list(classes) != list(theirs)
            ):
                raise ValidationError(
                    f"schema version {version} has classes {theirs} but version "
                    f"{self.versions_[0]} has {classes}; every version needs every class",
                    field="y",
                )
        if classes is not None:
            self.classes_ = np.asarray(classes)

    def _versions(self, X: Any, fitting: bool = True) -> np.ndarray:
        if not hasattr(X, "columns") or self.schema_col not in X.columns:
            raise ValidationError(
                f"SchemaEnsemble needs a DataFrame with column {self.schema_col!r}",
                field="schema_col",
            )
        values = np.asarray(X[self.schema_col], dtype=np.float64)
        if not fitting:  # a row without a version is read as the oldest schema: fewest fields
            return np.where(np.isnan(values), self.versions_[0], values)
        if np.isnan(values).any():
            raise ValidationError(
                f"column {self.schema_col!r} has missing values; every row needs its schema "
                "version",
                field=self.schema_col,
            )
        return values

    # -- prediction ----------------------------------------------------------------------
    def _scores(self, model: Any, frame: Any) -> np.ndarray:
        if self.task_ == "regression":
            return np.asarray(model.predict(frame), dtype=np.float64).reshape(-1, 1)
        return np.asarray(model.predict_proba(frame), dtype=np.float64)

    def _combine(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "models_")
        versions = self._versions(X, fitting=False)
        width = 1 if self.task_ == "regression" else len(self.classes_)
        out = np.zeros((len(X), width))
        total = np.zeros(len(X))
        oldest = self.versions_[0]
        for version in self.versions_:
            if self.mode == "match":
                newer = [v for v in self.versions_ if v > version]
                upper = newer[0] if newer else np.inf
                rows = (versions >= version) & (versions < upper)
                if version == oldest:
                    rows |= versions < oldest
                weight = 1.0
            else:
                rows = versions >= version
                if version == oldest:
                    rows |= versions < oldest
                weight = float((self.weights or {}).get(version, 1.0))
            if not rows.any() or weight == 0:
                continue
            scores = self._scores(self.models_[version], X[rows][self.features_[version]])
            out[rows] += weight * scores
            total[rows] += weight
        if (total == 0).any():
            raise ValidationError("some rows got no model: every blend weight was 0 for them")
        return out / total[:, None]

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.task_ == "regression":
            raise AttributeError("predict_proba is not available for a regression ensemble")
        return self._combine(X)

    def predict(self, X: Any) -> np.ndarray:
        scores = self._combine(X)
        if self.task_ == "regression":
            return scores[:, 0]
        return self.classes_[np.argmax(scores, axis=1)]

    def __sklearn_tags__(self):  # noqa: ANN204
        from sklearn.utils import get_tags

        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        return tags
