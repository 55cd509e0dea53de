"""End to end: events -> materialised online features -> a prediction by entity id alone."""

from __future__ import annotations

import datetime as dt

import httpx
import numpy as np
import pandas as pd

from .conftest import ServerThread, make_project, register

T0 = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)


def test_prediction_by_entity_id_equals_the_model_on_offline_features(tmp_path):
    import lightgbm as lgb

    from loopml.core.config import ProjectConfig
    from loopml.features.materialize import materialize_project
    from loopml.features.pointintime import point_in_time
    from loopml.features.views import default_catalog
    from loopml.logs.eventlog import EventLog
    from loopml.serve.online.app import create_app

    from ...features.test_materialize import write_events

    root = make_project(tmp_path / "proj", "[online]\ngrpc_port = 0\n")
    cfg = ProjectConfig.load(root)
    log = EventLog.from_config(cfg)
    write_events(log)
    view = default_catalog().get("user_activity")
    rng = np.random.default_rng(0)
    X = pd.DataFrame({c: rng.gamma(2.0, 2.0, size=300) for c in view.columns})
    y = (X[view.columns[1]] + rng.normal(size=300) > 4).astype(int)
    model = lgb.LGBMClassifier(n_estimators=10, num_leaves=7, verbose=-1).fit(X, y)
    register(cfg, "user_ctr", model, X, "lightgbm", (0, 1))
    materialize_project(cfg, ["user_activity"], as_of=T0, progress=False)
    offline = point_in_time(log, [view], pd.DataFrame({"user_id": ["u3"], "ts": [T0]}))
    expected = model.predict_proba(offline[view.columns].astype(float))[0, 1]
    server = ServerThread(create_app(cfg)).start()
    try:
        r = httpx.post(f"{server.url}/v1/models/user_ctr/predict", json={"entity_id": "u3"})
        assert r.status_code == 200, r.text
        assert abs(r.json()["prediction"] - expected) < 1e-9
        r = httpx.post(
            f"{server.url}/v1/models/user_ctr/predict", json={"entities": {"item_id": "i1"}}
        )
        assert r.status_code == 400 and "user_id" in r.json()["error"]
    finally:
        server.stop()
