"""Training runs: what was trained, on which data, with which code, and how it scored.

Each run is a row in the metadata database (SQLite or PostgreSQL) written when it
starts, so a run that crashes stays visible (``running``, or ``failed`` once
:meth:`RunStore.reap` finds its process gone). Artifacts go to the artifact store
under ``runs/<run_id>/`` with their sha256 recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopml.core.clock import to_utc, utcnow
from loopml.core.config import ProjectConfig
from loopml.core.errors import ClosedError, NotFoundError, ValidationError
from loopml.core.names import check_name
from loopml.core.processes import pid_alive
from loopml.storage.artifacts import ArtifactStore
from loopml.storage.sql import engine_for, ensure_tables

if TYPE_CHECKING:
    import pandas as pd

STATUSES = ("running", "finished", "failed")

_metadata = sa.MetaData()
runs_table = sa.Table(
    "train_runs",
    _metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("lineage", sa.Text, nullable=False),
    sa.Column("artifacts", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)


@dataclass(frozen=True)
class RunRecord:
    """One run as stored."""

    run_id: str
    name: str
    status: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    error: str | None = None
    host: str = ""
    pid: int = 0

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class RunStore:
    """Runs in the metadata database, artifacts in the artifact store.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> store = RunStore(f"sqlite:///{d}/meta.db", f"{d}/artifacts")
    >>> with store.start("ctr", params={"lr": 0.1}) as run:
    ...     run.log_metrics({"valid": {"roc_auc": 0.74}})
    >>> rec = store.get(run.run_id)
    >>> rec.status, rec.params["lr"], rec.metrics["valid"]["roc_auc"]
    ('finished', 0.1, 0.74)
    """

    def __init__(self, metadata_url: str, artifact_root: str) -> None:
        self.engine = engine_for(metadata_url)
        self.artifacts = ArtifactStore(artifact_root)
        ensure_tables(self.engine, _metadata)

    @classmethod
    def from_config(cls, cfg: ProjectConfig) -> RunStore:
        return cls(cfg.url("metadata"), cfg.path("artifacts"))

    # -- writing -------------------------------------------------------------------------
    def start(
        self,
        name: str,
        *,
        params: Mapping[str, Any] | None = None,
        lineage: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run:
        """Record a new ``running`` run now (so a crash leaves a trace) and return its handle."""
        check_name(name, "run name")
        run_id = uuid.uuid4().hex[:16]
        full_lineage = {"code_revision": code_revision(), **dict(lineage or {})}
        row = {
            "run_id": run_id,
            "name": name,
            "status": "running",
            "params": _dumps(dict(params or {}), "params"),
            "metrics": "{}",
            "lineage": _dumps(full_lineage, "lineage"),
            "artifacts": "{}",
            "tags": _dumps({str(k): str(v) for k, v in (tags or {}).items()}, "tags"),
            "started_at": utcnow(),
            "ended_at": None,
            "error": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        with self.engine.begin() as conn:
            conn.execute(sa.insert(runs_table).values(**row))
        return Run(self, run_id)

    def _merge(self, run_id: str, column: str, values: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            current = conn.execute(
                sa.select(runs_table.c[column]).where(runs_table.c.run_id == run_id)
            ).scalar_one()
            merged = {**json.loads(current), **dict(values)}
            conn.execute(
                sa.update(runs_table)
                .where(runs_table.c.run_id == run_id)
                .values({column: _dumps(merged, column)})
            )

    def _end(self, run_id: str, status: str, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(runs_table)
                .where(runs_table.c.run_id == run_id)
                .values(status=status, ended_at=utcnow(), error=error)
            )

    def reap(self) -> list[str]:
        """Mark ``running`` runs of this host whose process is gone as ``failed``."""
        host = socket.gethostname()
        dead = [
            r.run_id
            for r in self.list_runs(status="running")
            if r.host == host and not pid_alive(r.pid)
        ]
        for run_id in dead:
            self._end(run_id, "failed", "the training process exited without finishing the run")
        return dead

    # -- reading -------------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord:
        """A run by id or unique id prefix."""
        if not isinstance(run_id, str) or not run_id:
            raise ValidationError(f"run id must be a non-empty string, got {run_id!r}")
        with self.engine.connect() as conn:
            rows = list(
                conn.execute(
                    sa.select(runs_table)
                    .where(runs_table.c.run_id.startswith(run_id, autoescape=True))
                    .limit(3)
                ).mappings()
            )
        if not rows:
            recent = [r.run_id for r in self.list_runs(limit=5)]
            raise NotFoundError(
                f"no run {run_id!r}; recent runs: {recent or 'none yet'}", run_id=run_id
            )
        if len(rows) > 1:
            raise ValidationError(
                f"run id prefix {run_id!r} matches several runs "
                f"({', '.join(r['run_id'] for r in rows)}, ...); give more characters",
                field="run_id",
            )
        return _to_record(dict(rows[0]))

    def list_runs(
        self, name: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        """Runs, newest first, optionally of one name or status."""
        query = sa.select(runs_table).order_by(runs_table.c.started_at.desc())
        if name is not None:
            query = query.where(runs_table.c.name == name)
        if status is not None:
            if status not in STATUSES:
                raise ValidationError(f"status must be one of {STATUSES}, got {status!r}")
            query = query.where(runs_table.c.status == status)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_to_record(dict(r)) for r in conn.execute(query).mappings()]

    def compare(self, a: str, b: str) -> pd.DataFrame:
        """Params and metrics of two runs side by side, with the difference of numbers."""
        import pandas as pd

        ra, rb = self.get(a), self.get(b)
        left = {**_flat("param", ra.params), **_flat("metric", ra.metrics)}
        right = {**_flat("param", rb.params), **_flat("metric", rb.metrics)}
        keys = sorted(set(left) | set(right), key=lambda k: (not k.startswith("param"), k))
        rows = []
        for key in keys:
            x, y = left.get(key), right.get(key)
            numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
            rows.append(
                {"key": key, ra.run_id: x, rb.run_id: y, "diff": y - x if numeric else None}
            )
        return pd.DataFrame(rows).set_index("key")

    def artifact(self, run_id: str, key: str) -> bytes:
        """A run's artifact, verified against the hash recorded when it was logged."""
        rec = self.get(run_id)
        if key not in rec.artifacts:
            raise NotFoundError(
                f"run {rec.run_id} has no artifact {key!r}; it has {sorted(rec.artifacts)}"
            )
        return self.artifacts.get_bytes(f"runs/{rec.run_id}/{key}", sha256=rec.artifacts[key])


