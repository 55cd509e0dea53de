"""The Open Inference Protocol over gRPC, with the standard V2 client (tritonclient.grpc)."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import FEATURES


def _client(served):
    import tritonclient.grpc as grpcclient

    return grpcclient.InferenceServerClient(url=f"127.0.0.1:{served.grpc_port}")


def test_grpc_health_metadata_and_infer(served):
    import tritonclient.grpc as grpcclient

    client = _client(served)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("ctr")
    meta = client.get_model_metadata("ctr")
    assert [i.name for i in meta.inputs] == FEATURES
    X = served.X.iloc[:10]
    inputs = []
    for f in FEATURES:
        inp = grpcclient.InferInput(f, [len(X)], "FP64")
        inp.set_data_from_numpy(X[f].to_numpy(dtype=np.float64))
        inputs.append(inp)
    result = client.infer("ctr", inputs, outputs=[grpcclient.InferRequestedOutput("probability")])
    np.testing.assert_allclose(
        result.as_numpy("probability"), served.ctr.predict_proba(X)[:, 1], rtol=1e-9
    )
    routed = client.infer("ctr", inputs, headers={"x-segment": "multi"})
    assert routed.get_response().model_name == "kind"  # condition-based routing over gRPC too
    multi = client.infer("kind", inputs)
    np.testing.assert_allclose(
        multi.as_numpy("probabilities"), served.kind.predict_proba(X), rtol=1e-9
    )


def test_grpc_errors_map_to_status_codes(served):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = _client(served)
    inp = grpcclient.InferInput("f0", [1], "FP64")
    inp.set_data_from_numpy(np.array([1.0]))
    with pytest.raises(InferenceServerException) as err:
        client.infer("ctr", [inp])
    assert "INVALID_ARGUMENT" in str(err.value.status()) and "f1" in err.value.message()
    with pytest.raises(InferenceServerException) as err:
        client.infer("missing_model", [inp])
    assert "NOT_FOUND" in str(err.value.status())
