"""The native LightGBM path equals the scikit-learn wrapper to 1e-9, batch and single row."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from loopml.core.errors import NotFittedError, SignatureError, ValidationError
from loopml.core.signature import Signature
from loopml.predict.frames import to_frame
from loopml.predict.lightgbm import SMALL_BATCH, LightGBMPredictor
from loopml.train.frame_model import FrameModel
from loopml.train.synthetic import FEATURES, make_clicks


@pytest.fixture(scope="module")
def clicks():
    return make_clicks(3000, seed=21)


def _fit(clicks, label="clicked", cls=lgb.LGBMClassifier, **kw):
    est = cls(n_estimators=60, num_leaves=15, n_jobs=1, verbose=-1, **kw)
    return FrameModel(est).fit(clicks[FEATURES], clicks[label])


def _messy(clicks) -> pd.DataFrame:
    """Rows with unseen categories and missing values, as production sends them."""
    frame = clicks[FEATURES].head(200).copy().astype({"country": object, "device": object})
    frame.loc[frame.index[:10], "country"] = "fr"  # never seen in training
    frame.loc[frame.index[10:20], "device"] = None
    frame.loc[frame.index[20:30], "user_ctr"] = np.nan
    return frame


def test_binary_parity_with_predict_proba_including_unseen_and_missing(clicks):
    model = _fit(clicks)
    p = LightGBMPredictor(model, model.signature_).load()
    frame = _messy(clicks)
    expected = model.predict_proba(frame)[:, 1]
    wrapper = model.estimator_.predict_proba(to_frame(model.signature_, frame, "category"))[:, 1]
    assert np.abs(expected - wrapper).max() == 0.0  # FrameModel adds nothing on top
    assert np.abs(p.predict(frame) - expected).max() < 1e-9  # booster path (> SMALL_BATCH)
    assert np.abs(p.predict(frame.head(SMALL_BATCH)) - expected[:SMALL_BATCH]).max() < 1e-9
    for i, row in enumerate(frame.head(40).to_dict(orient="records")):
        row = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        assert abs(p.predict_one(row) - expected[i]) < 1e-9


def test_multiclass_regression_and_downsampled_parity(clicks):
    features = [f for f in FEATURES if f != "position"]
    multi = FrameModel(lgb.LGBMClassifier(n_estimators=20, n_jobs=1, verbose=-1)).fit(
        clicks[features], clicks.position % 3
    )
    p = LightGBMPredictor(multi, multi.signature_).load()
    expected = multi.predict_proba(clicks[features].head(100))
    assert p.predict(clicks.head(100)).shape == (100, 3)
    assert np.abs(p.predict(clicks.head(100)) - expected).max() < 1e-9
    assert np.abs(p.predict_one(clicks[features].iloc[0].to_dict()) - expected[0]).max() < 1e-9
    reg = _fit(clicks, label="p_true", cls=lgb.LGBMRegressor)
    r = LightGBMPredictor(reg, reg.signature_).load()
    assert (
        np.abs(r.predict(clicks.head(100)) - reg.predict(clicks[FEATURES].head(100))).max() < 1e-9
    )
    down = FrameModel(
        lgb.LGBMClassifier(n_estimators=20, n_jobs=1, verbose=-1), downsample_rate=0.3
    ).fit(clicks[FEATURES], clicks.clicked)
    d = LightGBMPredictor(down, down.signature_).load()
    want = down.predict_proba(clicks[FEATURES].head(50))[:, 1]
    assert np.abs(d.predict(clicks.head(50)) - want).max() < 1e-9
    assert abs(d.predict_one(clicks[FEATURES].iloc[3].to_dict()) - want[3]) < 1e-9


def test_bare_lgbm_classifier_fitted_on_pandas_categories(clicks):
    X = clicks[FEATURES].astype({"country": "category", "device": "category"})
    clf = lgb.LGBMClassifier(n_estimators=30, n_jobs=1, verbose=-1).fit(X, clicks.clicked)
    sig = Signature.infer(X, classes=(0, 1))
    p = LightGBMPredictor(clf, sig).load()
    assert np.abs(p.predict(X.head(100)) - clf.predict_proba(X.head(100))[:, 1]).max() < 1e-9


def test_single_row_edge_cases_take_the_validating_path(clicks):
    model = _fit(clicks)
    p = LightGBMPredictor(model, model.signature_).load()
    row = clicks[FEATURES].iloc[0].to_dict()
    base = p.predict_one(row)
    assert p.predict_one({**row, "position": str(row["position"])}) == pytest.approx(base)
    assert p.predict_one({**row, "extra": "ignored"}) == base
    with pytest.raises(SignatureError, match="missing column"):
        p.predict_one({k: v for k, v in row.items() if k != "device"})
    with pytest.raises(SignatureError, match="expects numbers"):
        p.predict_one({**row, "hour": "noon"})
    with pytest.raises(SignatureError, match="infinity"):
        p.predict_one({**row, "user_ctr": float("inf")})


def test_concurrent_single_rows_agree(clicks):
    model = _fit(clicks)
    p = LightGBMPredictor(model, model.signature_).load()
    rows = clicks[FEATURES].head(64).to_dict(orient="records")
    expected = p.predict(clicks.head(64))
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(p.predict_one, rows * 8))
    assert np.abs(np.array(got) - np.tile(expected, 8)).max() < 1e-9


def test_lifecycle_and_mismatches_are_explained(clicks):
    model = _fit(clicks)
    p = LightGBMPredictor(model, model.signature_).load()
    p.unload()
    with pytest.raises(NotFittedError, match="not loaded"):
        p.predict_one(clicks[FEATURES].iloc[0].to_dict())
    assert p.load().predict(clicks.head(3)).shape == (3,)
    narrow = Signature(model.signature_.inputs[:2], classes=(0, 1))
    with pytest.raises(ValidationError, match="does not declare"):
        LightGBMPredictor(model, narrow).load()
    regression_sig = Signature(model.signature_.inputs, task="regression")
    with pytest.raises(ValidationError, match="does not match"):
        LightGBMPredictor(model, regression_sig).load()

    def objective(y_true, y_pred):
        return y_pred - y_true, np.ones_like(y_pred)

    custom = lgb.LGBMRegressor(n_estimators=3, objective=objective, verbose=-1, n_jobs=1)
    custom.fit(clicks[["user_ctr"]], clicks.p_true)
    with pytest.raises(ValidationError, match="custom objective"):
        LightGBMPredictor(custom, Signature.infer(clicks[["user_ctr"]], task="regression"))


def test_a_given_signature_without_categories_is_completed_at_fit(clicks):
    sig = Signature.infer(clicks[FEATURES], classes=(0, 1))  # categories not recorded
    est = lgb.LGBMClassifier(n_estimators=10, n_jobs=1, verbose=-1)
    model = FrameModel(est, signature=sig).fit(clicks[FEATURES], clicks.clicked)
    device = model.signature_.inputs[FEATURES.index("device")]
    assert device.categories == ("android", "ios", "web")
    p = LightGBMPredictor(model, model.signature_).load()
    want = model.predict_proba(clicks[FEATURES].head(50))[:, 1]
    assert np.abs(p.predict(clicks.head(50)) - want).max() < 1e-9
