"""``FrameModel``: an estimator bundled with the input preparation it was trained with.

What is registered must answer raw feature rows exactly as it did in evaluation. So
the model carries its signature (columns by name, the categories seen in training),
the default preprocessing it needed, and the downsampling correction; serving calls
one object and can not forget a step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from loopml.core.errors import ValidationError
from loopml.core.signature import Signature
from loopml.predict.frames import columns_to_frame
from loopml.predict.sklearn import proba_output
from loopml.train.datasets import correct_probability
from loopml.train.preprocessing import auto_preprocess, wants_category_dtype

TASK_OF_TARGET = {
    "binary": "binary",
    "multiclass": "multiclass",
    "multilabel-indicator": "multilabel",
    "continuous": "regression",
}


def infer_task(y: Any) -> str:
    """binary / multiclass / multilabel / regression, from the labels."""
    from sklearn.utils.multiclass import type_of_target

    kind = type_of_target(y)
    if kind not in TASK_OF_TARGET:
        raise ValidationError(
            f"cannot tell the task from labels of type {kind!r}; pass task= explicitly "
            f"({', '.join(sorted(set(TASK_OF_TARGET.values())))})",
            field="task",
        )
    return TASK_OF_TARGET[kind]


def infer_signature(frame: Any, task: str = "binary", classes: Any = None) -> Signature:
    """The frame's signature with each category column's training categories recorded.

    >>> import pandas as pd
    >>> sig = infer_signature(pd.DataFrame({"x": [1, 2], "c": ["b", "a"]}))
    >>> [(c.name, c.kind, c.categories) for c in sig.inputs]
    [('x', 'int', None), ('c', 'category', ('a', 'b'))]
    """
    import pandas as pd

    base = Signature.infer(frame, task=task, classes=classes)
    inputs = []
    for spec in base.inputs:
        if spec.kind == "category":
            values = pd.Series(frame[spec.name]).dropna().astype(str).unique()
            spec = dataclasses.replace(spec, categories=tuple(sorted(values)))
        inputs.append(spec)
    return dataclasses.replace(base, inputs=tuple(inputs))


class FrameModel(BaseEstimator):
    """Fit and predict on raw feature frames, the way the model will be served.

    Parameters
    ----------
    estimator:
        Any scikit-learn compatible estimator, Pipeline, LightGBM model or baseline.
    signature:
        The input signature; inferred from the training frame when None.
    downsample_rate:
        When the training negatives were downsampled at this rate, predicted
        probabilities are corrected back to the real base rate.
    preprocess:
        Add one-hot encoding / imputation when the estimator needs it
        (:func:`~loopml.train.preprocessing.auto_preprocess`).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> from loopml.train.metrics import evaluate
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})
    >>> y = (X.x + (X.c == "a") + rng.normal(size=500) > 0.5).astype(int)
    >>> model = FrameModel(LogisticRegression()).fit(X, y)
    >>> round(evaluate("binary", y, model.predict_proba(X)[:, 1])["roc_auc"], 3)
    0.851
    """

    def __init__(
        self,
        estimator: Any,
        signature: Signature | None = None,
        downsample_rate: float | None = None,
        preprocess: bool = True,
    ) -> None:
        self.estimator = estimator
        self.signature = signature
        self.downsample_rate = downsample_rate
        self.preprocess = preprocess

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FrameModel:
        if not hasattr(X, "columns"):
            raise ValidationError(
                f"FrameModel fits on a pandas DataFrame (features by name), got {type(X).__name__}",
                field="X",
            )
        task = self.signature.task if self.signature is not None else infer_task(y)
        rate = self.downsample_rate
        if rate is not None and (task != "binary" or not 0 < rate <= 1):
            raise ValidationError(
                f"downsample_rate={rate!r} needs a binary task and a rate in (0, 1]; "
                f"task is {task!r}",
                field="downsample_rate",
            )
        sig = self.signature or infer_signature(X[[str(c) for c in X.columns]], task)
        self.categorical_ = "category" if wants_category_dtype(self.estimator) else "object"
        if self.categorical_ == "category":
            sig = _record_categories(sig, X)
        prepared = columns_to_frame(sig, sig.validate(X), self.categorical_)
        numbers = [c.name for c in sig.inputs if c.kind != "category"]
        has_missing = bool(numbers) and bool(prepared[numbers].isna().to_numpy().any())
        if self.preprocess:
            estimator = auto_preprocess(clone(self.estimator), sig, has_missing)
        else:
            estimator = clone(self.estimator)
        fit_params = {}
        if sample_weight is not None:
            if hasattr(estimator, "steps"):
                fit_params[f"{estimator.steps[-1][0]}__sample_weight"] = sample_weight
            else:
                fit_params["sample_weight"] = sample_weight
        self.estimator_ = estimator.fit(prepared, np.asarray(y), **fit_params)
        classes = getattr(self.estimator_, "classes_", None)
        if classes is not None:
            self.classes_ = np.asarray(classes)
        classes_t = None if classes is None else tuple(_plain(c) for c in classes)
        self.signature_ = dataclasses.replace(sig, task=task, classes=classes_t)
        self.n_features_in_ = len(sig.inputs)
        self.feature_names_in_ = np.asarray(sig.names, dtype=object)
        return self

    # -- prediction ----------------------------------------------------------------------
    def _prepare(self, X: Any) -> Any:
        check_is_fitted(self, "estimator_")
        sig = self.signature_
        return columns_to_frame(sig, sig.validate(X), self.categorical_)

    def _proba(self, prepared: Any) -> np.ndarray:
        proba = np.asarray(self.estimator_.predict_proba(prepared), dtype=np.float64)
        if self.downsample_rate is not None:
            p = correct_probability(proba[:, 1], self.downsample_rate)
            proba = np.column_stack([1.0 - p, p])
        return proba

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, corrected for downsampling."""
        return self._proba(self._prepare(X))

    def predict(self, X: Any) -> np.ndarray:
        """Labels (argmax of corrected probabilities) or regression values."""
        prepared = self._prepare(X)
        if self.signature_.task in ("binary", "multiclass"):
            return self.classes_[np.argmax(self._proba(prepared), axis=1)]
        return self.estimator_.predict(prepared)

    def predict_columns(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Predictor output for columns already validated against ``signature_``."""
        prepared = columns_to_frame(self.signature_, columns, self.categorical_)
        task = self.signature_.task
        if task == "regression":
            return np.asarray(self.estimator_.predict(prepared), dtype=np.float64).reshape(-1)
        return proba_output(self._proba(prepared), task, self.classes_, self.signature_.classes)

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


def _record_categories(sig: Signature, X: Any) -> Signature:
    """Fill in training categories the given signature left open (native learners need them)."""
    import pandas as pd

    inputs = []
    for spec in sig.inputs:
        if spec.kind == "category" and spec.categories is None and spec.name in X.columns:
            values = pd.Series(X[spec.name]).dropna().astype(str).unique()
            spec = dataclasses.replace(spec, categories=tuple(sorted(values)))
        inputs.append(spec)
    return dataclasses.replace(sig, inputs=tuple(inputs))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
