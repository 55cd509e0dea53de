"""The experiment tables (SQLAlchemy Core) in the project's metadata database.

Times are UTC epoch seconds (floats): cheap to write on the serving path and compared
the same way on SQLite and PostgreSQL. ``revision`` on an experiment increases on
every change, so server processes notice a change made elsewhere (CLI, another
worker) with one small query and no restart.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()

experiments = sa.Table(
    "rollout_experiments",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False, index=True),
    sa.Column("policy", sa.String(32), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("stage", sa.Integer, nullable=False, default=0),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("revision", sa.Integer, nullable=False, default=1),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("stage_started_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=True),
)

#: One row per arm call: what served (kind ``serve``), what was mirrored (``shadow``),
#: or each ranker of an interleaved response (``interleave``, with its team in detail).
assignments = sa.Table(
    "rollout_assignments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("request_id", sa.String(160), nullable=False),
    sa.Column("unit_id", sa.String(256), nullable=True),
    sa.Column("arm", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("error", sa.Boolean, nullable=False, default=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Index("ix_rollout_assignments_exp_request", "experiment", "request_id"),
    sa.Index("ix_rollout_assignments_exp_ts", "experiment", "ts"),
)

#: Feedback joined to its assignment: ``arm`` is resolved when the outcome arrives.
outcomes = sa.Table(
    "rollout_outcomes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(160), nullable=False),
    sa.Column("arm", sa.String(128), nullable=False),
    sa.Column("metric", sa.String(128), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("item", sa.String(256), nullable=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.UniqueConstraint("experiment", "event_id", name="uq_rollout_outcomes_event"),
    sa.Index("ix_rollout_outcomes_exp_metric", "experiment", "metric"),
)

#: The audit trail: start, stage moves, rollbacks (with the reason), stop, promote.
events = sa.Table(
    "rollout_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("experiment", sa.String(128), nullable=False, index=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("stage", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
)


def ensure_tables(engine: Engine) -> None:
    """Create the rollout tables once per engine and process."""
    from loopml.storage.sql import ensure_tables as ensure

    ensure(engine, metadata)
