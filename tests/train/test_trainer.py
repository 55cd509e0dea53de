"""train(): one path for LightGBM, scikit-learn pipelines and baselines, tracked and registrable."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from threadpoolctl import threadpool_limits

from loopml.core.errors import ValidationError
from loopml.predict import load_predictor
from loopml.registry import Registry
from loopml.train.baselines import PopularityBaseline, PriorBaseline
from loopml.train.synthetic import FEATURES
from loopml.train.tracking import RunStore
from loopml.train.trainer import leaderboard, train


def _lgbm(**kw):
    return lgb.LGBMClassifier(n_estimators=40, num_leaves=15, n_jobs=1, verbose=-1, **kw)


def test_lightgbm_model_is_native_categorical_and_beats_the_baselines(splits):
    result = train(_lgbm(), splits, features=FEATURES, label="clicked", name="ctr")
    assert result.flavour == "lightgbm"
    est = result.model.estimator_
    assert isinstance(est, lgb.LGBMClassifier)
    assert est.booster_.pandas_categorical == [["de", "jp", "kr", "us"], ["android", "ios", "web"]]
    prior = train(PriorBaseline(), splits, features=FEATURES, label="clicked", name="prior")
    pop = train(PopularityBaseline(), splits, features=["item_id"], label="clicked", name="pop")
    board = leaderboard([prior, pop, result])
    assert board.index[0] == "ctr" and board.index[-1] == "prior"
    assert board.loc["prior", "roc_auc"] == 0.5
    assert board.loc["ctr", "normalized_entropy"] < 1.0
    assert result.signature.names == FEATURES
    assert result.signature.classes == (0, 1)
    country = result.signature.inputs[FEATURES.index("country")]
    assert country.kind == "category" and country.categories == ("de", "jp", "kr", "us")


def test_plain_sklearn_estimator_gets_preprocessing_inside_the_model(splits):
    result = train(
        LogisticRegression(max_iter=500),
        splits,
        features=FEATURES,
        label="clicked",
        name="logistic",
    )
    assert result.flavour == "sklearn"
    assert [name for name, _ in result.model.estimator_.steps] == ["prepare", "logisticregression"]
    assert result.metrics["test"]["roc_auc"] > 0.65
    frame = splits.test[FEATURES].copy()
    frame.loc[frame.index[:5], "country"] = "never-seen"  # unseen category: handled, not fatal
    frame.loc[frame.index[:5], "user_ctr"] = np.nan
    assert np.isfinite(result.model.predict_proba(frame)).all()
    with threadpool_limits(1):  # OpenMP on a shared 2-core machine: one thread is faster
        hgb = train(
            HistGradientBoostingClassifier(max_iter=20),
            splits,
            features=FEATURES,
            label="clicked",
            name="hgb",
        )
    assert hgb.model.categorical_ == "category"  # native categorical support is used
    assert hgb.model.estimator_.is_categorical_.sum() == 2


def test_tracked_run_records_lineage_params_metrics_and_model(splits, metadata_url, artifact_root):
    runs = RunStore(metadata_url, artifact_root)
    result = train(
        _lgbm(),
        splits,
        features=FEATURES,
        label="clicked",
        name="ctr",
        tracker=runs,
        params={"note": "first"},
        lineage={"feature_views": {"user_ctr_7d": 2}, "parent_version": 4},
        progress=True,
    )
    rec = runs.get(result.run_id)
    assert rec.status == "finished" and rec.ended_at >= rec.started_at
    assert rec.params["note"] == "first" and rec.params["n_train"] == len(splits.train)
    assert rec.params["n_estimators"] == 40 and rec.params["estimator"] == "LGBMClassifier"
    assert rec.metrics["test"]["roc_auc"] == pytest.approx(result.metrics["test"]["roc_auc"])
    lineage = rec.lineage
    assert lineage["feature_views"] == {"user_ctr_7d": 2} and lineage["parent_version"] == 4
    assert lineage["data"]["train"]["start"] == splits.train.ts.min().isoformat()
    assert len(lineage["dataset_fingerprint"]) == 16
    assert lineage["code_revision"].startswith(("git:", "loopml:"))
    assert runs.artifact(result.run_id, "model.bin") == result.to_bytes()


def test_registered_model_loads_and_predicts_like_the_trained_one(
    splits, metadata_url, artifact_root
):
    registry = Registry(metadata_url, artifact_root)
    result = train(_lgbm(), splits, features=FEATURES, label="clicked", name="ctr")
    mv = result.register(registry, description="nightly", parent_version=None)
    assert mv.metrics == result.metrics and mv.lineage["task"] == "binary"
    registry.set_alias("ctr", "production", mv.version)
    predictor = load_predictor(registry, "ctr", "production")
    expected = result.model.predict_proba(splits.test[FEATURES])[:, 1]
    assert np.abs(predictor.predict(splits.test) - expected).max() < 1e-9
    assert predictor.sha256 == mv.sha256 and predictor.version == mv.version


def test_downsampling_is_corrected_inside_the_model(splits):
    full = train(_lgbm(), splits, features=FEATURES, label="clicked", name="full")
    down = train(
        _lgbm(),
        splits,
        features=FEATURES,
        label="clicked",
        name="down",
        downsample_rate=0.25,
        seed=1,
    )
    assert down.params["n_train"] < 0.5 * len(splits.train)
    assert down.model.downsample_rate == 0.25
    base = splits.test.clicked.mean()
    mean_full = full.metrics["test"]["mean_score"]
    mean_down = down.metrics["test"]["mean_score"]
    assert abs(mean_down - base) < 0.35 * base and abs(mean_down - mean_full) < 0.35 * base
    raw = down.model.estimator_.predict_proba(down.model._prepare(splits.test[FEATURES]))[
        :, 1
    ].mean()
    assert raw > 2 * base  # without the correction it would over-predict
    native = down.predictor().predict(splits.test)
    assert np.abs(native - down.model.predict_proba(splits.test[FEATURES])[:, 1]).max() < 1e-9


def test_a_failing_fit_is_recorded_as_failed(splits, metadata_url, artifact_root):
    runs = RunStore(metadata_url, artifact_root)
    with pytest.raises(ValueError):
        train(
            LogisticRegression(C=-1.0),
            splits,
            features=FEATURES,
            label="clicked",
            name="broken",
            tracker=runs,
        )
    (rec,) = runs.list_runs(name="broken")
    assert rec.status == "failed" and "C" in rec.error


def test_multiclass_and_regression_tasks(splits):
    features = [f for f in FEATURES if f != "position"]
    result = train(
        LogisticRegression(max_iter=300),
        splits,
        features=features,
        label="position",
        task="multiclass",
        name="pos",
    )
    assert set(result.metrics["test"]) >= {"accuracy", "macro_f1", "cross_entropy"}
    assert result.signature.classes == tuple(range(1, 11))
    proba = result.predictor().predict(splits.test.head(5))
    assert proba.shape == (5, 10) and np.allclose(proba.sum(axis=1), 1)
    reg = train(
        LinearRegression(),
        splits,
        features=["user_ctr", "item_quality"],
        label="p_true",
        task="regression",
        name="p",
    )
    assert reg.metrics["test"]["rmse"] < 0.1 and reg.metrics["test"]["r2"] > 0.3


def test_bad_arguments_are_refused_before_any_work(splits):
    with pytest.raises(ValidationError, match=r"missing column\(s\) \['nope'\]"):
        train(PriorBaseline(), splits, features=["nope"], label="clicked", name="x")
    with pytest.raises(ValidationError, match="leaks the answer"):
        train(PriorBaseline(), splits, features=["clicked"], label="clicked", name="x")
    with pytest.raises(ValidationError, match="non-empty list"):
        train(PriorBaseline(), splits, features="country", label="clicked", name="x")
    with pytest.raises(ValidationError, match="unknown task"):
        train(PriorBaseline(), splits, features=FEATURES, label="clicked", name="x", task="rank")
    with pytest.raises(ValidationError, match="not allowed"):
        train(PriorBaseline(), splits, features=FEATURES, label="clicked", name="../x")
