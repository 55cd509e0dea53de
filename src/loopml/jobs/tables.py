"""The scheduler's tables (SQLAlchemy Core) in the metadata database.

``jobs`` holds definitions and the next due time, ``job_runs`` every attempt with its
outcome (the run history), ``job_leases`` who is running a job right now.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
_TS = sa.DateTime(timezone=True)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("schedule", sa.String(128), nullable=True),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("max_retries", sa.Integer, nullable=False),
    sa.Column("retry_delay_s", sa.Float, nullable=False),
    sa.Column("next_run_at", _TS, nullable=True),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
)

runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(128), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("first_run", sa.Integer, nullable=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("trigger", sa.String(64), nullable=False),
    sa.Column("not_before", _TS, nullable=False),
    sa.Column("queued_at", _TS, nullable=False),
    sa.Column("started_at", _TS, nullable=True),
    sa.Column("finished_at", _TS, nullable=True),
    sa.Column("owner", sa.String(256), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("result", sa.Text, nullable=True),
)

leases = sa.Table(
    "job_leases",
    metadata,
    sa.Column("job", sa.String(128), primary_key=True),
    sa.Column("owner", sa.String(256), nullable=False),
    sa.Column("run_id", sa.Integer, nullable=True),
    sa.Column("acquired_at", _TS, nullable=False),
    sa.Column("expires_at", _TS, nullable=False),
)


def ensure_tables(engine: sa.Engine) -> None:
    """Create these tables once per engine and process."""
    from loopml.storage.sql import ensure_tables as ensure

    ensure(engine, metadata)
