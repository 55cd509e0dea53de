"""Registry records <-> table rows: input checks, JSON columns, and listings for errors.

Kept apart from :mod:`loopml.registry.registry` so the class there reads as the
registry's behaviour, not its plumbing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from loopml.core.clock import to_utc
from loopml.core.errors import ValidationError
from loopml.core.signature import Signature
from loopml.registry import tables as t
from loopml.registry.records import ModelVersion


def version_numbers(conn: sa.Connection, name: str) -> list[int]:
    return [
        int(v)
        for v in conn.execute(
            sa.select(t.versions.c.version)
            .where(t.versions.c.name == name)
            .order_by(t.versions.c.version)
        ).scalars()
    ]


def list_versions(numbers: list[int]) -> str:
    if not numbers:
        return "it has no versions yet"
    if len(numbers) > 12:
        shown = ", ".join(map(str, numbers[:3])) + ", ..., " + ", ".join(map(str, numbers[-3:]))
        return f"{shown} exist ({len(numbers)} versions)"
    return f"{', '.join(map(str, numbers))} exist"


def as_bytes(value: Any, field: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise ValidationError(
        f"{field} must be bytes, got {type(value).__name__}; serialise the model first, "
        "e.g. loopml.predict.save_model(model, flavour)",
        field=field,
    )


def as_signature(value: Signature | Mapping[str, Any]) -> Signature:
    if isinstance(value, Signature):
        return value
    if isinstance(value, Mapping):
        return Signature.from_dict(value)
    raise ValidationError(
        f"signature must be a Signature or its dict form, got {type(value).__name__}",
        field="signature",
    )


def as_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (tags or {}).items():
        if not isinstance(key, str) or not isinstance(value, str | int | float | bool):
            raise ValidationError(
                f"tags must map strings to strings, got {key!r}: {value!r}", field="tags"
            )
        out[key] = str(value)
    return out


def json_default(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def dumps(value: Any, field: str) -> str:
    try:
        return json.dumps(value, default=json_default, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{field} must be JSON-serialisable (numbers, strings, lists, dicts); "
            f"got a value of type {exc}",
            field=field,
        ) from None


def to_version(row: Mapping[str, Any]) -> ModelVersion:
    created = row.get("created_at")
    return ModelVersion(
        name=row["name"],
        version=int(row["version"]),
        flavour=row["flavour"],
        artifact_key=row["artifact_key"],
        sha256=row["sha256"],
        signature=Signature.from_dict(json.loads(row["signature"])),
        metrics=json.loads(row["metrics"]),
        lineage=json.loads(row["lineage"]),
        run_id=row.get("run_id"),
        created_at=to_utc(created) if created is not None else None,
        description=row.get("description") or "",
        tags=json.loads(row["tags"]),
        files=json.loads(row["files"]),
    )
