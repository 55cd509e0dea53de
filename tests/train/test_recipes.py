"""train_table: the `loopml train` path from a table on disk to an aliased registry version."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.core.errors import NotFoundError, ValidationError
from loopml.predict import load_predictor
from loopml.registry import Registry
from loopml.train.recipes import ESTIMATORS, default_features, make_estimator, train_table
from loopml.train.tracking import RunStore


def test_parquet_to_production_alias(clicks, tmp_path: Path, metadata_url, artifact_root):
    path = tmp_path / "training.parquet"
    clicks.drop(columns=["p_true"]).to_parquet(path)
    registry = Registry(metadata_url, artifact_root)
    runs = RunStore(metadata_url, artifact_root)
    result, mv = train_table(
        path,
        name="ctr",
        kind="lightgbm",
        label="clicked",
        valid_days=3,
        test_days=3,
        params={"n_estimators": 30, "n_jobs": 1},
        registry=registry,
        tracker=runs,
        alias="production",
        progress=False,
    )
    assert mv.version == 1 and registry.resolve("ctr", "production") == 1
    assert "user_id" not in result.signature.names and "item_id" not in result.signature.names
    assert "dwell_prev" in result.signature.names
    assert runs.get(result.run_id).params["kind"] == "lightgbm"
    (move,) = registry.alias_history("ctr")
    assert result.run_id in move.reason
    assert load_predictor(registry, "ctr").predict(
        result.model.signature_.validate(clicks.head(3))
    ).shape == (3,)


def test_named_estimators_and_errors(clicks, tmp_path: Path):
    for kind in ESTIMATORS:
        assert hasattr(make_estimator(kind), "fit")
    assert default_features(clicks, "clicked", "ts", "popularity") == ["item_id"]
    with pytest.raises(ValidationError, match="did you mean 'lightgbm'"):
        make_estimator("lightgmb")
    with pytest.raises(NotFoundError, match="does not exist"):
        train_table(tmp_path / "missing.parquet", name="x")
    with pytest.raises(ValidationError, match="alias needs a registry"):
        train_table(clicks, name="x", kind="prior", label="clicked", alias="production")
