"""The online models the streaming learner can run, by short name.

River models learn one event at a time (``learn_one``); scikit-learn estimators with
``partial_fit`` join through :class:`loopml.predict.river.PartialFitClassifier`. Every
model is a River-style object: ``predict_proba_one``/``learn_one`` and, for mini-batch
updates, ``predict_proba_many``/``learn_many``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

from loopml.core.errors import ValidationError, did_you_mean

#: Interaction features the CTR models use by default: tastes differ by who and what.
DEFAULT_CROSSES: tuple[tuple[str, str], ...] = (
    ("segment", "category"),
    ("age_band", "category"),
    ("country", "category"),
    ("device", "category"),
)

MODELS = ("ftrl", "hoeffding", "hoeffding_adaptive", "logreg", "sgd")


def make_model(
    name: str = "logreg",
    crosses: Sequence[tuple[str, str]] = DEFAULT_CROSSES,
    seed: int = 0,
    **params: Any,
) -> Any:
    """A fresh online binary classifier.

    Parameters
    ----------
    name:
        ``logreg`` (SGD logistic regression), ``ftrl`` (logistic regression with the
        FTRL-Proximal optimiser used for CTR at scale), ``hoeffding`` /
        ``hoeffding_adaptive`` (incremental decision trees; the adaptive one replaces
        branches when the data drifts), ``sgd`` (scikit-learn ``SGDClassifier`` with
        log loss, hashed features, through ``partial_fit``).
    crosses:
        Pairs of categorical columns to cross before the model.
    params:
        Passed to the estimator (e.g. ``lr`` for ``logreg``, ``alpha`` for ``ftrl``,
        ``grace_period`` for the trees).

    >>> make_model("logreg", crosses=()).predict_proba_one({"item_id": "i1"})
    {False: 0.5, True: 0.5}
    >>> make_model("svm")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    loopml.core.errors.ValidationError: model 'svm' is unknown; valid: 'ftrl', 'hoeffding', ...
    """
    from river import linear_model, optim, tree

    from loopml.serve.stream.features import Crosses, OneHot

    if name not in MODELS:
        raise ValidationError(
            f"model {name!r} is unknown; {did_you_mean(name, MODELS)}",
            field="model",
        )
    front = Crosses(crosses)
    try:
        if name == "logreg":
            lr = params.pop("lr", 0.05)
            model = linear_model.LogisticRegression(optimizer=optim.SGD(lr), **params)
            return front | OneHot() | model
        if name == "ftrl":
            opt = optim.FTRLProximal(
                alpha=params.pop("alpha", 0.1),
                beta=params.pop("beta", 1.0),
                l1=params.pop("l1", 0.0),
                l2=params.pop("l2", 1.0),
            )
            return front | OneHot() | linear_model.LogisticRegression(optimizer=opt, **params)
        if name == "hoeffding":
            params.setdefault("grace_period", 200)
            return front | tree.HoeffdingTreeClassifier(**params)
        if name == "hoeffding_adaptive":
            params.setdefault("grace_period", 200)
            return front | tree.HoeffdingAdaptiveTreeClassifier(seed=seed, **params)
        from sklearn.linear_model import SGDClassifier

        from loopml.predict.river import PartialFitClassifier

        params.setdefault("alpha", 1e-5)
        sgd = SGDClassifier(loss="log_loss", random_state=seed, **params)
        return PartialFitClassifier(sgd, classes=[False, True], crosses=crosses)
    except TypeError as exc:
        raise ValidationError(f"model {name!r}: bad parameter ({exc})", field="model") from None


def supports_many(model: Any) -> bool:
    """Whether ``model`` can predict and learn a pandas mini-batch at once.

    A River pipeline always has ``learn_many``; what counts is its final step.
    """
    steps = getattr(model, "steps", None)
    if isinstance(steps, dict) and steps:
        model = list(steps.values())[-1]
    return hasattr(model, "learn_many") and hasattr(model, "predict_proba_many")


def split_stateless(model: Any) -> tuple[list[Any], Any]:
    """``(front, final)`` when every step before the last is stateless, else ``([], model)``.

    Stateless steps (``Crosses``, ``OneHot``) give the same output at prediction and at
    learning time, so the learner transforms each example once, on arrival, and feeds the
    result to the final estimator twice: half the feature work of calling the pipeline's
    ``predict_proba_one`` and ``learn_one`` separately, with identical results.
    """
    steps = getattr(model, "steps", None)
    if not isinstance(steps, dict) or len(steps) < 2:
        return [], model
    values = list(steps.values())
    front = values[:-1]
    if not all(getattr(step, "stateless", False) for step in front):
        return [], model
    return front, values[-1]


def proba_scorer(model: Any) -> Callable[[dict[str, Any]], float | None]:
    """``P(y == True)`` of one (already transformed) example; None when the model has no opinion.

    The learner scores every example before learning it. For River's logistic regression
    with its log loss this reads the model's own weights and intercept and computes what
    ``predict_proba_one`` computes (``sigmoid(weights . x + intercept)``, the same dot
    product in the same order, River's clipped sigmoid) without building the probability
    dict, a few times cheaper; the model and its ``learn_one`` stay River's. Any other
    model is asked through ``predict_proba_one``.

    >>> from river import linear_model
    >>> model = linear_model.LogisticRegression()
    >>> model.learn_one({"a": 1.0, "b": 2.0}, True)
    >>> x = {"a": 1.0, "b": 2.0}
    >>> proba_scorer(model)(x) == model.predict_proba_one(x)[True]
    True
    """
    from river import linear_model, optim

    if type(model) is linear_model.LogisticRegression and type(model.loss) is optim.losses.Log:
        exp = math.exp

        def logistic(x: dict[str, Any]) -> float:
            z = model._weights.dot(x) + model.intercept
            if z < -30:
                return 0.0
            if z > 30:
                return 1.0
            return 1 / (1 + exp(-z))

        return logistic
    predict = model.predict_proba_one

    def generic(x: dict[str, Any]) -> float | None:
        proba = predict(x)
        if not proba:
            return None
        return proba.get(True, 0.0)

    return generic


def learn_rows(model: Any, rows: list[dict[str, Any]], ys: list[Any]) -> None:
    """One mini-batch update from row dicts: ``learn_dicts``, or River's ``learn_many``.

    River's ``learn_many`` takes a frame; built from sparse one-hot rows (a few hundred
    columns, a dozen set per row) the frame costs more than the update. For River's
    logistic regression the batch goes in as a sparse matrix instead: the model's own
    ``_fit`` step (optimizer, intercept, L1) runs unchanged and only the gradient of
    ``learn_many`` (``X @ w``, the loss gradient, ``X.T @ g / n``, L2) is evaluated
    sparsely, which gives ``learn_many``'s update to floating-point noise (tested).
    Other models get ``learn_many`` on a dense frame.
    """
    if hasattr(model, "learn_dicts"):
        model.learn_dicts(rows, ys)
        return
    from river import linear_model

    if type(model) is linear_model.LogisticRegression:
        _learn_sparse(model, rows, ys)
        return
    import pandas as pd

    model.learn_many(dense_frame(rows), pd.Series(ys))


def _learn_sparse(model: Any, rows: list[dict[str, Any]], ys: list[Any]) -> None:
    """River's ``GLM.learn_many`` (scalar sample weight 1) with a sparse design matrix."""
    import numpy as np
    from river.utils import VectorDict

    columns, matrix = sparse_rows(rows)
    y = np.asarray(ys)

    def gradient(cols: list[str], y_true: Any, w: float) -> tuple[dict[str, float], float]:
        weights = model._weights.to_numpy(cols)
        loss_gradient = model.loss.gradient(
            y_true=y_true, y_pred=matrix @ weights + model.intercept
        )
        loss_gradient = np.clip(loss_gradient * w, -model.clip_gradient, model.clip_gradient)
        grad = (matrix.T @ loss_gradient) / matrix.shape[0]
        if model.l2:
            grad += model.l2 * weights
        # a VectorDict lets optimizers with a vector step (SGD) update in one call; the
        # others step over it as over River's plain dict, with the same arithmetic
        return VectorDict(dict(zip(cols, grad.tolist(), strict=True))), loss_gradient.mean()

    saved = model._enter_learn_mode(set(columns))
    try:
        model._fit(x=columns, y=y, w=1, get_grad=gradient)
    finally:
        model._exit_learn_mode(saved)


