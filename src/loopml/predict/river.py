"""The online flavour of :class:`~loopml.predict.predictor.Predictor`: River models.

A River model learns one event at a time, so the same object the streaming learner
updates is what serving calls: :class:`RiverPredictor` turns a columnar batch into
per-row dicts (``predict_proba_one``) or one pandas frame (``predict_proba_many``) and
can keep learning (``learn_one``). :class:`PartialFitClassifier` gives scikit-learn
estimators that support ``partial_fit`` the same River-style protocol, so the learner
treats both alike. Artifacts are pickles (River's own persistence), checked by sha256
in the registry before they are loaded.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np

from loopml.core.errors import ValidationError
from loopml.core.signature import Signature
from loopml.predict.predictor import Predictor

_FORMAT = "loopml.river/1"


class RiverPredictor(Predictor):
    """Serve (and keep teaching) a River-style online model.

    Parameters
    ----------
    signature:
        The raw input columns; rows are passed to the model as ``{column: value}``
        dicts, with missing values left out (River models take sparse dicts).
    model:
        Any object with ``predict_proba_one`` (classifiers) or ``predict_one``
        (regressors), e.g. a River pipeline or a :class:`PartialFitClassifier`.

    Examples
    --------
    >>> from river import linear_model
    >>> from loopml.core.signature import ColumnSpec
    >>> sig = Signature((ColumnSpec("x"),))
    >>> p = RiverPredictor(sig, linear_model.LogisticRegression(), name="ctr").load()
    >>> for _ in range(50):
    ...     p.learn_one({"x": 1.0}, True)
    ...     p.learn_one({"x": -1.0}, False)
    >>> p.predict({"x": [2.0, -2.0]}).round(2).tolist()
    [0.71, 0.29]
    >>> RiverPredictor.from_bytes(p.to_bytes()).load().predict({"x": [2.0]}).round(2).tolist()
    [0.71]
    """

    flavour = "river"

    def __init__(
        self, signature: Signature, model: Any, name: str = "model", version: int = 0
    ) -> None:
        super().__init__(signature, name=name, version=version)
        if not (hasattr(model, "predict_proba_one") or hasattr(model, "predict_one")):
            raise ValidationError(
                f"model {type(model).__name__} has neither predict_proba_one nor predict_one; "
                "pass a River estimator or wrap a partial_fit estimator in PartialFitClassifier",
                field="model",
            )
        self.model = model

    # -- learning ------------------------------------------------------------------------
    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        """Update the model with one labelled row (online flavours only)."""
        self.model.learn_one(x, y)

    # -- prediction ----------------------------------------------------------------------
    def _rows(self, columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        names = list(columns)
        values = [columns[n].tolist() for n in names]
        return [
            {n: v for n, v in zip(names, row, strict=True) if not _missing(v)}
            for row in zip(*values, strict=True)
        ]

    def _predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        rows = self._rows(columns)
        task = self.signature.task
        if task == "regression":
            return np.array([float(self.model.predict_one(r)) for r in rows], dtype=np.float64)
        classes = list(self.signature.classes or (False, True))
        probas = [self.model.predict_proba_one(r) for r in rows]
        if task == "multiclass":
            return np.array([[p.get(c, 0.0) for c in classes] for p in probas], dtype=np.float64)
        positive = classes[-1]
        return np.array([_positive(p, positive) for p in probas], dtype=np.float64)

    # -- persistence ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The artifact the registry stores: the model and its signature, pickled."""
        return save_model(self.model, self.signature)

    @classmethod
    def from_bytes(
        cls, data: bytes, name: str = "model", version: int = 0, signature: Signature | None = None
    ) -> RiverPredictor:
        """Rebuild from :meth:`to_bytes` output (only load artifacts whose hash you checked)."""
        blob = _unpickle(data)
        if signature is None and blob.get("signature") is None:
            raise ValidationError(
                "artifact carries no signature; pass signature= (the registry record has it)",
                field="signature",
            )
        sig = signature or Signature.from_dict(blob["signature"])
        return cls(sig, blob["model"], name=name, version=version)


