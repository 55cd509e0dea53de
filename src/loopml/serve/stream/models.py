"""The online models the streaming learner can run, by short name.

River models learn one event at a time (``learn_one``); scikit-learn estimators with
``partial_fit`` join through :class:`loopml.predict.river.PartialFitClassifier`. Every
model is a River-style object: ``predict_proba_one``/``learn_one`` and, for mini-batch
updates, ``predict_proba_many``/``learn_many``.
"""

from __future__ import annotations

from collections.abc import Sequence
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
