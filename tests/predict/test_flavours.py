"""Flavours: save/load round trips, the explicit mapping, and hash-before-unpickle."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.core.errors import IntegrityError, NotFoundError, ValidationError
from loopml.core.hashing import sha256_bytes
from loopml.predict import (
    FLAVOURS,
    LightGBMModel,
    LightGBMPredictor,
    SklearnPredictor,
    get_flavour,
    load_model,
    load_predictor,
    save_model,
)
from loopml.registry import Registry
from loopml.train.datasets import time_split
from loopml.train.synthetic import FEATURES, make_clicks
from loopml.train.trainer import train


@pytest.fixture(scope="module")
def splits():
    return time_split(make_clicks(2500, seed=11), valid_days=3, test_days=3)


@pytest.fixture(scope="module")
def trained(splits):
    lr = train(
        LogisticRegression(max_iter=300), splits, features=FEATURES, label="clicked", name="lr"
    )
    gbm = train(
        lgb.LGBMClassifier(n_estimators=25, n_jobs=1, verbose=-1),
        splits,
        features=FEATURES,
        label="clicked",
        name="gbm",
    )
    return {"sklearn": lr, "lightgbm": gbm}


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path}/meta.db", str(tmp_path / "artifacts"))


class _Evil:
    """Unpickling this creates a directory: proof that bytes were deserialised."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_mapping_is_explicit_and_lazy():
    assert FLAVOURS["sklearn"] == "loopml.predict.sklearn:FLAVOUR"
    assert FLAVOURS["lightgbm"] == "loopml.predict.lightgbm:FLAVOUR"
    for name in FLAVOURS:  # every line of the mapping resolves to a Flavour of that name
        assert get_flavour(name).name == name
    assert get_flavour("lightgbm").name == "lightgbm"
    with pytest.raises(ValidationError, match="did you mean 'lightgbm'"):
        get_flavour("lightgmb")


@pytest.mark.parametrize("flavour", ["sklearn", "lightgbm"])
def test_round_trip_through_bytes_predicts_identically(trained, splits, flavour):
    result = trained[flavour]
    data = save_model(result.model, flavour)
    model = load_model(data, flavour, sha256=sha256_bytes(data))
    expected = result.model.predict_proba(splits.test[FEATURES])
    assert np.abs(model.predict_proba(splits.test[FEATURES]) - expected).max() < 1e-9
    assert save_model(result.model, flavour) == data  # deterministic bytes, stable hash


def test_lightgbm_artifact_is_not_a_pickle(trained):
    data = save_model(trained["lightgbm"].model, "lightgbm")
    header = data.split(b"\n", 1)[0]
    assert header.startswith(b"{") and b'"format": "loopml.lightgbm/1"' in header
    assert b"tree" in data and not data.startswith(b"\x80")
    model = LightGBMModel.from_bytes(data)
    assert model.categorical == {
        "country": ["de", "jp", "kr", "us"],
        "device": ["android", "ios", "web"],
    }


def test_hash_is_checked_before_any_unpickling(tmp_path: Path, registry: Registry, trained):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"format": "loopml.sklearn/1", "sklearn": "x", "model": _Evil(marker)})
    with pytest.raises(IntegrityError, match="refusing to deserialise"):
        load_model(evil, "sklearn", sha256="0" * 64)
    assert not marker.exists()
    mv = trained["sklearn"].register(registry, name="ctr")
    registry.artifacts.local_path(mv.artifact_key).write_bytes(evil)
    with pytest.raises(IntegrityError, match="modified after registration"):
        load_predictor(registry, "ctr", mv.version)
    assert not marker.exists()


def test_load_predictor_picks_the_flavour_and_reports_provenance(registry, trained, splits):
    for flavour, result in trained.items():
        mv = result.register(registry, name=f"m-{flavour}")
        registry.set_alias(mv.name, "production", mv.version)
        p = load_predictor(registry, mv.name)  # default ref: production
        assert isinstance(p, SklearnPredictor if flavour == "sklearn" else LightGBMPredictor)
        assert p.ready and p.flavour == flavour and p.model_version == mv
        assert p.sha256 == mv.sha256 and (p.name, p.version) == (mv.name, mv.version)
        assert p.predict(splits.test).shape == (len(splits.test),)
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        load_predictor(registry, "m-sklearn", "staging")


def test_wrong_flavour_bytes_are_refused_with_a_hint(trained):
    data = save_model(trained["lightgbm"].model, "lightgbm")
    with pytest.raises(ValidationError, match="another flavour"):
        load_model(data, "sklearn", sha256=sha256_bytes(data))
    other = save_model(trained["sklearn"].model, "sklearn")
    with pytest.raises(ValidationError, match="another flavour"):
        load_model(other, "lightgbm", sha256=sha256_bytes(other))
    with pytest.raises(ValidationError, match="use flavour 'sklearn'"):
        save_model(trained["sklearn"].model, "lightgbm")