def save_model(model: Any, signature: Signature | None = None) -> bytes:
    """Pickle an online model (River's own persistence) with an optional signature."""
    return pickle.dumps(
        {
            "format": _FORMAT,
            "model": model,
            "signature": signature.to_dict() if signature is not None else None,
        },
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def load_model(data: bytes) -> Any:
    """The model inside :func:`save_model` bytes; call only on hash-verified bytes."""
    return _unpickle(data)["model"]


def _unpickle(data: bytes) -> dict[str, Any]:
    try:
        blob = pickle.loads(data)  # noqa: S301 - the registry verifies sha256 first
    except Exception as exc:
        raise ValidationError(
            f"artifact is not a loopml River model ({type(exc).__name__}: {exc}); it must "
            "come from RiverPredictor.to_bytes() or loopml.predict.river.save_model()",
            field="artifact",
        ) from None
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
        raise ValidationError(
            f"artifact is not a loopml River model (format {_format_of(blob)!r}, expected "
            f"{_FORMAT!r}); it must come from RiverPredictor.to_bytes()",
            field="artifact",
        )
    return blob


def _predictor(model: Any, signature: Signature, name: str, version: int) -> RiverPredictor:
    return RiverPredictor(signature, model, name=name, version=version)


def _flavour() -> Any:
    from loopml.predict.flavours import Flavour

    return Flavour("river", save_model, load_model, _predictor)


#: How the registry saves, loads and serves River models (see loopml.predict.flavours).
FLAVOUR = _flavour()


class PartialFitClassifier:
    """A scikit-learn ``partial_fit`` classifier behind River's one/many protocol.

    Rows are dicts of raw attributes; categorical crosses are added, then a
    ``FeatureHasher`` maps them to a fixed-width sparse vector, so new items or users
    never change the model's shape. Mini-batches (``learn_many``) are where it shines:
    one ``partial_fit`` call per batch.

    >>> from sklearn.linear_model import SGDClassifier
    >>> clf = PartialFitClassifier(SGDClassifier(loss="log_loss", random_state=0), [False, True])
    >>> clf.predict_proba_one({"item_id": "i1"})
    {False: 0.5, True: 0.5}
    >>> for _ in range(20):
    ...     clf.learn_one({"item_id": "good"}, True)
    ...     clf.learn_one({"item_id": "bad"}, False)
    >>> clf.predict_proba_one({"item_id": "good"})[True] > 0.9
    True
    """

    def __init__(
        self,
        estimator: Any,
        classes: Sequence[Any] = (False, True),
        crosses: Sequence[tuple[str, str]] = (),
        n_features: int = 2**16,
    ) -> None:
        if not hasattr(estimator, "partial_fit"):
            raise ValidationError(
                f"estimator {type(estimator).__name__} has no partial_fit; use one that "
                "learns incrementally (SGDClassifier, Perceptron, MultinomialNB, ...)",
                field="estimator",
            )
        from sklearn.feature_extraction import FeatureHasher

        self.estimator = estimator
        self.classes = list(classes)
        self.crosses = [tuple(c) for c in crosses]
        self.n_features = n_features
        self._hasher = FeatureHasher(n_features=n_features, input_type="dict")
        self.fitted_ = False

    def _features(self, rows: list[dict[str, Any]]) -> Any:
        pairs = self.crosses
        prepared = []
        for x in rows:
            # drop None and NaN (NaN != NaN); booleans hash as numbers
            row = {
                k: (float(v) if v.__class__ is bool else v)
                for k, v in x.items()
                if v is not None and v == v
            }
            for a, b in pairs:
                if a in row and b in row:
                    row[f"{a}|{b}"] = f"{row[a]}|{row[b]}"
            prepared.append(row)
        return self._hasher.transform(prepared)

    def _fit(self, features: Any, y: list[Any]) -> None:
        # classes only on the first call: checking them again costs more than the update
        extra = {} if self.fitted_ else {"classes": self.classes}
        self.estimator.partial_fit(features, y, **extra)
        self.fitted_ = True

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        self._fit(self._features([x]), [y])

    def learn_many(self, X: Any, y: Any) -> None:  # noqa: N803 (River's signature)
        rows = X.to_dict("records") if hasattr(X, "to_dict") else list(X)
        self._fit(self._features(rows), list(y))

    def learn_dicts(self, rows: list[dict[str, Any]], y: list[Any]) -> None:
        """``learn_many`` on row dicts, skipping the pandas round trip."""
        self._fit(self._features(rows), list(y))

    def predict_proba_dicts(self, rows: list[dict[str, Any]]) -> list[dict[Any, float]]:
        """``predict_proba_one`` for many row dicts at once."""
        proba = self._proba(rows)
        return [dict(zip(self.classes, map(float, r), strict=True)) for r in proba]

    def _proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        if not self.fitted_:
            return np.full((len(rows), len(self.classes)), 1.0 / len(self.classes))
        proba = self.estimator.predict_proba(self._features(rows))
        order = [list(self.estimator.classes_).index(c) for c in self.classes]
        return proba[:, order]

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        row = self._proba([x])[0]
        return {c: float(p) for c, p in zip(self.classes, row, strict=True)}

    def predict_proba_many(self, X: Any) -> Any:  # noqa: N803
        import pandas as pd

        rows = X.to_dict("records") if hasattr(X, "to_dict") else list(X)
        return pd.DataFrame(self._proba(rows), columns=self.classes)

    def predict_one(self, x: dict[str, Any]) -> Any:
        proba = self.predict_proba_one(x)
        return max(proba, key=proba.get)

    def __repr__(self) -> str:
        return f"PartialFitClassifier({self.estimator!r}, crosses={self.crosses})"


def _positive(proba: dict[Any, float], positive: Any) -> float:
    if positive in proba:
        return float(proba[positive])
    if not proba:
        return 0.5  # an untrained model knows nothing yet
    return 0.0


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _format_of(blob: Any) -> Any:
    return blob.get("format") if isinstance(blob, dict) else type(blob).__name__
