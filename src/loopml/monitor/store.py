"""Where monitoring keeps its history: profiles, per-window results, alerts (metadata DB).

One row per checked window plus one per column makes drift plottable over time with a
plain query; reference profiles are stored once per model version as compressed blobs.
SQLite by default, PostgreSQL by URL, through SQLAlchemy Core.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from loopml.core.clock import to_utc, utcnow
from loopml.core.config import ProjectConfig
from loopml.core.errors import NotFoundError
from loopml.monitor.drift import DriftReport
from loopml.monitor.profile import ReferenceProfile
from loopml.monitor.quality import QualityReport
from loopml.storage.sql import engine_for

metadata = sa.MetaData()
_TS = sa.DateTime(timezone=True)

profiles = sa.Table(
    "monitor_profiles",
    metadata,
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
)

windows = sa.Table(
    "monitor_windows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(128), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("source", sa.String(128), nullable=False),
    sa.Column("start", _TS, nullable=False),
    sa.Column("end", _TS, nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("n_drifted", sa.Integer, nullable=False),
    sa.Column("share", sa.Float, nullable=False),
    sa.Column("dataset_drift", sa.Boolean, nullable=False),
    sa.Column("prediction_score", sa.Float, nullable=True),
    sa.Column("prediction_drift", sa.Boolean, nullable=True),
    sa.Column("quality_failed", sa.Integer, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
)

columns = sa.Table(
    "monitor_columns",
    metadata,
    sa.Column("window_id", sa.Integer, primary_key=True),
    sa.Column("column", sa.String(256), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("drifted", sa.Boolean, nullable=False),
    sa.Column("psi", sa.Float, nullable=True),
    sa.Column("stats", sa.Text, nullable=False),
)

performance = sa.Table(
    "monitor_performance",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(128), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("start", _TS, nullable=False),
    sa.Column("end", _TS, nullable=False),
    sa.Column("slice", sa.String(256), nullable=False),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
)

alerts = sa.Table(
    "monitor_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(128), nullable=False, index=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("fired_at", _TS, nullable=False),
    sa.Column("window_end", _TS, nullable=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("webhook", sa.Text, nullable=True),
    sa.Column("job", sa.String(128), nullable=True),
    sa.Column("details", sa.Text, nullable=False),
)


def _ensure(engine: sa.Engine) -> None:
    """Create these tables once per engine and process."""
    from loopml.storage.sql import ensure_tables as ensure

    ensure(engine, metadata)


class MonitorStore:
    """Read and write monitoring history in the project's metadata database.

    >>> import tempfile
    >>> store = MonitorStore(f"sqlite:///{tempfile.mkdtemp()}/meta.db")
    >>> store.windows("ctr")
    []
    """

    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        _ensure(self.engine)

    @classmethod
    def from_config(cls, cfg: ProjectConfig) -> MonitorStore:
        return cls(cfg.url("metadata"))

    # -- profiles ------------------------------------------------------------------------
    def save_profile(self, model: str, version: int, profile: ReferenceProfile) -> None:
        """Store (or replace) the reference profile of one model version."""
        row = {
            "model": model,
            "version": int(version),
            "n_rows": profile.n_rows,
            "data": profile.to_bytes(),
            "created_at": utcnow(),
        }
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(profiles).where(
                    profiles.c.model == model, profiles.c.version == int(version)
                )
            )
            conn.execute(sa.insert(profiles).values(**row))

    def load_profile(self, model: str, version: int) -> ReferenceProfile:
        with self.engine.connect() as conn:
            data = conn.execute(
                sa.select(profiles.c.data).where(
                    profiles.c.model == model, profiles.c.version == int(version)
                )
            ).scalar()
            if data is None:
                have = (
                    conn.execute(sa.select(profiles.c.version).where(profiles.c.model == model))
                    .scalars()
                    .all()
                )
        if data is None:
            listed = ", ".join(f"v{v}" for v in sorted(have)) or "none"
            raise NotFoundError(
                f"no reference profile for {model} v{version} (profiles exist for: {listed}); "
                f"build one with loopml.monitor.profile_model_version or "
                f"`loopml monitor drift {model} --rebuild-profile`",
                model=model,
            )
        return ReferenceProfile.from_bytes(data)

    def has_profile(self, model: str, version: int) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(profiles.c.version).where(
                        profiles.c.model == model, profiles.c.version == int(version)
                    )
                ).first()
                is not None
            )

    # -- drift windows -------------------------------------------------------------------
    def record_window(
        self,
        model: str,
        version: int,
        start: dt.datetime | str,
        end: dt.datetime | str,
        report: DriftReport,
        quality: QualityReport | None = None,
        source: str = "prediction",
    ) -> int:
        """Store one checked window and its per-column results; return the window id."""
        body = report.to_dict()
        if quality is not None:
            body["quality"] = quality.to_dict()
        pred = report.prediction
        row = {
            "model": model,
            "version": int(version),
            "source": source,
            "start": to_utc(start),
            "end": to_utc(end),
            "n_rows": int(report.n_cur),
            "n_drifted": len(report.drifted),
            "share": float(report.share),
            "dataset_drift": report.dataset_drift,
            "prediction_score": _finite(pred.score) if pred else None,
            "prediction_drift": pred.drifted if pred else None,
            "quality_failed": len(quality.failed) if quality else 0,
            "report": json.dumps(body, default=_jsonable),
            "created_at": utcnow(),
        }
        with self.engine.begin() as conn:
            window_id = conn.execute(sa.insert(windows).values(**row)).inserted_primary_key[0]
            rows = [
                {
                    "window_id": window_id,
                    "column": c.column,
                    "kind": c.kind,
                    "method": c.method,
                    "score": _finite(c.score),
                    "threshold": _finite(c.threshold),
                    "drifted": c.drifted,
                    "psi": _finite(c.stats.get("psi", float("nan"))),
                    "stats": json.dumps(c.stats, default=_jsonable),
                }
                for c in [*report.columns, *([pred] if pred else [])]
            ]
            if rows:
                conn.execute(sa.insert(columns), rows)
        return int(window_id)

    def windows(
        self, model: str, source: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Checked windows of a model, oldest first (the last ``limit`` when given)."""
        query = sa.select(windows).where(windows.c.model == model)
        if source is not None:
            query = query.where(windows.c.source == source)
        query = query.order_by(windows.c.end.desc(), windows.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            row["start"], row["end"] = to_utc(row["start"]), to_utc(row["end"])
        return rows[::-1]

    def column_history(self, model: str, source: str | None = None) -> list[dict[str, Any]]:
        """Every (window, column) result of a model, oldest window first, for plots."""
        query = (
            sa.select(
                windows.c.id,
                windows.c.start,
                windows.c.end,
                windows.c.version,
                columns.c.column,
                columns.c.kind,
                columns.c.method,
                columns.c.score,
                columns.c.threshold,
                columns.c.drifted,
                columns.c.psi,
            )
            .join(columns, columns.c.window_id == windows.c.id)
            .where(windows.c.model == model)
            .order_by(windows.c.end, windows.c.id)
        )
        if source is not None:
            query = query.where(windows.c.source == source)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            row["start"], row["end"] = to_utc(row["start"]), to_utc(row["end"])
        return rows

    def window_columns(self, window_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(columns).where(columns.c.window_id == window_id)
            ).mappings()
            return [{**dict(r), "stats": json.loads(r["stats"])} for r in rows]

    # -- performance ---------------------------------------------------------------------
    def record_performance(
        self,
        model: str,
        version: int | None,
        start: dt.datetime | str,
        end: dt.datetime | str,
        values: list[dict[str, Any]],
    ) -> None:
        """Store metric rows ``{"slice", "metric", "value", "n"}`` of one window."""
        now = utcnow()
        rows = [
            {
                "model": model,
                "version": version,
                "start": to_utc(start),
                "end": to_utc(end),
                "slice": str(v.get("slice", "all")),
                "metric": str(v["metric"]),
                "value": _finite(v.get("value")),
                "n": int(v.get("n", 0)),
                "created_at": now,
            }
            for v in values
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(performance), rows)

    def performance_history(
        self, model: str, metric: str | None = None, slice: str | None = "all"
    ) -> list[dict[str, Any]]:
        query = sa.select(performance).where(performance.c.model == model)
        if metric is not None:
            query = query.where(performance.c.metric == metric)
        if slice is not None:
            query = query.where(performance.c.slice == slice)
        query = query.order_by(performance.c.end, performance.c.id)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            row["start"], row["end"] = to_utc(row["start"]), to_utc(row["end"])
        return rows

    # -- alerts --------------------------------------------------------------------------
    def record_alert(self, row: dict[str, Any]) -> int:
        values = {
            "rule": row["rule"],
            "model": row["model"],
            "fired_at": row.get("fired_at", utcnow()),
            "window_end": to_utc(row["window_end"]) if row.get("window_end") else None,
            "severity": row.get("severity", "warning"),
            "message": row["message"],
            "value": _finite(row.get("value")),
            "webhook": row.get("webhook"),
            "job": row.get("job"),
            "details": json.dumps(row.get("details", {}), default=_jsonable),
        }
        with self.engine.begin() as conn:
            return int(conn.execute(sa.insert(alerts).values(**values)).inserted_primary_key[0])

    def update_alert(self, alert_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(alerts).where(alerts.c.id == alert_id).values(**values))

    def alerts(self, model: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Recorded alerts, newest first."""
        query = sa.select(alerts).order_by(alerts.c.fired_at.desc(), alerts.c.id.desc())
        if model is not None:
            query = query.where(alerts.c.model == model)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query.limit(limit)).mappings()]
        for row in rows:
            row["details"] = json.loads(row["details"])
            row["fired_at"] = to_utc(row["fired_at"])
            if row["window_end"] is not None:
                row["window_end"] = to_utc(row["window_end"])
        return rows


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)
