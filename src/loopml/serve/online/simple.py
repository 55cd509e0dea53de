"""The simple JSON route for people and web apps: features in, prediction out.

Request (one of)::

    {"features": {"age": 31, "country": "kr"}}            one row
    {"rows": [{"age": 31, ...}, {"age": 45, ...}]}        several rows
    {"columns": {"age": [31, 45], ...}}                   several rows, columnar
    {"entities": {"user_id": "u1"}}                       features from the online store
    {"entity_id": "u1"}                                    same, for a single-key model

``features`` may accompany ``entities`` for request-time features (position, hour).
Optional: ``"version"`` (number or alias) and ``"params"`` (for field routing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.core.errors import ValidationError
from loopml.serve.online.v2 import parse_json


@dataclass
class SimpleRequest:
    columns: dict[str, Any]
    single: bool
    entities: dict[str, Any] | None = None
    version: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def decode(body: bytes) -> SimpleRequest:
    """Parse the body into columns (or entities to look up).

    >>> decode(b'{"features": {"x": 1.5}}').columns
    {'x': [1.5]}
    """
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise ValidationError(
            "body must be a JSON object with 'features', 'rows', 'columns', 'entities' or "
            "'entity_id'",
            field="body",
        )
    version = doc.get("version")
    if version is not None and not isinstance(version, str | int):
        raise ValidationError("'version' must be a number or an alias name", field="version")
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise ValidationError("'params' must be an object", field="params")
    entities = doc.get("entities")
    if "entity_id" in doc:
        entities = {"": doc["entity_id"]}
    if entities is not None and (
        not isinstance(entities, dict)
        or not entities
        or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in entities.values())
    ):
        raise ValidationError(
            '\'entities\' must be an object of entity key to id, e.g. {"user_id": "u1"}',
            field="entities",
        )
    req = SimpleRequest({}, True, entities, str(version) if version is not None else None, params)
    if "features" in doc:
        features = doc["features"]
        if not isinstance(features, dict):
            raise ValidationError(
                "'features' must be an object of feature: value", field="features"
            )
        req.columns = {str(k): [v] for k, v in features.items()}
    elif "rows" in doc:
        rows = doc["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValidationError("'rows' must be a list of {feature: value} objects", field="rows")
        names: list[str] = []
        for r in rows:
            names.extend(k for k in r if k not in names)
        req.columns = {k: [r.get(k) for r in rows] for k in names}
        req.single = False
    elif "columns" in doc:
        cols = doc["columns"]
        if not isinstance(cols, dict) or not all(isinstance(v, list) for v in cols.values()):
            raise ValidationError(
                "'columns' must be an object of feature: [values]", field="columns"
            )
        req.columns = dict(cols)
        req.single = False
    elif entities is None:
        raise ValidationError(
            "send 'features', 'rows', 'columns', 'entities' or 'entity_id'", field="body"
        )
    return req


def encode(result: Any, single: bool) -> dict[str, Any]:
    """``prediction``/``label`` for one row, ``predictions``/``labels`` for several."""
    outputs = result.outputs
    main = outputs.get("probability")
    if main is None:
        main = outputs.get("probabilities")
        if main is None:
            main = outputs.get("prediction")
    label = outputs.get("label")
    doc: dict[str, Any] = {
        "model": result.model,
        "version": result.version,
        "request_id": result.request_id,
    }
    if single and result.rows == 1:
        doc["prediction"] = _first(main) if main is not None else None
        if label is not None:
            doc["label"] = _first(label)
    else:
        doc["predictions"] = main
        if label is not None:
            doc["labels"] = label
    doc["fallback"] = result.fallback
    doc["cached"] = result.cached
    if result.routed_from:
        doc["routed_from"] = result.routed_from
    return doc


def _first(values: Any) -> Any:
    """Row 0 as plain Python (a number, or a list for a multi-output row)."""
    if type(values) is np.ndarray:
        return values.item(0) if values.ndim == 1 else values[0].tolist()
    value = values[0]
    if isinstance(value, np.generic):
        return value.item()
    return value
