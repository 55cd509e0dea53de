"""A small click-through world and a project whose registry holds the models edge exports.

Trained once per session (seconds), so each test exports real registered models:
``ctr_pipe`` (a scikit-learn pipeline: imputer, scaler, one-hot, ordinal encoder and a
logistic regression), ``ctr_gbm`` (loopml's LightGBM flavour on pandas categories,
trained on negatively downsampled data) and ``ctr_gb`` (the same pipeline ending in
scikit-learn gradient boosting).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.core.config import ProjectConfig, init_project
from loopml.core.signature import ColumnSpec, Signature

COUNTRIES = ("kr", "us", "jp", "de", "br")
DEVICES = ("ios", "android", "web")
NUMERIC = ("age", "hour", "item_ctr", "position")


def make_frame(n: int, seed: int) -> pd.DataFrame:
    """Features with missing values and a label whose true probability is known."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(38, 11, n).round(1),
            "hour": rng.integers(0, 24, n).astype(float),
            "item_ctr": rng.beta(2, 30, n),
            "position": rng.integers(1, 11, n).astype(float),
            "country": pd.Series(rng.choice(COUNTRIES, n), dtype=object),
            "device": pd.Series(rng.choice(DEVICES, n), dtype=object),
        }
    )
    frame.loc[rng.random(n) < 0.05, "age"] = np.nan
    frame.loc[rng.random(n) < 0.04, "country"] = None
    effect = {"kr": 0.6, "us": 0.1, "jp": -0.2, "de": -0.4, "br": 0.3}
    logit = (
        -2.0
        + 18 * frame["item_ctr"]
        - 0.12 * frame["position"]
        + 0.6 * np.sin(frame["hour"] / 24 * 2 * np.pi)
        + 0.02 * (frame["age"].fillna(38) - 38)
        + frame["country"].map(effect).fillna(0.0).astype(float)
        + (frame["device"] == "ios") * 0.3
    )
    frame["clicked"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def signature(categories: bool = False) -> Signature:
    cols = [ColumnSpec(n) for n in NUMERIC]
    cols += [
        ColumnSpec("country", "category", categories=COUNTRIES if categories else None),
        ColumnSpec("device", "category", categories=DEVICES if categories else None),
    ]
    return Signature(tuple(cols), task="binary", classes=(0, 1), output="probability of a click")


def pipeline(final):  # noqa: ANN001, ANN201
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    country = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    device = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    pre = ColumnTransformer(
        [
            ("num", numbers, list(NUMERIC)),
            ("country", country, ["country"]),
            ("device", device, ["device"]),
        ]
    )
    return Pipeline([("pre", pre), ("model", final)])


@pytest.fixture(scope="session")
def world() -> dict[str, pd.DataFrame]:
    return {"train": make_frame(6000, seed=1), "holdout": make_frame(3000, seed=2)}


@pytest.fixture(scope="session")
def edge_cfg(tmp_path_factory: pytest.TempPathFactory, world) -> ProjectConfig:  # noqa: ANN001
    """A project with three registered models, each aliased ``production``."""
    import lightgbm as lgb
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from loopml.predict.flavours import save_model
    from loopml.registry.registry import Registry

    root = tmp_path_factory.mktemp("edge") / "proj"
    init_project(root, name="edgetest")
    cfg = ProjectConfig.load(root)
    registry = Registry.from_config(cfg)
    train = world["train"]
    X, y = train[list(signature().names)], train["clicked"]

    pipe = pipeline(LogisticRegression(max_iter=500)).fit(X, y)
    registry.register(
        "ctr_pipe", save_model(pipe, "sklearn"), flavour="sklearn", signature=signature()
    )

    gb = pipeline(GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0))
    registry.register(
        "ctr_gb", save_model(gb.fit(X, y), "sklearn"), flavour="sklearn", signature=signature()
    )

    # LightGBM on pandas categories, trained on all clicks and 50% of non-clicks.
    keep = (y == 1) | (np.random.default_rng(3).random(len(y)) < 0.5)
    Xc = X[keep].copy()
    for col in ("country", "device"):
        Xc[col] = pd.Categorical(Xc[col], categories=COUNTRIES if col == "country" else DEVICES)
    gbm = lgb.LGBMClassifier(
        n_estimators=120, num_leaves=15, learning_rate=0.05, random_state=0, verbose=-1, n_jobs=1
    ).fit(Xc, y[keep])
    gbm.downsample_rate = 0.5
    registry.register(
        "ctr_gbm",
        save_model(gbm, "lightgbm"),
        flavour="lightgbm",
        signature=signature(categories=True),
    )

    for name in ("ctr_pipe", "ctr_gb", "ctr_gbm"):
        registry.set_alias(name, "production", 1, actor="test", reason="first launch")
    return cfg


@pytest.fixture(scope="session")
def npm_cache() -> Path:
    """Where onnxruntime-web is cached: the checkout's own (git-ignored) ``.loopml/`` state
    directory, as for a project rooted there, so only the first run on a machine pays for
    ``npm pack``; exports verify the cached files' hashes every time."""
    return Path(__file__).resolve().parents[3] / ".loopml" / "cache" / "npm"


@pytest.fixture(scope="session")
def kit():  # noqa: ANN201
    """The helpers above, for test modules (conftest is not importable by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(pipeline=pipeline, signature=signature, make_frame=make_frame)
