"""MLflow's scoring protocol on /invocations, as an MLflow client sends it (httpx)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from .conftest import FEATURES


def _expected(served, X):
    return served.ctr.predict_proba(X)[:, 1]


@pytest.mark.parametrize("fmt", ["dataframe_split", "dataframe_records", "instances", "inputs"])
def test_every_mlflow_json_format(served, fmt):
    X = served.X.iloc[:5]
    payload = {
        "dataframe_split": {"columns": FEATURES, "data": X[FEATURES].to_numpy().tolist()},
        "dataframe_records": X.to_dict(orient="records"),
        "instances": X.to_dict(orient="records"),
        "inputs": {f: X[f].tolist() for f in FEATURES},
    }[fmt]
    r = httpx.post(f"{served.url}/invocations?model=ctr", json={fmt: payload})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], _expected(served, X), rtol=1e-9)


def test_csv_and_model_in_path(served):
    X = served.X.iloc[:3]
    csv = X.to_csv(index=False)
    r = httpx.post(
        f"{served.url}/v1/models/ctr/invocations", content=csv, headers={"content-type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], _expected(served, X), rtol=1e-9)


def test_mlflow_errors_name_the_problem(served):
    r = httpx.post(f"{served.url}/invocations", json={"instances": [[1, 2, 3, 4]]})
    assert r.status_code == 400 and "model" in r.json()["error"]  # two models: which one?
    r = httpx.post(
        f"{served.url}/invocations?model=ctr",
        json={"dataframe_split": {"columns": ["f0"], "data": [[1]]}},
    )
    assert r.status_code == 400 and "f1" in r.json()["error"]
    r = httpx.post(f"{served.url}/invocations?model=ctr", json={"instances": [], "inputs": []})
    assert r.status_code == 400 and "exactly one" in r.json()["error"]
