"""The model registry: immutable versions, verified artifacts, audited aliases.

Metadata lives in SQL (SQLite by default, PostgreSQL by URL); artifact bytes live in
the :class:`~loopml.storage.artifacts.ArtifactStore` under ``models/<name>/<version>/``.
The registry never unpickles anything: it stores and returns verified bytes, and
:func:`loopml.predict.load_predictor` turns them into a Predictor by flavour.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from loopml.core.clock import utcnow
from loopml.core.config import ProjectConfig
from loopml.core.errors import NotFoundError, ValidationError, did_you_mean
from loopml.core.names import check_name
from loopml.core.signature import Signature
from loopml.registry import aliases as _aliases
from loopml.registry import rows
from loopml.registry import tables as t
from loopml.registry.records import (
    LATEST,
    AliasMove,
    ModelVersion,
    check_alias,
    normalise_ref,
    parse_ref,
)
from loopml.storage.artifacts import ArtifactStore
from loopml.storage.sql import engine_for

__all__ = ["AliasMove", "ModelVersion", "Registry", "parse_ref"]

MODEL_FILE = "model.bin"


class Registry:
    """Versioned models by name, with aliases that move atomically and leave an audit trail.

    Parameters
    ----------
    metadata_url:
        SQLAlchemy URL of the metadata database (``sqlite:///...`` or ``postgresql://...``).
    artifact_root:
        Local directory or fsspec URL where artifact bytes are stored.

    Examples
    --------
    >>> import tempfile
    >>> from loopml.core.signature import ColumnSpec, Signature
    >>> d = tempfile.mkdtemp()
    >>> reg = Registry(f"sqlite:///{d}/meta.db", f"{d}/artifacts")
    >>> sig = Signature((ColumnSpec("x"),))
    >>> reg.register("ctr", b"weights-1", flavour="sklearn", signature=sig).version
    1
    >>> reg.register("ctr", b"weights-2", flavour="sklearn", signature=sig).version
    2
    >>> reg.set_alias("ctr", "production", 1, actor="ana", reason="first launch").to_version
    1
    >>> reg.fetch("ctr", "production")[1]
    b'weights-1'
    """

    def __init__(self, metadata_url: str, artifact_root: str) -> None:
        self.metadata_url = metadata_url
        self.engine = engine_for(metadata_url)
        self.artifacts = ArtifactStore(artifact_root)
        t.ensure_tables(self.engine)

    @classmethod
    def from_config(cls, cfg: ProjectConfig) -> Registry:
        """The project's registry: its ``metadata`` database and ``artifacts`` store."""
        return cls(cfg.url("metadata"), cfg.path("artifacts"))

    def __repr__(self) -> str:
        return f"Registry({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- writing -------------------------------------------------------------------------
    def register(
        self,
        name: str,
        artifact: bytes,
        *,
        flavour: str,
        signature: Signature | Mapping[str, Any],
        metrics: Mapping[str, Any] | None = None,
        lineage: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> ModelVersion:
        """Store a new immutable version and return it; its number is the next free one.

        The number is taken under the model's row lock, so concurrent registrations from
        several processes get distinct consecutive versions. The artifact is written
        inside the same transaction: a crash leaves no half-registered version.
        """
        check_name(name, "model name")
        check_name(flavour, "flavour")
        data = rows.as_bytes(artifact, "artifact")
        sig = rows.as_signature(signature)
        extra = {
            check_name(k, "file name"): rows.as_bytes(v, f"files[{k!r}]")
            for k, v in (files or {}).items()
        }
        if MODEL_FILE in extra:
            raise ValidationError(
                f"file name {MODEL_FILE!r} is reserved for the main artifact; rename it",
                field="files",
            )
        tag_map = rows.as_tags(tags)
        row = {
            "name": name,
            "flavour": flavour,
            "signature": rows.dumps(sig.to_dict(), "signature"),
            "metrics": rows.dumps(dict(metrics or {}), "metrics"),
            "lineage": rows.dumps(dict(lineage or {}), "lineage"),
            "run_id": run_id,
            "description": str(description),
            "tags": rows.dumps(tag_map, "tags"),
        }
        self._ensure_model(name)
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(t.models)
                .where(t.models.c.name == name)
                .values(last_version=t.models.c.last_version + 1, updated_at=now)
            )
            version = conn.execute(
                sa.select(t.models.c.last_version).where(t.models.c.name == name)
            ).scalar_one()
            prefix = f"models/{name}/{version}"
            key = f"{prefix}/{MODEL_FILE}"
            digest = self.artifacts.put_bytes(key, data)
            file_digests = {
                fname: self.artifacts.put_bytes(f"{prefix}/files/{fname}", blob)
                for fname, blob in sorted(extra.items())
            }
            row.update(
                version=version,
                artifact_key=key,
                sha256=digest,
                created_at=now,
                files=rows.dumps(file_digests, "files"),
            )
            conn.execute(sa.insert(t.versions).values(**row))
        return rows.to_version(row)

    def _ensure_model(self, name: str) -> None:
        with self.engine.connect() as conn:
            exists = conn.execute(sa.select(t.models.c.name).where(t.models.c.name == name)).first()
        if exists:
            return
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(t.models).values(
                        name=name, last_version=0, created_at=now, updated_at=now
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another process registered the model's first version at the same time

    # -- reading -------------------------------------------------------------------------
    def get(self, name: str, ref: int | str = LATEST) -> ModelVersion:
        """One version by number, ``"3"``, ``"v3"``, ``"latest"`` or an alias name."""
        check_name(name, "model name")
        with self.engine.connect() as conn:
            version = self._resolve(conn, name, normalise_ref(ref))
            row = (
                conn.execute(
                    sa.select(t.versions).where(
                        t.versions.c.name == name, t.versions.c.version == version
                    )
                )
                .mappings()
                .one()
            )
        return rows.to_version(dict(row))

    def resolve(self, name: str, alias: int | str) -> int:
        """The version number an alias (or any ref) points at now: one indexed query.

        The online server polls this to hot-reload when ``production`` moves.
        """
        check_name(name, "model name")
        with self.engine.connect() as conn:
            return self._resolve(conn, name, normalise_ref(alias))

    def fetch(self, name: str, ref: int | str = LATEST) -> tuple[ModelVersion, bytes]:
        """The version and its artifact bytes, refused with IntegrityError if tampered."""
        mv = self.get(name, ref)
        return mv, self.artifacts.get_bytes(mv.artifact_key, sha256=mv.sha256)

    def fetch_file(self, name: str, ref: int | str, filename: str) -> bytes:
        """An extra file registered with the version (e.g. an ONNX export), verified."""
        mv = self.get(name, ref)
        if filename not in mv.files:
            raise NotFoundError(
                f"model {name} v{mv.version} has no file {filename!r}; "
                f"{did_you_mean(filename, sorted(mv.files))}",
                model=name,
                file=filename,
            )
        key = f"models/{name}/{mv.version}/files/{filename}"
        return self.artifacts.get_bytes(key, sha256=mv.files[filename])

    def verify(self, name: str, ref: int | str = LATEST) -> ModelVersion:
        """Check the stored artifact against its recorded hash without loading it."""
        mv = self.get(name, ref)
        self.artifacts.verify(mv.artifact_key, mv.sha256)
        return mv

    def list_models(self) -> list[str]:
        """Every registered model name, sorted."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(sa.select(t.models.c.name).order_by(t.models.c.name)).scalars()
            )

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""
        check_name(name, "model name")
        with self.engine.connect() as conn:
            self._require_model(conn, name)
            found = conn.execute(
                sa.select(t.versions)
                .where(t.versions.c.name == name)
                .order_by(t.versions.c.version)
            ).mappings()
            return [rows.to_version(dict(r)) for r in found]

    # -- aliases -------------------------------------------------------------------------
    def set_alias(
        self,
        name: str,
        alias: str,
        version: int | str,
        *,
        actor: str | None = None,
        reason: str = "",
    ) -> AliasMove:
        """Point ``alias`` at ``version`` (a number or any ref) atomically, with an audit row."""
        check_name(name, "model name")
        check_alias(alias)
        ref = normalise_ref(version)
        with self.engine.begin() as conn:
            self._lock(conn, name)
            target = self._resolve(conn, name, ref)
            return _aliases.move(conn, name, alias, target, "set", actor, reason)

    def delete_alias(
        self, name: str, alias: str, *, actor: str | None = None, reason: str = ""
    ) -> AliasMove:
        """Remove an alias (audited); a later :meth:`rollback` can restore it."""
        check_name(name, "model name")
        check_name(alias, "alias")
        with self.engine.begin() as conn:
            self._lock(conn, name)
            if _aliases.current(conn, name, alias) is None:
                self._unknown_alias(conn, name, alias)
            return _aliases.move(conn, name, alias, None, "delete", actor, reason)

    def rollback(
        self,
        name: str,
        alias: str = "production",
        *,
        actor: str | None = None,
        reason: str = "",
    ) -> AliasMove:
        """Move ``alias`` back to the version it pointed at before its last move.

        Repeated rollbacks walk further back through the history (they do not flip
        between two versions); a ConflictError says when there is nothing left.
        """
        check_name(name, "model name")
        check_name(alias, "alias")
        with self.engine.begin() as conn:
            self._lock(conn, name)
            target = _aliases.rollback_target(conn, name, alias)
            return _aliases.move(conn, name, alias, target, "rollback", actor, reason)

    def aliases(self, name: str) -> dict[str, int]:
        """``{alias: version}`` for one model."""
        check_name(name, "model name")
        with self.engine.connect() as conn:
            self._require_model(conn, name)
            return _aliases.all_for(conn, name)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Every audited alias move of a model (or of one alias), oldest first."""
        check_name(name, "model name")
        with self.engine.connect() as conn:
            self._require_model(conn, name)
            return _aliases.history(conn, name, alias)

    # -- lookups with helpful errors -----------------------------------------------------
    def _resolve(self, conn: sa.Connection, name: str, ref: int | str) -> int:
        if isinstance(ref, int):
            found = conn.execute(
                sa.select(t.versions.c.version).where(
                    t.versions.c.name == name, t.versions.c.version == ref
                )
            ).scalar()
            if found is None:
                self._require_model(conn, name)
                numbers = rows.version_numbers(conn, name)
                raise NotFoundError(
                    f"model {name} has no version {ref}; {rows.list_versions(numbers)}",
                    model=name,
                    version=ref,
                    available=numbers,
                )
            return int(found)
        if ref == LATEST:
            found = conn.execute(
                sa.select(sa.func.max(t.versions.c.version)).where(t.versions.c.name == name)
            ).scalar()
            if found is None:
                self._require_model(conn, name)
                raise NotFoundError(f"model {name} has no versions yet", model=name)
            return int(found)
        found = _aliases.current(conn, name, ref)
        if found is None:
            self._unknown_alias(conn, name, ref)
        return int(found)

    def _unknown_alias(self, conn: sa.Connection, name: str, alias: str) -> None:
        self._require_model(conn, name)
        known = sorted(_aliases.all_for(conn, name))
        hint = did_you_mean(alias, known) if known else "it has no aliases yet"
        raise NotFoundError(
            f"model {name} has no alias {alias!r}; {hint}. Set one with "
            f"`loopml models alias {name} {alias} VERSION`",
            model=name,
            alias=alias,
            available=known,
        )

    def _require_model(self, conn: sa.Connection, name: str) -> None:
        exists = conn.execute(sa.select(t.models.c.name).where(t.models.c.name == name)).first()
        if exists is None:
            known = list(conn.execute(sa.select(t.models.c.name)).scalars())
            hint = did_you_mean(name, known) if known else "no models are registered yet"
            raise NotFoundError(
                f"model {name!r} is not registered; {hint}", model=name, available=sorted(known)
            )

    def _lock(self, conn: sa.Connection, name: str) -> None:
        """Take the model's row lock first, so concurrent alias moves serialise."""
        done = conn.execute(
            sa.update(t.models).where(t.models.c.name == name).values(updated_at=utcnow())
        )
        if done.rowcount == 0:
            self._require_model(conn, name)
