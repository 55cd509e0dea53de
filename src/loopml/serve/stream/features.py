"""Stateless River transformers that turn raw event attributes into model inputs.

They live inside the model pipeline (not in the learner) so a snapshot is
self-contained: whoever loads it feeds the raw columns an impression carries
(``item_id``, ``position``, ``category``, ``segment``, ...) and gets the same features
the learner trained on. Both work one event at a time and on pandas mini-batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from river import base


class Crosses(base.MiniBatchTransformer):
    """Add ``a|b`` interaction features for each named pair of categorical columns.

    A cross such as ``segment|category`` lets a linear model learn that one user segment
    prefers one content category, which is what a preference shift changes.

    >>> Crosses([("segment", "category")]).transform_one({"segment": "organic", "category": "news"})
    {'segment': 'organic', 'category': 'news', 'segment|category': 'organic|news'}
    """

    #: Learns nothing: the learner may transform once at arrival and reuse the result.
    stateless = True

    def __init__(self, pairs: Sequence[tuple[str, str]] = ()) -> None:
        self.pairs = [tuple(p) for p in pairs]

    def transform_one(self, x: dict[str, Any]) -> dict[str, Any]:
        out = dict(x)
        for a, b in self.pairs:
            va, vb = x.get(a), x.get(b)
            if va is not None and vb is not None:
                out[f"{a}|{b}"] = f"{va}|{vb}"
        return out

    def learn_many(self, X: Any) -> None:  # noqa: N803 (River's signature)
        """Stateless: nothing to learn."""

    def transform_many(self, X: Any) -> Any:  # noqa: N803
        X = X.copy()
        for a, b in self.pairs:
            if a in X.columns and b in X.columns:
                X[f"{a}|{b}"] = X[a].astype(str) + "|" + X[b].astype(str)
        return X


class OneHot(base.MiniBatchTransformer):
    """Strings become ``name=value`` indicators; numbers and booleans pass through.

    Unlike River's ``OneHotEncoder`` it keeps numeric features as they are, so one
    pipeline takes mixed raw columns, and unseen values simply add a new weight.

    >>> OneHot().transform_one({"item_id": "i7", "position": 2, "missing": None})
    {'item_id=i7': 1.0, 'position': 2}
    """

    stateless = True

    def transform_one(self, x: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in x.items():
            if isinstance(value, str):
                out[f"{key}={value}"] = 1.0
            elif value is not None:
                out[key] = value
        return out

    def learn_many(self, X: Any) -> None:  # noqa: N803
        """Stateless: nothing to learn."""

    def transform_many(self, X: Any) -> Any:  # noqa: N803
        import pandas as pd

        text = [c for c in X.columns if X[c].dtype == object or pd.api.types.is_string_dtype(X[c])]
        if not text:
            return X.astype(float)
        dummies = pd.get_dummies(X[text], prefix_sep="=", dtype=float)
        numeric = X.drop(columns=text).astype(float)
        return pd.concat([numeric, dummies], axis=1).fillna(0.0)


def note_kinds(kinds: dict[str, str], x: dict[str, Any]) -> None:
    """Record in ``kinds`` the kind of each raw column of ``x`` seen for the first time.

    A snapshot's signature is built from them (strings are categories).

    >>> kinds = {}
    >>> note_kinds(kinds, {"item": "i1", "flag": True, "score": 0.5})
    >>> kinds
    {'item': 'category', 'flag': 'bool', 'score': 'float'}
    """
    for key, value in x.items():
        if key not in kinds:
            kinds[key] = (
                "category"
                if isinstance(value, str)
                else "bool"
                if isinstance(value, bool)
                else "float"
            )


def compile_front(steps: Sequence[Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """One function equal to applying the stateless ``steps`` in order.

    The learner transforms every example once, so this runs once per event. The CTR
    models' front (``Crosses`` then ``OneHot``) becomes one pass that writes the
    one-hot names directly, with the same keys, values and key order as the two steps
    (key order matters: it is the order River sums the weights in).

    >>> steps = [Crosses([("segment", "category")]), OneHot()]
    >>> x = {"segment": "paid", "category": "news", "position": 2}
    >>> compile_front(steps)(x)
    {'segment=paid': 1.0, 'category=news': 1.0, 'position': 2, 'segment|category=paid|news': 1.0}
    >>> compile_front(steps)(x) == steps[1].transform_one(steps[0].transform_one(x))
    True
    """
    steps = list(steps)
    if len(steps) == 2 and type(steps[0]) is Crosses and type(steps[1]) is OneHot:
        return _crossed_one_hot(steps[0], steps[1])
    if not steps:
        return _same

    def chain(x: dict[str, Any]) -> dict[str, Any]:
        for step in steps:
            x = step.transform_one(x)
        return x

    return chain


def _crossed_one_hot(
    crosses: Crosses, one_hot: OneHot
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    pairs = [(a, b, f"{a}|{b}=") for a, b in crosses.pairs]
    names = frozenset(f"{a}|{b}" for a, b in crosses.pairs)

    def transform(x: dict[str, Any]) -> dict[str, Any]:
        if not names.isdisjoint(x):  # a raw column named like a cross: the two steps decide
            return one_hot.transform_one(crosses.transform_one(x))
        out: dict[str, Any] = {}
        for key, value in x.items():
            if isinstance(value, str):
                out[f"{key}={value}"] = 1.0
            elif value is not None:
                out[key] = value
        for a, b, prefix in pairs:
            va = x.get(a)
            if va is not None:
                vb = x.get(b)
                if vb is not None:
                    out[f"{prefix}{va}|{vb}"] = 1.0
        return out

    return transform


def _same(x: dict[str, Any]) -> dict[str, Any]:
    return x
