"""Open Inference Protocol (KServe V2) REST codec, including the binary tensor extension.

Standard V2 clients send tensors either as JSON ``data`` or -- the common Python
client's default -- as raw bytes appended after the JSON header, whose length is in
the ``Inference-Header-Content-Length`` header. This module turns either into named
numpy tensors, maps tensors to a model's columns, and encodes results back the way
the client asked (JSON or binary). Every error is a :class:`ValidationError` naming
the tensor and the fix, so a bad request is a 400, never a 500.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from loopml.core.errors import ValidationError

#: V2 datatype -> numpy dtype (BYTES as Python objects).
DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}

HEADER_LENGTH = "inference-header-content-length"

_DATATYPE_OF = {np.dtype(d): name for name, d in DTYPES.items() if d is not np.object_}
_NUMPY_OF = {name: np.dtype(d) for name, d in DTYPES.items()}


@dataclass
class Tensor:
    """One named tensor as received or to be sent."""

    name: str
    datatype: str
    shape: list[int]
    array: np.ndarray


@dataclass
class InferRequest:
    """A decoded V2 inference request (unknown top-level fields are ignored)."""

    inputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    #: requested output name -> wants binary; None means "every output"
    outputs: dict[str, bool] | None = None
    binary_output: bool = False


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype naming a numpy array's dtype.

    >>> datatype_of(np.zeros(2, dtype=np.float32))
    'FP32'
    """
    found = _DATATYPE_OF.get(array.dtype)
    if found is not None:
        return found
    if array.dtype.kind in "OUS":
        return "BYTES"
    raise ValidationError(f"dtype {array.dtype} has no V2 datatype", field="datatype")


def decode_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Parse a V2 infer request body (JSON, optionally followed by binary tensor data).

    >>> body = b'{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,2]}]}'
    >>> req = decode_request(body)
    >>> req.inputs[0].array
    array([1., 2.], dtype=float32)
    """
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise ValidationError(
                f"Inference-Header-Content-Length is {header_length} but the body has "
                f"{len(body)} bytes; it must be the length of the JSON part",
                field="Inference-Header-Content-Length",
            )
        head, binary = body[:header_length], memoryview(body)[header_length:]
    else:
        head, binary = body, memoryview(b"")
    doc = parse_json(head)
    if not isinstance(doc, dict):
        raise ValidationError(
            f"request body must be a JSON object with 'inputs', got {type(doc).__name__}",
            field="body",
        )
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ValidationError(
            "'inputs' must be a non-empty list of tensors "
            '({"name": ..., "shape": [...], "datatype": ..., "data": [...]})',
            field="inputs",
        )
    params = _params(doc.get("parameters"), "parameters")
    offset = 0
    inputs: list[Tensor] = []
    for i, raw in enumerate(raw_inputs):
        tensor, used = _decode_input(raw, i, binary, offset)
        offset += used
        inputs.append(tensor)
    if offset != len(binary):
        raise ValidationError(
            f"the binary part has {len(binary)} bytes but the inputs' binary_data_size add up "
            f"to {offset}",
            field="binary_data_size",
        )
    outputs = None
    raw_outputs = doc.get("outputs")
    binary_default = bool(params.get("binary_data_output", False))
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise ValidationError("'outputs' must be a list of {\"name\": ...}", field="outputs")
        outputs = {}
        for j, out in enumerate(raw_outputs):
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise ValidationError(
                    f"outputs[{j}] must be an object with a 'name'", field="outputs"
                )
            oparams = _params(out.get("parameters"), f"outputs[{j}].parameters")
            outputs[out["name"]] = bool(oparams.get("binary_data", binary_default))
    req_id = doc.get("id")
    return InferRequest(
        inputs=inputs,
        id=str(req_id) if req_id is not None else None,
        parameters=params,
        outputs=outputs,
        binary_output=binary_default,
    )


def parse_json(body: bytes) -> Any:
    """``orjson.loads`` with a 400 that says where the JSON broke."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"request body is not valid JSON: {exc}", field="body") from None


