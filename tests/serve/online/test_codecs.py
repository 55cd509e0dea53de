"""The wire codecs on their own: V2 binary tensors, MLflow shapes, the simple JSON body."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from loopml.core.errors import ValidationError
from loopml.serve.online import mlflow, simple, v2


def _binary_request(arrays: dict[str, np.ndarray], datatypes: dict[str, str]) -> tuple[bytes, int]:
    blobs, inputs = [], []
    for name, arr in arrays.items():
        blob = v2._to_binary(arr)
        blobs.append(blob)
        inputs.append(
            {
                "name": name,
                "shape": list(arr.shape),
                "datatype": datatypes[name],
                "parameters": {"binary_data_size": len(blob)},
            }
        )
    head = orjson.dumps(
        {"inputs": inputs, "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}
    )
    return head + b"".join(blobs), len(head)


def test_binary_tensors_round_trip_including_bytes():
    arrays = {
        "a": np.array([1.5, -2.0], dtype=np.float32),
        "b": np.array([7, 8], dtype=np.int64),
        "c": np.array(["kr", "ünï"], dtype=object),
    }
    body, length = _binary_request(arrays, {"a": "FP32", "b": "INT64", "c": "BYTES"})
    req = v2.decode_request(body, length)
    got = {t.name: t.array for t in req.inputs}
    np.testing.assert_array_equal(got["a"], arrays["a"])
    np.testing.assert_array_equal(got["b"], arrays["b"])
    assert list(got["c"]) == ["kr", "ünï"]
    assert req.outputs == {"y": True}
    out, json_len = v2.encode_response(
        model="m", version="1", outputs={"y": np.array([0.25, 0.75])}, request=req
    )
    head = orjson.loads(out[:json_len])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == 16
    np.testing.assert_array_equal(np.frombuffer(out[json_len:]), [0.25, 0.75])


def test_binary_sizes_that_do_not_add_up_are_refused():
    body, length = _binary_request({"a": np.array([1.0])}, {"a": "FP64"})
    with pytest.raises(ValidationError, match="binary"):
        v2.decode_request(body + b"extra", length)
    with pytest.raises(ValidationError, match="Inference-Header-Content-Length"):
        v2.decode_request(body, len(body) + 10)
    bad = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "s",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 6},
                }
            ]
        }
    )
    with pytest.raises(ValidationError, match="truncated"):
        v2.decode_request(bad + struct.pack("<I", 99) + b"ab", len(bad))


def test_unknown_requested_output_lists_the_real_ones():
    req = v2.decode_request(
        b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[1]}],'
        b'"outputs":[{"name":"nope"}]}'
    )
    with pytest.raises(ValidationError, match="probability"):
        v2.encode_response(model="m", version="1", outputs={"probability": np.ones(1)}, request=req)


def test_deeply_nested_data_is_refused_not_a_crash():
    data = 1
    for _ in range(200):
        data = [data]
    body = orjson.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": data}]})
    with pytest.raises(ValidationError, match="nested"):
        v2.decode_request(body)


def test_mlflow_shapes():
    names = ["a", "b"]
    cols, params = mlflow.decode(
        b'{"instances": [[1, 2], [3, 4]], "params": {"k": 1}}', "application/json", names
    )
    assert cols == {"a": [1, 3], "b": [2, 4]} and params == {"k": 1}
    cols, _ = mlflow.decode(b"a,b\n1,x\n,2\n", "text/csv; charset=utf-8", names)
    assert cols == {"a": [1.0, None], "b": ["x", 2.0]}
    with pytest.raises(ValidationError, match="content type"):
        mlflow.decode(b"", "application/xml", names)
    with pytest.raises(ValidationError, match="2 values"):
        mlflow.decode(
            b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}',
            "application/json",
            names,
        )


def test_simple_body_shapes():
    req = simple.decode(b'{"entity_id": "u1", "features": {"position": 2}, "version": 3}')
    assert req.entities == {"": "u1"} and req.columns == {"position": [2]} and req.version == "3"
    req = simple.decode(b'{"rows": [{"a": 1}, {"b": 2}]}')
    assert req.columns == {"a": [1, None], "b": [None, 2]} and not req.single
    for bad in (b'{"rows": 3}', b'{"entities": {"user_id": [1]}}', b"{}", b'{"params": 1}'):
        with pytest.raises(ValidationError):
            simple.decode(bad)
