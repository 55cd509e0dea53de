"""The models the demo compares: the seed's "can it be done without ML?" baselines,
a linear model on the seed-002 transformations, and LightGBM."""

from __future__ import annotations

from typing import Any

#: Columns of the training set the demo's models read (features by name).
NUMERIC = [
    "user_activity__impressions_7d",
    "user_activity__clicks_7d",
    "user_activity__ctr_7d",
    "user_activity__clicks_1d",
    "user_activity__secs_since_last_click",
    "item_popularity__impressions_7d",
    "item_popularity__clicks_7d",
    "item_popularity__ctr_7d",
    "item_popularity__age_days",
    "item_profile__length_s",
    "position",
    "hour",
]
CATEGORICAL = [
    "user_profile__country",
    "user_profile__age_band",
    "user_profile__segment",
    "item_profile__category",
]
FEATURES = NUMERIC + CATEGORICAL


def candidates(seed: int) -> dict[str, tuple[Any, list[str]]]:
    """name -> (unfitted estimator, the feature columns it reads)."""
    from lightgbm import LGBMClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from loopml.features.transforms import make_preprocessor
    from loopml.train.baselines import PopularityBaseline, PriorBaseline

    logistic = make_pipeline(
        make_preprocessor(NUMERIC, CATEGORICAL, scaling="log", encoding="onehot"),
        LogisticRegression(max_iter=300, C=1.0),
    )
    lgbm = LGBMClassifier(
        n_estimators=120,
        learning_rate=0.08,
        num_leaves=31,
        min_child_samples=50,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=seed,
        verbose=-1,
        n_jobs=2,
    )
    return {
        "prior": (PriorBaseline(), FEATURES),
        "popularity": (PopularityBaseline(key="item_id"), ["item_id"]),
        "logistic": (logistic, FEATURES),
        "lightgbm": (lgbm, FEATURES),
    }
