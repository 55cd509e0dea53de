"""How a missing category crosses into ONNX, where string tensors cannot hold None or NaN.

loopml serves categories as object strings with ``None`` for missing (see
:mod:`loopml.predict.frames`), and edge clients send ``""`` instead. A copy of the
fitted pipeline is rewritten so that ``""`` behaves in the graph exactly as ``None``
behaves in scikit-learn:

- an imputer whose ``missing_values`` is ``None`` imputes ``""``;
- an imputer whose ``missing_values`` is NaN never sees NaN at serving time (None is
  not NaN to scikit-learn), so its copy matches nothing;
- an encoder that learned ``None`` as a category learns ``""`` in its place, and one
  that learned NaN gets a value no client sends.

The parity check then proves, on held-out rows, that the rewrite kept behaviour.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

#: What an edge client sends for a missing category.
MISSING = ""
#: A category value that no client ever sends (stands in for NaN, which ONNX lacks).
NEVER = "\x00loopml:nan"


def for_onnx(model: Any) -> Any:
    """A deep copy of ``model`` with its string imputers and encoders rewritten."""
    from sklearn.impute import SimpleImputer

    model = copy.deepcopy(model)
    for est in walk(model):
        # exactly SimpleImputer: subclasses (loopml's CategoryImputer) bring their own converter
        if type(est) is SimpleImputer and _is_text(getattr(est, "statistics_", None)):
            est.missing_values = MISSING if est.missing_values is None else NEVER
        categories = getattr(est, "categories_", None)
        if isinstance(categories, list) and type(est).__name__ in (
            "OneHotEncoder",
            "OrdinalEncoder",
        ):
            est.categories_ = [_spell(c) for c in categories]
    return model


def walk(est: Any) -> list[Any]:
    """``est`` and every estimator nested in its pipelines, column and feature unions."""
    found = [est]
    children: list[Any] = []
    if hasattr(est, "steps"):
        children = [s for _, s in est.steps]
    elif hasattr(est, "transformers_"):
        children = [t for _, t, _ in est.transformers_ if not isinstance(t, str)]
    elif hasattr(est, "transformer_list"):
        children = [t for _, t in est.transformer_list]
    for child in children:
        found.extend(walk(child))
    return found


def _spell(categories: np.ndarray) -> np.ndarray:
    if categories.dtype != object:
        return categories
    return np.array([_value(c) for c in categories.tolist()], dtype=object)


def _value(value: Any) -> Any:
    if value is None:
        return MISSING
    if isinstance(value, float) and value != value:
        return NEVER
    return value


def _is_text(stats: Any) -> bool:
    return stats is not None and np.asarray(stats).dtype.kind in "OUS"