class Run:
    """The handle of a running run; a context manager that records the outcome."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.closed = False

    def _open(self) -> None:
        if self.closed:
            raise ClosedError(f"run {self.run_id} has ended; start a new run to log more")

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._open()
        self.store._merge(self.run_id, "params", params)

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        self._open()
        self.store._merge(self.run_id, "metrics", metrics)

    def log_lineage(self, lineage: Mapping[str, Any]) -> None:
        self._open()
        self.store._merge(self.run_id, "lineage", lineage)

    def log_artifact(self, key: str, data: bytes) -> str:
        """Store bytes under ``runs/<run_id>/<key>``; return and record their sha256."""
        self._open()
        digest = self.store.artifacts.put_bytes(f"runs/{self.run_id}/{key}", data)
        self.store._merge(self.run_id, "artifacts", {key: digest})
        return digest

    def finish(self) -> None:
        self._open()
        self.store._end(self.run_id, "finished")
        self.closed = True

    def fail(self, error: str) -> None:
        self._open()
        self.store._end(self.run_id, "failed", error)
        self.closed = True

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if self.closed:
            return
        if exc is None:
            self.finish()
        else:
            detail = "".join(traceback.format_exception_only(kind, exc)).strip()
            self.fail(detail[:4000])

    def __repr__(self) -> str:
        return f"Run({self.run_id!r})"


# -- helpers -------------------------------------------------------------------------------
def code_revision(start: str | Path | None = None) -> str:
    """``git:<sha>`` of the repository around ``start`` (default cwd), else the package version.

    Read straight from ``.git`` (no git binary needed, nothing written).
    """
    from loopml import __version__

    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        git = folder / ".git"
        if git.is_file():  # a worktree: "gitdir: <path>"
            text = git.read_text().strip()
            git = (folder / text.removeprefix("gitdir:").strip()).resolve()
        if git.is_dir():
            sha = _read_head(git)
            if sha:
                return f"git:{sha}"
            break
    return f"loopml:{__version__}"


def _read_head(git: Path) -> str | None:
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head or None
    ref = head.removeprefix("ref:").strip()
    common = git
    if (git / "commondir").exists():
        common = (git / (git / "commondir").read_text().strip()).resolve()
    for base in (git, common):
        path = base / ref
        if path.exists():
            return path.read_text().strip()
    packed = common / "packed-refs"
    if packed.exists():
        for line in packed.read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    return None


def _flat(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            out.update(_flat(name, value))
        else:
            out[name] = value
    return out


def _json_default(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return repr(value)


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{what} must be JSON-serialisable: {exc}", field=what) from None


def _to_record(row: dict[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        name=row["name"],
        status=row["status"],
        params=json.loads(row["params"]),
        metrics=json.loads(row["metrics"]),
        lineage=json.loads(row["lineage"]),
        artifacts=json.loads(row["artifacts"]),
        tags=json.loads(row["tags"]),
        started_at=to_utc(row["started_at"]) if row["started_at"] else None,
        ended_at=to_utc(row["ended_at"]) if row["ended_at"] else None,
        error=row["error"],
        host=row["host"],
        pid=int(row["pid"]),
    )