def _params(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(
            f"'{where}' must be an object, got {type(value).__name__}", field=where
        )
    return value


def _decode_input(raw: Any, i: int, binary: memoryview, offset: int) -> tuple[Tensor, int]:
    if not isinstance(raw, dict):
        raise ValidationError(f"inputs[{i}] must be an object", field=f"inputs[{i}]")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ValidationError(f"inputs[{i}] needs a string 'name'", field=f"inputs[{i}].name")
    datatype = raw.get("datatype")
    if datatype not in DTYPES:
        raise ValidationError(
            f"input {name!r}: datatype {datatype!r} is not a V2 datatype; use one of "
            f"{sorted(DTYPES)}",
            field=name,
        )
    shape = raw.get("shape")
    if type(shape) is not list or not shape or not _dims(shape):
        raise ValidationError(
            f"input {name!r}: shape must be a non-empty list of non-negative integers, got "
            f"{shape!r}",
            field=name,
        )
    count = 1
    for d in shape:  # noqa: SIM110 - a plain loop: runs per tensor
        count *= d
    params = _params(raw.get("parameters"), f"inputs[{i}].parameters")
    size = params.get("binary_data_size")
    used = 0
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValidationError(
                f"input {name!r}: binary_data_size must be a non-negative integer", field=name
            )
        if offset + size > len(binary):
            raise ValidationError(
                f"input {name!r}: binary_data_size {size} runs past the end of the body "
                f"({len(binary) - offset} bytes left)",
                field=name,
            )
        chunk = binary[offset : offset + size]
        used = size
        array = _from_binary(chunk, datatype, count, name)
    else:
        if "data" not in raw:
            raise ValidationError(
                f"input {name!r} has no 'data' and no binary_data_size parameter", field=name
            )
        array = _from_json(raw["data"], datatype, name)
    if array.size != count:
        raise ValidationError(
            f"input {name!r}: shape {shape} needs {count} values but {array.size} were sent",
            field=name,
        )
    return Tensor(name, datatype, shape, array.reshape(shape)), used


def _dims(shape: list[Any]) -> bool:
    """Whether every dimension is a non-negative int."""
    for d in shape:  # noqa: SIM110 - a plain loop: runs per tensor
        if type(d) is not int or d < 0:
            return False
    return True


def _from_binary(chunk: memoryview, datatype: str, count: int, name: str) -> np.ndarray:
    if datatype == "BYTES":
        items: list[bytes] = []
        pos = 0
        data = bytes(chunk)
        while pos < len(data):
            if pos + 4 > len(data):
                raise ValidationError(f"input {name!r}: truncated BYTES element", field=name)
            (length,) = struct.unpack_from("<I", data, pos)
            pos += 4
            if pos + length > len(data):
                raise ValidationError(f"input {name!r}: truncated BYTES element", field=name)
            items.append(data[pos : pos + length])
            pos += length
        return _bytes_array(items, name)
    dtype = np.dtype(DTYPES[datatype])
    if len(chunk) != count * dtype.itemsize:
        raise ValidationError(
            f"input {name!r}: {len(chunk)} binary bytes do not hold {count} {datatype} values "
            f"({count * dtype.itemsize} bytes)",
            field=name,
        )
    return np.frombuffer(chunk, dtype=dtype)


def _bytes_array(items: Sequence[Any], name: str) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for k, item in enumerate(items):
        if isinstance(item, bytes | bytearray):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationError(
                    f"input {name!r}: BYTES values must be UTF-8", field=name
                ) from None
        out[k] = item
    return out


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if not data or not isinstance(data[0], list):
        return data
    flat: list[Any] = []
    # iterative, so deeply nested (malicious) input cannot exhaust the stack
    out_iter = [iter(data)]
    while out_iter:
        try:
            item = next(out_iter[-1])
        except StopIteration:
            out_iter.pop()
            continue
        if isinstance(item, list):
            if len(out_iter) > 32:
                raise ValidationError("tensor data is nested deeper than 32 levels", field="data")
            out_iter.append(iter(item))
        else:
            flat.append(item)
    return flat


def _from_json(data: Any, datatype: str, name: str) -> np.ndarray:
    flat = _flatten(data)
    if datatype == "BYTES":
        return _bytes_array(flat, name)
    for v in flat:
        kind = type(v)
        if kind is float or kind is int:
            continue
        if not isinstance(v, int | float) or (isinstance(v, bool) and datatype != "BOOL"):
            raise ValidationError(
                f"input {name!r} is {datatype} but contains {v!r}; send numbers only "
                "(use BYTES for text)",
                field=name,
            )
    try:
        return np.asarray(flat, dtype=_NUMPY_OF[datatype])
    except (OverflowError, ValueError) as exc:
        raise ValidationError(
            f"input {name!r}: values do not fit {datatype} ({exc})", field=name
        ) from None


def tensors_to_columns(inputs: Sequence[Tensor], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Map V2 tensors to a model's named columns.

    Either one tensor per column (shape ``[n]`` or ``[n, 1]``), or a single 2-D tensor
    ``[n, k]`` whose ``k`` columns are the model's inputs in signature order.

    >>> t = Tensor("x", "FP64", [1, 2], np.array([[1.0, 2.0]]))
    >>> tensors_to_columns([t], ["a", "b"])
    {'a': array([1.]), 'b': array([2.])}
    """
    wanted = set(names)
    if len(inputs) == 1 and inputs[0].name not in wanted and inputs[0].array.ndim == 2:
        arr = inputs[0].array
        if arr.shape[1] != len(names):
            raise ValidationError(
                f"input {inputs[0].name!r} has {arr.shape[1]} columns but the model expects "
                f"{len(names)}: {list(names)}; send one column per feature in that order, or "
                "one tensor per feature named after it",
                field=inputs[0].name,
            )
        return {n: arr[:, k] for k, n in enumerate(names)}
    columns: dict[str, np.ndarray] = {}
    for t in inputs:
        arr = t.array
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        elif arr.ndim != 1:
            raise ValidationError(
                f"input {t.name!r} has shape {t.shape}; a feature tensor must be [n] or [n, 1]",
                field=t.name,
            )
        columns[t.name] = arr
    return columns


def encode_response(
    *,
    model: str,
    version: str,
    outputs: Mapping[str, np.ndarray],
    request: InferRequest | None,
    parameters: Mapping[str, Any] | None = None,
) -> tuple[bytes, int | None]:
    """Encode outputs as the client asked; return ``(body, json_header_length or None)``."""
    wanted = request.outputs if request is not None else None
    if wanted is not None:
        unknown = [n for n in wanted if n not in outputs]
        if unknown:
            raise ValidationError(
                f"requested output(s) {unknown} do not exist; this model has {list(outputs)}",
                field="outputs",
            )
        selected = {n: (outputs[n], wanted[n]) for n in wanted}
    else:
        binary = request.binary_output if request is not None else False
        selected = {n: (a, binary) for n, a in outputs.items()}
    out_docs = []
    blobs: list[bytes] = []
    for name, (array, as_binary) in selected.items():
        doc: dict[str, Any] = {
            "name": name,
            "datatype": datatype_of(array),
            "shape": list(array.shape),
        }
        if as_binary:
            blob = _to_binary(array)
            doc["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            doc["data"] = array.reshape(-1)
        out_docs.append(doc)
    body: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": out_docs}
    if request is not None and request.id is not None:
        body["id"] = request.id
    if parameters:
        body["parameters"] = dict(parameters)
    head = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)


def _to_binary(array: np.ndarray) -> bytes:
    if array.dtype.kind in "OUS":
        parts = []
        for item in array.reshape(-1).tolist():
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.ascontiguousarray(array).tobytes()
