"""Feature transformations for a model pipeline (seed 002): missing values, scaling,
bucketing and categorical encodings, built from scikit-learn's own transformers.

Everything stays a plain scikit-learn ``ColumnTransformer`` so it pickles, clones and
converts to ONNX with skl2onnx (the edge bundle needs that). Three small helpers fill
gaps in skl2onnx and carry their converters in :mod:`loopml.features.onnx_export`:
:class:`Log1pScaler` (``FunctionTransformer(np.log1p)``), :class:`MissingFlags` (a
0/1 missing indicator per numeric column), :class:`CategoryImputer` (missing
categories become the category ``"__missing__"``; in ONNX send them as ``""``) and
:class:`HashEncoder` (``FeatureHasher`` with output names).

>>> import pandas as pd
>>> pre = make_preprocessor(["clicks"], ["country"], scaling="log", encoding="onehot")
>>> frame = pd.DataFrame({"clicks": [0.0, 3.0, None], "country": ["KR", None, "KR"]})
>>> pre.fit_transform(frame).round(3).tolist()  # the missing click -> median 1.5
[[0.0, 0.0, 1.0, 0.0], [1.386, 0.0, 0.0, 1.0], [0.916, 1.0, 1.0, 0.0]]
>>> list(pre.get_feature_names_out())
['num__clicks', 'missing__clicks', 'cat__country_KR', 'cat__country___missing__']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction import FeatureHasher
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)

from loopml.core.errors import ValidationError

SCALINGS = ("standard", "minmax", "log", "none")
ENCODINGS = ("onehot", "ordinal", "hash")
MISSING = "__missing__"


class Log1pScaler(FunctionTransformer):
    """``log(1 + x)``: compresses heavy-tailed counts (seed 002 "log scaling").

    Meant for non-negative features such as counts; values below -1 become NaN.
    """

    def __init__(self) -> None:
        super().__init__(
            func=np.log1p, inverse_func=np.expm1, validate=True, feature_names_out="one-to-one"
        )


class MissingFlags(MissingIndicator):
    """A 0/1 column per input saying the value was missing (always one per column, so the
    output width never depends on the training data)."""

    def __init__(self) -> None:
        super().__init__(features="all")

    def transform(self, X: Any) -> Any:  # noqa: N803 - scikit-learn's argument name
        return super().transform(X).astype(np.float64)

    def fit_transform(self, X: Any, y: Any = None) -> Any:  # noqa: N803
        return self.fit(X, y).transform(X)

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        """One flag per input column, named after it (``missing__clicks``)."""
        names = input_features if input_features is not None else self.feature_names_in_
        return np.asarray(list(names), dtype=object)


class HashEncoder(FeatureHasher):
    """``FeatureHasher`` over one categorical column, with named outputs (``country_0``...)."""

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        prefix = str(input_features[0]) if input_features is not None else "hash"
        return np.asarray([f"{prefix}_{i}" for i in range(self.n_features)], dtype=object)


class CategoryImputer(SimpleImputer):
    """Missing categories (None or NaN) become ``fill_value``; values become strings."""

    def __init__(self, fill_value: str = MISSING) -> None:
        super().__init__(missing_values=np.nan, strategy="constant", fill_value=fill_value)

    def fit(self, X: Any, y: Any = None) -> CategoryImputer:  # noqa: N803
        return super().fit(_as_text(X), y)

    def transform(self, X: Any) -> Any:  # noqa: N803
        return super().transform(_as_text(X))


def _as_text(X: Any) -> Any:  # noqa: N803
    import pandas as pd

    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=object))
    return frame.apply(lambda col: col.astype("str")).astype(object).where(frame.notna(), np.nan)


def make_preprocessor(
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    scaling: str = "standard",
    encoding: str = "onehot",
    buckets: dict[str, int] | None = None,
    hash_features: int = 16,
) -> ColumnTransformer:
    """A ``ColumnTransformer`` for numeric and categorical columns.

    Parameters
    ----------
    numeric:
        Median-imputed, then scaled by ``scaling``: ``"standard"`` (z-score),
        ``"minmax"`` (to [0, 1]), ``"log"`` (log1p) or ``"none"``. Each also gets a 0/1
        missing-indicator column.
    categorical:
        Missing -> ``"__missing__"``, then ``encoding``: ``"onehot"`` (unknown categories
        -> all zeros), ``"ordinal"`` (integers in sorted order, unknown -> -1) or
        ``"hash"`` (``hash_features`` columns per feature, no vocabulary to store).
    buckets:
        ``{numeric column: n_bins}``: those columns are cut into quantile bins instead of
        scaled (one-hot bins with ``encoding="onehot"``, else the bin number).

    Raises
    ------
    ValidationError
        For an unknown option, a bucket column that is not numeric, or overlapping lists.
    """
    numeric, categorical = list(numeric), list(categorical)
    _check_option("scaling", scaling, SCALINGS)
    _check_option("encoding", encoding, ENCODINGS)
    buckets = dict(buckets or {})
    if not numeric and not categorical:
        raise ValidationError("give at least one numeric or categorical column", field="numeric")
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise ValidationError(
            f"columns {both} are listed as both numeric and categorical; pick one",
            field="categorical",
        )
    for column, bins in buckets.items():
        if column not in numeric:
            raise ValidationError(
                f"buckets: {column!r} is not one of the numeric columns {numeric}; bucketing "
                "applies to numeric columns",
                field="buckets",
            )
        if not isinstance(bins, int) or isinstance(bins, bool) or bins < 2:
            raise ValidationError(
                f"buckets[{column!r}] must be an integer >= 2, got {bins!r}", field="buckets"
            )
    if not isinstance(hash_features, int) or hash_features < 1:
        raise ValidationError(
            f"hash_features must be a positive integer, got {hash_features!r}",
            field="hash_features",
        )

    parts: list[tuple[str, Any, list[str]]] = []
    scaled = [c for c in numeric if c not in buckets]
    if scaled:
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        scaler = {"standard": StandardScaler, "minmax": MinMaxScaler, "log": Log1pScaler}
        if scaling != "none":
            steps.append(("scale", scaler[scaling]()))
        parts.append(("num", Pipeline(steps), scaled))
    for column, bins in buckets.items():
        cut = KBinsDiscretizer(
            n_bins=bins,
            encode="onehot-dense" if encoding == "onehot" else "ordinal",
            strategy="quantile",
            quantile_method="averaged_inverted_cdf",
        )
        steps = [("impute", SimpleImputer(strategy="median")), ("bin", cut)]
        parts.append((f"bucket_{column}", Pipeline(steps), [column]))
    if numeric:
        parts.append(("missing", MissingFlags(), numeric))
    if categorical and encoding == "hash":
        for column in categorical:
            hasher = HashEncoder(n_features=hash_features, input_type="string")
            steps = [("impute", CategoryImputer()), ("hash", hasher)]
            parts.append((f"hash_{column}", Pipeline(steps), [column]))
    elif categorical:
        encoder = (
            OneHotEncoder(handle_unknown="ignore", sparse_output=False)
            if encoding == "onehot"
            else OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        )
        steps = [("impute", CategoryImputer()), ("encode", encoder)]
        parts.append(("cat", Pipeline(steps), categorical))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def _check_option(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValidationError(
            f"{name}={value!r} is not an option; valid: {', '.join(map(repr, valid))}",
            field=name,
        )
