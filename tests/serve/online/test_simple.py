"""The simple JSON route, parameter- and condition-based serving, online feature lookups."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd

from .conftest import FEATURES


def test_one_row_and_many_rows(served):
    X = served.X.iloc[:6]
    row = X.iloc[0].to_dict()
    r = httpx.post(f"{served.url}/v1/models/ctr/predict", json={"features": row})
    assert r.status_code == 200, r.text
    doc = r.json()
    expected = served.ctr.predict_proba(pd.DataFrame([row]))[0, 1]
    assert abs(doc["prediction"] - expected) < 1e-9
    assert doc["label"] == int(expected >= 0.7) and doc["fallback"] is None
    assert doc["version"] == 1 and r.headers["x-request-id"] == doc["request_id"]
    r = httpx.post(
        f"{served.url}/v1/models/ctr/predict", json={"rows": X.to_dict(orient="records")}
    )
    np.testing.assert_allclose(
        r.json()["predictions"], served.ctr.predict_proba(X)[:, 1], rtol=1e-9
    )
    r = httpx.post(
        f"{served.url}/v1/models/ctr/predict",
        json={"columns": {f: X[f].tolist() for f in FEATURES}},
    )
    assert len(r.json()["labels"]) == 6
    r = httpx.post(
        f"{served.url}/v1/models/kind/predict", json={"rows": X.to_dict(orient="records")}
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], served.kind.predict_proba(X), rtol=1e-9)
    assert r.json()["labels"] == served.kind.predict(X).tolist()


def test_condition_based_routing_by_header(served):
    row = served.X.iloc[1].to_dict()
    r = httpx.post(
        f"{served.url}/v1/models/ctr/predict",
        json={"features": row},
        headers={"x-segment": "multi"},
    )
    doc = r.json()
    assert doc["model"] == "kind" and doc["routed_from"] == "ctr"
    np.testing.assert_allclose(
        doc["prediction"], served.kind.predict_proba(pd.DataFrame([row]))[0], rtol=1e-9
    )
    r = httpx.post(
        f"{served.url}/v1/models/ctr/predict",
        json={"features": row},
        headers={"x-segment": "unknown-value"},
    )
    assert r.json()["model"] == "ctr"


def test_prediction_cache_hits_on_repeat(served):
    row = {f: 0.123 for f in FEATURES}
    first = httpx.post(f"{served.url}/v1/models/ctr/predict", json={"features": row}).json()
    second = httpx.post(f"{served.url}/v1/models/ctr/predict", json={"features": row}).json()
    assert first["cached"] is False and second["cached"] is True
    assert first["prediction"] == second["prediction"]
    metrics = httpx.get(f"{served.url}/metrics").text
    assert 'loopml_cache_lookups_total{model="ctr",result="hit"}' in metrics
    ratio = [ln for ln in metrics.splitlines() if ln.startswith("loopml_cache_hit_ratio ")]
    assert ratio and 0.0 < float(ratio[0].split()[1]) <= 1.0


def test_entity_lookup_uses_the_online_store(served):
    from loopml.storage.online import OnlineStore

    store = OnlineStore(served.cfg.url("online"))
    values = {f: float(v) for f, v in served.X.iloc[7].items()}
    store.write("user_feats", "user_id", {"u42": values}, as_of="2026-01-01T00:00:00")
    store.close()
    r = httpx.post(f"{served.url}/v1/models/ctr/predict", json={"entity_id": "u42"})
    assert r.status_code == 200, r.text
    expected = served.ctr.predict_proba(pd.DataFrame([values]))[0, 1]
    assert abs(r.json()["prediction"] - expected) < 1e-9
    r = httpx.post(f"{served.url}/v1/models/ctr/predict", json={"entities": {"user_id": "nobody"}})
    assert r.status_code == 400 and "nobody" in r.json()["error"]
