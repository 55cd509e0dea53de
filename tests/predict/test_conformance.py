"""check_predictor over every flavour this package owns, loaded back from the registry."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.core.errors import ValidationError
from loopml.core.signature import ColumnSpec, Signature
from loopml.predict import check_predictor, load_predictor
from loopml.predict.checks import CHECKS
from loopml.predict.predictor import Predictor
from loopml.registry import Registry
from loopml.train.baselines import PopularityBaseline, PriorBaseline
from loopml.train.datasets import time_split
from loopml.train.ensemble import SchemaEnsemble
from loopml.train.synthetic import FEATURES, make_clicks
from loopml.train.trainer import train

CANDIDATES = {
    "logistic": (lambda: LogisticRegression(max_iter=300), FEATURES),
    "lightgbm": (lambda: lgb.LGBMClassifier(n_estimators=20, n_jobs=1, verbose=-1), FEATURES),
    "prior": (PriorBaseline, FEATURES),
    "popularity": (PopularityBaseline, ["item_id"]),
    "schema": (
        lambda: SchemaEnsemble(LogisticRegression(max_iter=300)),
        [*FEATURES, "schema_version", "dwell_prev"],
    ),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("conformance")
    clicks = make_clicks(2500, seed=5)
    splits = time_split(clicks, valid_days=3, test_days=3)
    registry = Registry(f"sqlite:///{root}/meta.db", str(root / "artifacts"))
    for name, (make, features) in CANDIDATES.items():
        result = train(make(), splits, features=features, label="clicked", name=name)
        result.register(registry)
    sample = splits.test.head(60).copy()
    sample.loc[sample.index[0], "country"] = "never-seen"
    return registry, sample


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_every_flavour_passes_the_conformance_suite(world, name):
    registry, sample = world
    ran = check_predictor(lambda: load_predictor(registry, name, 1), sample)
    assert ran == list(CHECKS)


def test_multiclass_model_passes_too(tmp_path: Path):
    clicks = make_clicks(1500, seed=9).assign(bucket=lambda f: f.position % 3)
    splits = time_split(clicks, valid_days=3, test_days=3)
    features = [f for f in FEATURES if f != "position"]
    registry = Registry(f"sqlite:///{tmp_path}/meta.db", str(tmp_path / "artifacts"))
    for est in (
        LogisticRegression(max_iter=300),
        lgb.LGBMClassifier(n_estimators=10, n_jobs=1, verbose=-1),
    ):
        result = train(
            est, splits, features=features, label="bucket", task="multiclass", name="bucket"
        )
        mv = result.register(registry)
        check_predictor(
            lambda v=mv.version: load_predictor(registry, "bucket", v), splits.test.head(40)
        )


def test_regression_models_pass_too(tmp_path: Path):
    from sklearn.linear_model import LinearRegression

    clicks = make_clicks(1500, seed=4)
    splits = time_split(clicks, valid_days=3, test_days=3)
    registry = Registry(f"sqlite:///{tmp_path}/meta.db", str(tmp_path / "artifacts"))
    for est in (LinearRegression(), lgb.LGBMRegressor(n_estimators=10, n_jobs=1, verbose=-1)):
        result = train(
            est, splits, features=FEATURES, label="p_true", task="regression", name="ptrue"
        )
        mv = result.register(registry)
        check_predictor(
            lambda v=mv.version: load_predictor(registry, "ptrue", v), splits.test.head(40)
        )


class _Noisy(Predictor):
    """Broken on purpose: predictions depend on a random draw."""

    def _predict(self, columns):
        return np.random.default_rng().random(len(columns["x"]))


class _RowMismatch(Predictor):
    """Broken on purpose: its single-row path disagrees with its batch path."""

    def _predict(self, columns):
        return 1 / (1 + np.exp(-np.nan_to_num(columns["x"])))

    def predict_one(self, row):
        self.signature.validate({k: [v] for k, v in row.items()})
        return 0.5


def _sample():
    import pandas as pd

    return pd.DataFrame({"x": np.linspace(-2, 2, 10), "c": ["a", "b"] * 5})


def test_the_suite_catches_broken_predictors():
    sig = Signature((ColumnSpec("x"), ColumnSpec("c", "category")))
    with pytest.raises(AssertionError, match="failed check 'reload'"):
        check_predictor(lambda: _Noisy(sig), _sample())
    with pytest.raises(AssertionError, match="failed check 'single_row'"):
        check_predictor(lambda: _RowMismatch(sig), _sample())
    ran = check_predictor(lambda: _RowMismatch(sig), _sample(), skip=["single_row"])
    assert "single_row" not in ran and "missing_column" in ran
    with pytest.raises(ValidationError, match="unknown check"):
        check_predictor(lambda: _RowMismatch(sig), _sample(), skip=["nope"])
