"""MLflow scoring protocol codec (``POST /invocations``), so MLflow clients switch unchanged.

MLflow's model server accepts JSON with exactly one of ``dataframe_split``,
``dataframe_records``, ``instances`` or ``inputs`` (plus optional ``params``), or a
CSV body, and answers ``{"predictions": [...]}``. This module turns those shapes into
named columns; the data plane does the rest.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from loopml.core.errors import ValidationError
from loopml.serve.online.v2 import parse_json

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def decode(
    body: bytes, content_type: str, names: Sequence[str]
) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Return ``(columns, params)`` from an MLflow scoring request.

    >>> cols, _ = decode(b'{"dataframe_split": {"columns": ["a"], "data": [[1], [2]]}}',
    ...                  "application/json", ["a"])
    >>> cols
    {'a': [1, 2]}
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "text/csv":
        return _csv(body), {}
    if kind not in ("application/json", ""):
        raise ValidationError(
            f"content type {content_type!r} is not supported; send application/json or text/csv",
            field="content-type",
        )
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise ValidationError(
            f"the body must be a JSON object with one of {list(FORMATS)}", field="body"
        )
    present = [k for k in FORMATS if k in doc]
    if len(present) != 1:
        raise ValidationError(
            f"the body must have exactly one of {list(FORMATS)}, got {present or 'none'}",
            field="body",
        )
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise ValidationError("'params' must be an object", field="params")
    key = present[0]
    value = doc[key]
    if key == "dataframe_split":
        return _split(value), params
    if key == "dataframe_records":
        return _records(value, key), params
    return _tensor_like(value, key, names), params


def _split(value: Any) -> dict[str, list[Any]]:
    if not isinstance(value, dict) or not isinstance(value.get("columns"), list):
        raise ValidationError(
            '\'dataframe_split\' must be {"columns": [...], "data": [[...], ...]}',
            field="dataframe_split",
        )
    columns = [str(c) for c in value["columns"]]
    data = value.get("data", [])
    if not isinstance(data, list):
        raise ValidationError("'dataframe_split.data' must be a list of rows", field="data")
    out: dict[str, list[Any]] = {c: [] for c in columns}
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise ValidationError(
                f"dataframe_split.data[{i}] must be a list of {len(columns)} values (one per "
                f"column {columns})",
                field="data",
            )
        for c, v in zip(columns, row, strict=True):
            out[c].append(v)
    return out


def _records(value: Any, key: str) -> dict[str, list[Any]]:
    if not isinstance(value, list):
        raise ValidationError(f"'{key}' must be a list of {{column: value}} objects", field=key)
    names: list[str] = []
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise ValidationError(f"{key}[{i}] must be an object of column: value", field=key)
        for c in row:
            if c not in names:
                names.append(c)
    return {c: [row.get(c) for row in value] for c in names}


def _tensor_like(value: Any, key: str, names: Sequence[str]) -> dict[str, list[Any]]:
    if isinstance(value, dict):
        out: dict[str, list[Any]] = {}
        for c, v in value.items():
            out[str(c)] = v if isinstance(v, list) else [v]
        return out
    if isinstance(value, list):
        if all(isinstance(r, dict) for r in value):
            return _records(value, key)
        if all(isinstance(r, list) for r in value):
            out = {n: [] for n in names}
            for i, row in enumerate(value):
                if len(row) != len(names):
                    raise ValidationError(
                        f"{key}[{i}] has {len(row)} values but the model expects {len(names)}: "
                        f"{list(names)}",
                        field=key,
                    )
                for n, v in zip(names, row, strict=True):
                    out[n].append(v)
            return out
    raise ValidationError(
        f"'{key}' must be a list of records, a list of rows, or an object of column: values",
        field=key,
    )


def _csv(body: bytes) -> dict[str, list[Any]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("CSV body must be UTF-8", field="body") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationError("CSV body is empty; send a header row", field="body") from None
    out: dict[str, list[Any]] = {h: [] for h in header}
    for i, row in enumerate(reader):
        if len(row) != len(header):
            raise ValidationError(
                f"CSV row {i + 1} has {len(row)} values but the header has {len(header)}",
                field="body",
            )
        for h, v in zip(header, row, strict=True):
            out[h].append(_number(v))
    return out


def _number(text: str) -> Any:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def encode(outputs: dict[str, Any], task: str) -> dict[str, Any]:
    """``{"predictions": [...]}``: probabilities (binary/multiclass) or values (regression)."""
    main = outputs.get("probability")
    if main is None:
        main = outputs.get("probabilities")
    if main is None:
        main = outputs.get("prediction")
    return {"predictions": main}
