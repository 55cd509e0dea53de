"""The Open Inference Protocol over HTTP, with the standard V2 client (tritonclient.http)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from .conftest import FEATURES


def _client(served):
    import tritonclient.http as http

    return http.InferenceServerClient(url=served.url.removeprefix("http://"))


def _inputs(X, binary: bool):
    import tritonclient.http as http

    out = []
    for f in FEATURES:
        inp = http.InferInput(f, [len(X)], "FP64")
        inp.set_data_from_numpy(X[f].to_numpy(dtype=np.float64), binary_data=binary)
        out.append(inp)
    return out


def test_health_and_metadata_with_the_standard_client(served):
    client = _client(served)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("ctr")
    meta = client.get_model_metadata("ctr")
    assert [i["name"] for i in meta["inputs"]] == FEATURES
    assert [o["name"] for o in meta["outputs"]] == ["probability", "label"]
    assert meta["versions"] == ["1"]
    server = client.get_server_metadata()
    assert "binary_tensor_data" in server["extensions"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary-tensors", "json-tensors"])
def test_infer_matches_the_model_called_directly(served, binary):
    import tritonclient.http as http

    X = served.X.iloc[:25]
    client = _client(served)
    outputs = [
        http.InferRequestedOutput("probability", binary_data=binary),
        http.InferRequestedOutput("label", binary_data=binary),
    ]
    result = client.infer("ctr", _inputs(X, binary), outputs=outputs)
    expected = served.ctr.predict_proba(X)[:, 1]
    np.testing.assert_allclose(result.as_numpy("probability"), expected, rtol=1e-9)
    # threshold = 0.7 from [models.ctr], not the default 0.5
    np.testing.assert_array_equal(result.as_numpy("label"), (expected >= 0.7).astype(np.int64))


def test_infer_default_outputs_and_explicit_version(served):
    X = served.X.iloc[:3]
    client = _client(served)
    result = client.infer("kind", _inputs(X, True), model_version="1")
    expected = served.kind.predict_proba(X)
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=1e-9)
    np.testing.assert_array_equal(result.as_numpy("label"), expected.argmax(axis=1))


def test_one_2d_tensor_maps_columns_in_signature_order(served):
    X = served.X.iloc[:4]
    body = {
        "inputs": [
            {
                "name": "input",
                "shape": [4, 4],
                "datatype": "FP32",
                "data": X[FEATURES].to_numpy(np.float32).tolist(),
            }
        ],
        "unknown_top_level_field": {"ignored": True},
    }
    r = httpx.post(f"{served.url}/v2/models/ctr/versions/production/infer", json=body)
    assert r.status_code == 200, r.text
    got = np.array(r.json()["outputs"][0]["data"])
    expected = served.ctr.predict_proba(X.astype(np.float32).astype(np.float64))[:, 1]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_errors_are_json_with_status(served):
    r = httpx.post(
        f"{served.url}/v2/models/nope/infer",
        json={"inputs": [{"name": "f0", "shape": [1], "datatype": "FP64", "data": [1]}]},
    )
    assert r.status_code == 404
    assert "nope" in r.json()["error"] and "ctr" in r.json()["error"]
    r = httpx.get(f"{served.url}/v2/models/ctr/versions/9")
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.post(
        f"{served.url}/v2/models/ctr/infer",
        json={"inputs": [{"name": "f0", "shape": [1], "datatype": "FP64", "data": [1]}]},
    )
    assert r.status_code == 400
    assert "f1" in r.json()["error"]  # names the missing columns
    r = httpx.get(f"{served.url}/v2/health/live")
    assert r.status_code == 200 and r.json() == {"live": True}
