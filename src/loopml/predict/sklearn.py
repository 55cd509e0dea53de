"""The scikit-learn flavour: any fitted estimator or pipeline with ``predict_proba``/``predict``.

The model is fed a DataFrame with the signature's columns, in signature order, built
by :func:`~loopml.predict.frames.to_frame` exactly as at training time. Artifacts are
pickles; they are unpickled only after the registry verified their sha256.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np

from loopml.core.errors import ValidationError
from loopml.core.signature import Signature
from loopml.predict.flavours import Flavour
from loopml.predict.frames import columns_to_frame
from loopml.predict.predictor import Predictor

FORMAT = "loopml.sklearn/1"


class SklearnPredictor(Predictor):
    """Serve a fitted scikit-learn compatible model.

    A model that knows how it was trained (``loopml.train.FrameModel``) is called
    through its ``predict_columns`` method, which skips a second validation; any
    other estimator gets a DataFrame with category columns as object strings.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> from loopml.core.signature import Signature
    >>> X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    >>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
    >>> p = SklearnPredictor(model, Signature.infer(X, classes=(0, 1)), name="demo").load()
    >>> p.predict({"x": [0.0, 3.0]}).round(2).tolist()
    [0.19, 0.81]
    """

    flavour = "sklearn"

    def __init__(
        self, model: Any, signature: Signature, name: str = "model", version: int = 0
    ) -> None:
        super().__init__(signature, name, version)
        self.model = model

    def _load(self) -> None:
        task = self.signature.task
        if task in ("binary", "multiclass", "multilabel") and not hasattr(
            self.model, "predict_proba"
        ):
            raise ValidationError(
                f"model {self.name} ({type(self.model).__name__}) has no predict_proba, but a "
                f"{task} signature promises probabilities; calibrate it (e.g. "
                "CalibratedClassifierCV) or register it with task='regression'",
                field="model",
            )

    def _predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        fast = getattr(self.model, "predict_columns", None)
        if fast is not None:
            return fast(columns)
        frame = columns_to_frame(self.signature, columns, "object")
        return model_output(self.model, frame, self.signature)


def model_output(model: Any, frame: Any, signature: Signature) -> np.ndarray:
    """Call a fitted estimator and shape its answer by the Predictor output convention."""
    task = signature.task
    if task == "regression":
        return np.asarray(model.predict(frame), dtype=np.float64).reshape(-1)
    proba = np.asarray(model.predict_proba(frame), dtype=np.float64)
    return proba_output(proba, task, getattr(model, "classes_", None), signature.classes)


def proba_output(
    proba: np.ndarray, task: str, model_classes: Any, wanted: tuple[Any, ...] | None
) -> np.ndarray:
    """Positive-class column for binary; columns in ``signature.classes`` order for multiclass."""
    if task == "binary":
        if proba.ndim == 1:
            return proba
        return proba[:, -1].copy()
    if task == "multiclass" and wanted is not None and model_classes is not None:
        order = [list(model_classes).index(c) for c in wanted]
        return proba[:, order]
    return proba


def save(model: Any) -> bytes:
    """Pickle a fitted estimator with the scikit-learn version it was fitted under."""
    if not (hasattr(model, "predict") or hasattr(model, "predict_proba")):
        raise ValidationError(
            f"the sklearn flavour needs a fitted estimator with predict/predict_proba, got "
            f"{type(model).__name__}",
            field="model",
        )
    import sklearn

    payload = {"format": FORMAT, "sklearn": sklearn.__version__, "model": model}
    return pickle.dumps(payload, protocol=5)


def load(data: bytes) -> Any:
    """Unpickle an artifact written by :func:`save` (the caller has verified its hash)."""
    try:
        payload = pickle.loads(data)  # noqa: S301 - bytes are hash-verified registry artifacts
    except (ModuleNotFoundError, AttributeError) as exc:
        raise ValidationError(
            f"cannot rebuild the model: {exc}; it was pickled with code this environment does "
            "not have (another loopml/scikit-learn version?). Retrain or install that version",
            field="model",
        ) from exc
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError, KeyError) as exc:
        raise ValidationError(
            f"artifact is not a loopml sklearn model ({exc}); was it registered with another "
            "flavour?",
            field="flavour",
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValidationError(
            "artifact is not a loopml sklearn model (no format marker); was it registered "
            "with another flavour?",
            field="flavour",
        )
    import sklearn

    if payload["sklearn"] != sklearn.__version__:
        warnings.warn(
            f"model was fitted with scikit-learn {payload['sklearn']} and is loaded with "
            f"{sklearn.__version__}; retrain or pin the version if predictions differ",
            stacklevel=2,
        )
    return payload["model"]


def _predictor(model: Any, signature: Signature, name: str, version: int) -> SklearnPredictor:
    return SklearnPredictor(model, signature, name, version)


FLAVOUR = Flavour("sklearn", save, load, _predictor)