def sparse_rows(rows: list[dict[str, Any]]) -> tuple[list[str], Any]:
    """(columns in order of first appearance, CSR matrix) of row dicts; absent means 0.

    >>> cols, m = sparse_rows([{"a": 1.0}, {"b": 2, "a": 3}])
    >>> cols, m.toarray().tolist()
    (['a', 'b'], [[1.0, 0.0], [3.0, 2.0]])
    """
    import numpy as np
    from scipy import sparse

    keys = list(chain.from_iterable(rows))
    index = dict.fromkeys(keys)
    columns = list(index)
    index.update(zip(columns, range(len(columns)), strict=True))
    codes = np.fromiter(map(index.__getitem__, keys), dtype=np.int32, count=len(keys))
    values = np.fromiter(
        chain.from_iterable(row.values() for row in rows), dtype=np.float64, count=len(keys)
    )
    indptr = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, rows), dtype=np.int32, count=len(rows)), out=indptr[1:])
    return columns, sparse.csr_matrix((values, codes, indptr), shape=(len(rows), len(columns)))


def dense_frame(rows: list[dict[str, Any]]) -> Any:
    """A float DataFrame of row dicts: one column per key (first-appearance order), zeros elsewhere.

    >>> dense_frame([{"a": 1.0}, {"b": 2, "a": 3}]).to_dict("list")
    {'a': [1.0, 3.0], 'b': [0.0, 2.0]}
    """
    import pandas as pd

    columns, matrix = sparse_rows(rows)
    return pd.DataFrame(matrix.toarray(), columns=columns, copy=False)
