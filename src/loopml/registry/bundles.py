"""The edge-bundle inventory: every bundle ever exported, so shipped models stay manageable.

Models on devices are hard to replace (seed 003), so the registry must know what is
out there: which model version each bundle holds, for which target (``browser``,
``android``, ...), with which compression, its hash and when it was made. The update
route answers edge clients from this table. It lives in the registry's metadata
database (SQLite or PostgreSQL, the same engine).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from loopml.core.clock import to_utc, utcnow
from loopml.core.config import ProjectConfig
from loopml.core.errors import NotFoundError, ValidationError
from loopml.core.names import check_name
from loopml.storage.sql import engine_for

metadata = sa.MetaData()

edge_bundles = sa.Table(
    "registry_edge_bundles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("bundle_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("model_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("ref", sa.String(128), nullable=False),
    sa.Column("target", sa.String(128), nullable=False),
    sa.Column("compression", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("location", sa.String(1024), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_edge_bundles_model_target", "model_name", "target", "id"),
)


@dataclass(frozen=True)
class BundleRecord:
    """One exported bundle as the inventory knows it.

    ``ref`` is what was exported (``production``, ``v3``); ``location`` is the
    artifact-store prefix the bundle was published under.
    """

    bundle_sha256: str
    model_sha256: str
    model_name: str
    model_version: int
    ref: str
    target: str
    compression: str
    size_bytes: int
    location: str
    details: dict[str, Any] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bundle_sha256": self.bundle_sha256,
            "model_sha256": self.model_sha256,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "ref": self.ref,
            "target": self.target,
            "compression": self.compression,
            "size_bytes": self.size_bytes,
            "location": self.location,
            "details": self.details,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


class BundleInventory:
    """Record and query exported edge bundles.

    Examples
    --------
    >>> import tempfile
    >>> inv = BundleInventory(f"sqlite:///{tempfile.mkdtemp()}/meta.db")
    >>> rec = inv.record(BundleRecord("a" * 64, "b" * 64, "ctr", 3, "production",
    ...                               "browser", "original", 1024, "edge/ctr/aaaa"))
    >>> inv.latest("ctr", "browser").model_version, inv.get("b" * 64).target
    (3, 'browser')
    """

    def __init__(self, metadata_url: str) -> None:
        self.metadata_url = metadata_url
        self.engine = engine_for(metadata_url)
        _ensure_table(self.engine)

    @classmethod
    def from_config(cls, cfg: ProjectConfig) -> BundleInventory:
        """The inventory in the project's metadata database."""
        return cls(cfg.url("metadata"))

    def record(self, rec: BundleRecord) -> BundleRecord:
        """Store a bundle; recording the same bundle hash again returns the first record."""
        check_name(rec.model_name, "model name")
        check_name(rec.target, "target")
        for key in ("bundle_sha256", "model_sha256"):
            value = getattr(rec, key)
            if not (isinstance(value, str) and len(value) == 64):
                raise ValidationError(
                    f"{key} must be a 64-character hex sha256, got {value!r}", field=key
                )
        existing = self._find(edge_bundles.c.bundle_sha256 == rec.bundle_sha256)
        if existing:
            return existing[0]
        row = {
            "bundle_sha256": rec.bundle_sha256,
            "model_sha256": rec.model_sha256,
            "model_name": rec.model_name,
            "model_version": int(rec.model_version),
            "ref": str(rec.ref),
            "target": rec.target,
            "compression": rec.compression,
            "size_bytes": int(rec.size_bytes),
            "location": rec.location,
            "details": json.dumps(rec.details, sort_keys=True, default=str),
            "created_at": rec.created_at or utcnow(),
        }
        try:
            with self.engine.begin() as conn:
                row["id"] = conn.execute(
                    sa.insert(edge_bundles).values(**row)
                ).inserted_primary_key[0]
        except sa.exc.IntegrityError:  # recorded concurrently by another process
            return self._find(edge_bundles.c.bundle_sha256 == rec.bundle_sha256)[0]
        return _to_record(row)

    def get(self, sha256: str) -> BundleRecord:
        """The bundle whose bundle hash, or whose model.onnx hash, is ``sha256``."""
        found = self.find(sha256)
        if found is None:
            raise NotFoundError(
                f"no exported edge bundle has sha256 {sha256[:12]}...; list them with "
                "`loopml export list`",
                sha256=sha256,
            )
        return found

    def find(self, sha256: str) -> BundleRecord | None:
        """Like :meth:`get` but None when unknown (a client may run a foreign file)."""
        rows = self._find(
            sa.or_(edge_bundles.c.bundle_sha256 == sha256, edge_bundles.c.model_sha256 == sha256)
        )
        return rows[0] if rows else None

    def list(self, model: str | None = None, target: str | None = None) -> list[BundleRecord]:
        """Bundles, newest first, optionally for one model and/or target."""
        cond = sa.true()
        if model is not None:
            cond = sa.and_(cond, edge_bundles.c.model_name == model)
        if target is not None:
            cond = sa.and_(cond, edge_bundles.c.target == target)
        return self._find(cond)

    def latest(self, model: str, target: str, version: int | None = None) -> BundleRecord | None:
        """The newest bundle of ``model`` for ``target`` (of one model version if given)."""
        cond = sa.and_(edge_bundles.c.model_name == model, edge_bundles.c.target == target)
        if version is not None:
            cond = sa.and_(cond, edge_bundles.c.model_version == int(version))
        rows = self._find(cond, limit=1)
        return rows[0] if rows else None

    def _find(self, cond: Any, limit: int | None = None) -> list[BundleRecord]:
        query = sa.select(edge_bundles).where(cond).order_by(edge_bundles.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_to_record(dict(r)) for r in conn.execute(query).mappings()]


def _to_record(row: dict[str, Any]) -> BundleRecord:
    details = row["details"]
    return BundleRecord(
        bundle_sha256=row["bundle_sha256"],
        model_sha256=row["model_sha256"],
        model_name=row["model_name"],
        model_version=int(row["model_version"]),
        ref=row["ref"],
        target=row["target"],
        compression=row["compression"],
        size_bytes=int(row["size_bytes"]),
        location=row["location"],
        details=json.loads(details) if isinstance(details, str) else dict(details),
        created_at=to_utc(row["created_at"]) if row.get("created_at") else None,
        id=int(row.get("id") or 0),
    )


def _ensure_table(engine: Any) -> None:
    from loopml.storage.sql import ensure_tables

    ensure_tables(engine, metadata)
