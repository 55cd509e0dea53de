"""SchemaEnsemble: one model per log schema version, routed or blended."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from loopml.core.errors import ValidationError
from loopml.train.ensemble import SchemaEnsemble
from loopml.train.synthetic import FEATURES
from loopml.train.trainer import train

COLUMNS = [*FEATURES, "schema_version", "dwell_prev"]


def test_each_version_gets_its_own_features_and_the_new_field_helps(clicks):
    X, y = clicks[COLUMNS], clicks.clicked.to_numpy()
    model = SchemaEnsemble(LogisticRegression(max_iter=500)).fit(X, y)
    assert model.versions_ == [1, 2]
    assert "dwell_prev" not in model.features_[1] and "dwell_prev" in model.features_[2]
    new = (clicks.schema_version == 2).to_numpy()
    p = model.predict_proba(X)[:, 1]
    shifted = X.copy()
    shifted.loc[new, "dwell_prev"] += 60.0  # longer dwell -> more clicks, only for v2 rows
    q = model.predict_proba(shifted)[:, 1]
    assert (q[new] > p[new]).mean() > 0.95
    assert np.array_equal(q[~new], p[~new])  # old rows are scored by the old model only
    old_only = SchemaEnsemble(LogisticRegression(max_iter=500)).fit(X.drop(columns="dwell_prev"), y)
    from loopml.train.metrics import evaluate

    with_field = evaluate("binary", y[new], p[new])["log_loss"]
    without = evaluate(
        "binary", y[new], old_only.predict_proba(X.drop(columns="dwell_prev"))[new, 1]
    )["log_loss"]
    assert with_field < without


def test_match_routes_unknown_versions_and_blend_mixes(clicks):
    half = clicks.iloc[::2]  # both schema versions, half the fitting time
    X, y = half[COLUMNS], half.clicked.to_numpy()
    match = SchemaEnsemble(LogisticRegression(max_iter=500)).fit(X, y)
    rows = X[X.schema_version == 2].head(20).copy()
    future = rows.assign(schema_version=3)  # a newer schema than any model: newest model
    assert np.allclose(match.predict_proba(future), match.predict_proba(rows))
    blend = SchemaEnsemble(
        LogisticRegression(max_iter=500), mode="blend", weights={1: 1.0, 2: 3.0}
    ).fit(X, y)
    p_old = blend.models_[1].predict_proba(rows[blend.features_[1]])[:, 1]
    p_new = blend.models_[2].predict_proba(rows[blend.features_[2]])[:, 1]
    assert np.allclose(blend.predict_proba(rows)[:, 1], (p_old + 3 * p_new) / 4)
    old_rows = X[X.schema_version == 1].head(5)
    assert np.allclose(blend.predict_proba(old_rows), match.predict_proba(old_rows))


def test_is_a_scikit_learn_estimator_and_explains_bad_input(clicks):
    model = SchemaEnsemble(LogisticRegression(), features={1: ["user_ctr"], 2: ["user_ctr"]})
    assert clone(model).get_params()["features"] == {1: ["user_ctr"], 2: ["user_ctr"]}
    with pytest.raises(ValidationError, match="column 'schema_version'"):
        model.fit(clicks[FEATURES], clicks.clicked)
    with pytest.raises(ValidationError, match="no entry for schema version 2"):
        SchemaEnsemble(LogisticRegression(), features={1: ["user_ctr"]}).fit(
            clicks[COLUMNS], clicks.clicked
        )
    with pytest.raises(ValidationError, match="mode must be one of"):
        SchemaEnsemble(LogisticRegression(), mode="vote").fit(clicks[COLUMNS], clicks.clicked)
    X = pd.DataFrame({"schema_version": [1, 1, 2, 2], "x": [0.0, 1.0, 0.0, 1.0]})
    with pytest.raises(ValidationError, match="every version needs every class"):
        SchemaEnsemble(LogisticRegression()).fit(X, [0, 1, 0, 0])


def test_trains_registers_and_serves_through_the_trainer(splits):
    est = SchemaEnsemble(lgb.LGBMClassifier(n_estimators=30, n_jobs=1, verbose=-1))
    result = train(est, splits, features=COLUMNS, label="clicked", name="schema")
    assert result.flavour == "sklearn"
    assert result.model.categorical_ == "category"  # LightGBM inside reads categories natively
    assert result.metrics["test"]["roc_auc"] > 0.6
    p = result.predictor().predict(splits.test)
    assert np.abs(p - result.model.predict_proba(splits.test[COLUMNS])[:, 1]).max() < 1e-12
