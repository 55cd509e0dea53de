"""What the registry hands out: immutable model versions, audited alias moves, parsed refs.

These are plain frozen records with no database behind them, so every floor above
can pass them around, print them and compare them without touching SQL.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from loopml.core.errors import ValidationError
from loopml.core.names import check_name
from loopml.core.signature import Signature

#: Refs that are not aliases: a version number, ``v3``, or ``latest``.
LATEST = "latest"
_VERSION_REF = re.compile(r"^[vV]?(\d+)$")


@dataclass(frozen=True)
class ModelVersion:
    """One registered, immutable model version.

    ``lineage`` says where it came from: data time range, dataset fingerprint,
    feature view versions, code revision, params and ``parent_version``, so a
    version can always be traced back to the run and the data that made it.
    """

    name: str
    version: int
    flavour: str
    artifact_key: str
    sha256: str
    signature: Signature
    metrics: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    created_at: dt.datetime | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """``name@v3``: the form :func:`parse_ref` reads back."""
        return f"{self.name}@v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (for the CLI, the UI and the V2 model metadata endpoint)."""
        return {
            "name": self.name,
            "version": self.version,
            "flavour": self.flavour,
            "artifact_key": self.artifact_key,
            "sha256": self.sha256,
            "signature": self.signature.to_dict(),
            "metrics": self.metrics,
            "lineage": self.lineage,
            "run_id": self.run_id,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "description": self.description,
            "tags": self.tags,
            "files": self.files,
        }


@dataclass(frozen=True)
class AliasMove:
    """One audited change of an alias: who moved it, when, from which version to which, why.

    ``from_version`` is None when the alias was created; ``to_version`` is None when it
    was deleted. ``kind`` is ``set``, ``rollback`` or ``delete``.
    """

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    at: dt.datetime
    kind: str = "set"
    id: int = 0

    def __str__(self) -> str:
        src = "-" if self.from_version is None else f"v{self.from_version}"
        dst = "-" if self.to_version is None else f"v{self.to_version}"
        why = f" ({self.reason})" if self.reason else ""
        when = f"{self.at:%Y-%m-%d %H:%M:%S}"
        return f"{self.name}@{self.alias}: {src} -> {dst} by {self.actor} at {when}{why}"


def parse_ref(text: str) -> tuple[str, int | str]:
    """Split ``"name@ref"`` into the model name and a version number or alias.

    A bare name means ``latest``; ``3`` and ``v3`` mean version 3; anything else is an alias.

    >>> parse_ref("ctr@production")
    ('ctr', 'production')
    >>> parse_ref("ctr@v3"), parse_ref("ctr@3"), parse_ref("ctr")
    (('ctr', 3), ('ctr', 3), ('ctr', 'latest'))
    """
    if not isinstance(text, str) or not text:
        raise ValidationError(
            f"model ref {text!r} is not valid; write NAME, NAME@ALIAS or NAME@VERSION "
            "(e.g. ctr@production, ctr@3)",
            field="ref",
        )
    name, sep, ref = text.partition("@")
    check_name(name, "model name")
    if not sep:
        return name, LATEST
    if not ref:
        raise ValidationError(
            f"model ref {text!r} ends with '@'; add an alias or version, e.g. {name}@production",
            field="ref",
        )
    return name, normalise_ref(ref)


def normalise_ref(ref: int | str) -> int | str:
    """A version number for ``3``/``"3"``/``"v3"``, else the alias or ``latest`` unchanged.

    >>> normalise_ref("v12"), normalise_ref(4), normalise_ref("staging")
    (12, 4, 'staging')
    """
    if isinstance(ref, bool):
        raise ValidationError(f"model ref {ref!r} is not a version or alias", field="ref")
    if isinstance(ref, int):
        if ref < 1:
            raise ValidationError(
                f"model version must be >= 1, got {ref}; versions are numbered from 1",
                field="version",
            )
        return ref
    if not isinstance(ref, str):
        raise ValidationError(
            f"model ref must be a version number or an alias name, got {type(ref).__name__}",
            field="ref",
        )
    match = _VERSION_REF.match(ref)
    if match:
        return normalise_ref(int(match.group(1)))
    if ref == LATEST:
        return ref
    return check_name(ref, "alias")


def check_alias(alias: str) -> str:
    """An alias must be a safe name that cannot be mistaken for a version or ``latest``."""
    check_name(alias, "alias")
    if alias == LATEST or _VERSION_REF.match(alias):
        raise ValidationError(
            f"alias {alias!r} is reserved: it reads as a version ref; "
            "choose a name such as 'production', 'staging' or 'challenger'",
            field="alias",
        )
    return alias
