"""Default preprocessing, added only where an estimator cannot cope on its own.

A plain ``LogisticRegression`` cannot read category strings or missing numbers; a
LightGBM model or a loopml baseline can. :func:`auto_preprocess` asks the estimator
(its scikit-learn tags and parameters) and wraps it in a one-hot encoder and an
imputer-plus-scaler only when needed. A user's own ``Pipeline`` is left untouched:
whoever wrote the preprocessing owns it.
"""

from __future__ import annotations

from typing import Any

from loopml.core.signature import Signature


def takes_categories(estimator: Any) -> bool:
    """True if the estimator reads category columns itself (LightGBM, HGB, baselines)."""
    from sklearn.utils import get_tags

    if _is_lightgbm(estimator) or "categorical_features" in _params(estimator):
        return True
    try:
        tags = get_tags(estimator).input_tags
    except (AttributeError, TypeError, ValueError):
        return False
    return bool(tags.categorical or tags.string)


def takes_missing(estimator: Any) -> bool:
    """True if the estimator accepts NaN in numeric columns."""
    from sklearn.utils import get_tags

    if _is_lightgbm(estimator):
        return True
    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except (AttributeError, TypeError, ValueError):
        return False


def wants_category_dtype(estimator: Any) -> bool:
    """Native categorical learners want pandas ``category`` dtype; others plain strings.

    A meta-estimator answers for itself through a ``wants_category_dtype()`` method.
    """
    own = getattr(estimator, "wants_category_dtype", None)
    if callable(own):
        return bool(own())
    return _is_lightgbm(estimator) or "categorical_features" in _params(estimator)


def auto_preprocess(estimator: Any, signature: Signature, has_missing: bool) -> Any:
    """``estimator``, or a Pipeline that one-hot encodes / imputes and scales first.

    >>> from sklearn.linear_model import LogisticRegression
    >>> from loopml.core.signature import ColumnSpec, Signature
    >>> sig = Signature((ColumnSpec("x"), ColumnSpec("c", "category")))
    >>> [name for name, _ in auto_preprocess(LogisticRegression(), sig, True).steps]
    ['prepare', 'logisticregression']
    """
    from sklearn.base import clone
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if isinstance(estimator, Pipeline):
        return estimator
    categories = [c.name for c in signature.inputs if c.kind == "category"]
    numbers = [c.name for c in signature.inputs if c.kind != "category"]
    need_encoding = bool(categories) and not takes_categories(estimator)
    need_imputing = has_missing and bool(numbers) and not takes_missing(estimator)
    if not (need_encoding or need_imputing):
        return estimator
    parts = []
    if numbers:
        if need_imputing or not takes_missing(estimator):
            numeric = make_pipeline(
                SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
            )
        else:
            numeric = "passthrough"
        parts.append(("numbers", numeric, numbers))
    if categories:
        if need_encoding:
            encoder = OneHotEncoder(handle_unknown="ignore", min_frequency=5)
            parts.append(("categories", encoder, categories))
        else:
            parts.append(("categories", "passthrough", categories))
    prepare = ColumnTransformer(parts, remainder="drop")
    return Pipeline([("prepare", prepare), (type(estimator).__name__.lower(), clone(estimator))])


def _is_lightgbm(estimator: Any) -> bool:
    try:
        import lightgbm as lgb
    except ImportError:  # pragma: no cover - lightgbm is a core dependency
        return False
    return isinstance(estimator, lgb.LGBMModel)


def _params(estimator: Any) -> dict[str, Any]:
    try:
        return estimator.get_params(deep=False)
    except (AttributeError, TypeError):
        return {}
