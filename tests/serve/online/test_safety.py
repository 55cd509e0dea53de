"""Bad input never crashes the server: 4xx naming the field, body limits, tokens, names."""

from __future__ import annotations

import gzip

import httpx
import pytest

from .conftest import ADMIN_TOKEN, FEATURES

V2 = "/v2/models/ctr/infer"


def _tensor(name="f0", data=(1.0,), shape=None, datatype="FP64"):
    return {"name": name, "shape": shape or [len(data)], "datatype": datatype, "data": list(data)}


def _all(data=(1.0,), datatype="FP64"):
    return {"inputs": [_tensor(f, data, datatype=datatype) for f in FEATURES]}


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"inputs": []}', 400, "inputs"),
        (
            b'{"inputs": [{"name": "f0", "shape": [2], "datatype": "FP64", "data": [1]}]}',
            400,
            "needs 2 values",
        ),
        (
            b'{"inputs": [{"name": "f0", "shape": [1], "datatype": "FP99", "data": [1]}]}',
            400,
            "FP99",
        ),
        (
            b'{"inputs": [{"name": "f0", "shape": [1], "datatype": "FP64", "data": ["x"]}]}',
            400,
            "f0",
        ),
        (
            b'{"inputs": [{"name": "f0", "shape": [1, 1, 1], "datatype": "FP64", "data": [1]}]}',
            400,
            "f0",
        ),
        (
            b'{"inputs": [{"name": "f0", "shape": [-1], "datatype": "FP64", "data": [1]}]}',
            400,
            "shape",
        ),
        (
            b'{"inputs": [{"name": "f0", "shape": [1], "datatype": "FP64", "data": [NaN]}]}',
            400,
            "JSON",
        ),
    ],
)
def test_malformed_v2_requests_are_400_naming_the_problem(served, body, status, needle):
    r = httpx.post(served.url + V2, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


def test_wrong_dtype_inf_and_empty_batches(served):
    r = httpx.post(served.url + V2, json=_all(("abc",), "BYTES"))
    assert r.status_code == 400 and "f0" in r.json()["error"]
    r = httpx.post(
        f"{served.url}/v1/models/ctr/predict",
        content=b'{"features": {"f0": 1e309, "f1": 0, "f2": 0, "f3": 0}}',
    )
    assert r.status_code == 400  # overflows to infinity (or is refused by the JSON parser)
    r = httpx.post(
        f"{served.url}/v1/models/ctr/predict",
        json={"features": {"f0": "inf", "f1": 0, "f2": 0, "f3": 0}},
    )
    assert r.status_code == 400 and "infinity" in r.json()["error"]
    r = httpx.post(served.url + V2, json=_all(()))
    assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [0]
    r = httpx.post(f"{served.url}/v1/models/ctr/predict", json={"rows": []})
    assert r.status_code == 200 and r.json()["predictions"] == []
    # missing values are allowed (nullable features) and still predicted
    r = httpx.post(
        f"{served.url}/v1/models/ctr/predict",
        json={"features": {"f0": None, "f1": 0, "f2": 0, "f3": 0}},
    )
    assert r.status_code == 200 and 0.0 <= r.json()["prediction"] <= 1.0


def test_body_limit_plain_and_compressed(served):
    big = b'{"features": {"f0": 1, "pad": "' + b"x" * 70_000 + b'"}}'
    r = httpx.post(f"{served.url}/v1/models/ctr/predict", content=big)
    assert r.status_code == 413 and "limit" in r.json()["error"]
    bomb = gzip.compress(b'{"features": {"pad": "' + b"y" * 5_000_000 + b'"}}')
    assert len(bomb) < 65536
    r = httpx.post(
        f"{served.url}/v1/models/ctr/predict", content=bomb, headers={"content-encoding": "gzip"}
    )
    assert r.status_code == 413
    ok = gzip.compress(b'{"features": {"f0": 1, "f1": 0, "f2": 0, "f3": 0}}')
    r = httpx.post(
        f"{served.url}/v1/models/ctr/predict", content=ok, headers={"content-encoding": "gzip"}
    )
    assert r.status_code == 200
    r = httpx.post(
        f"{served.url}/v1/models/ctr/predict",
        content=b"\x00garbage",
        headers={"content-encoding": "gzip"},
    )
    assert r.status_code == 400


@pytest.mark.parametrize("name", ["..", "..%2F..%2Fetc", "a b", "%2e%2e", "-x", "x" * 200])
def test_no_path_traversal_via_model_names(served, name):
    r = httpx.post(f"{served.url}/v2/models/{name}/infer", json=_all())
    assert r.status_code in (400, 404), r.text
    assert "error" in r.json()


def test_admin_routes_require_the_bearer_token(served):
    url = f"{served.url}/v1/admin/models/ctr/reload"
    assert httpx.post(url).status_code == 401
    assert httpx.post(url, headers={"authorization": "Bearer wrong"}).status_code == 401
    r = httpx.post(url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200 and r.json()["version"] == 1
    r = httpx.post(f"{served.url}/v1/admin/models/ctr/aliases/staging", json={"version": 1})
    assert r.status_code == 401


def test_unknown_routes_and_methods_answer_json(served):
    r = httpx.get(f"{served.url}/nowhere")
    assert r.status_code == 404 and "nowhere" in r.json()["error"]
    r = httpx.delete(f"{served.url}/v2/health/live")
    assert r.status_code == 405 and "error" in r.json()
