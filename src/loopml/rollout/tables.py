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
#: ``score`` (the first row's main output) is kept where answers are compared: by a
#: shadow experiment, for both arms.
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

#: Per (experiment, arm, kind) totals of the assignments, kept up to date in the same
#: transaction as the assignment rows, so a status (or a server's tick, every second)
#: reads a handful of rows however long the experiment has run.
arm_stats = sa.Table(
    "rollout_arm_stats",
    metadata,
    sa.Column("experiment", sa.String(128), primary_key=True),
    sa.Column("arm", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("errors", sa.BigInteger, nullable=False),
    sa.Column("latency_sum", sa.Float, nullable=False),
    sa.Column("latency_n", sa.BigInteger, nullable=False),
)

#: Where a background job over an experiment has got to (e.g. the event-log join).
cursors = sa.Table(
    "rollout_cursors",
    metadata,
    sa.Column("experiment", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
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


_STAT_COLUMNS = "experiment, arm, kind, requests, errors, latency_sum, latency_n"
#: Adds a batch of per-arm totals (the same statement on SQLite and PostgreSQL).
UPSERT_ARM_STATS = (
    f"INSERT INTO {arm_stats.name} ({_STAT_COLUMNS}) {{rows}} "
    "ON CONFLICT (experiment, arm, kind) DO UPDATE SET "
    f"requests = {arm_stats.name}.requests + excluded.requests, "
    f"errors = {arm_stats.name}.errors + excluded.errors, "
    f"latency_sum = {arm_stats.name}.latency_sum + excluded.latency_sum, "
    f"latency_n = {arm_stats.name}.latency_n + excluded.latency_n"
)

_CHECKED: set[str] = set()


def ensure_tables(engine: Engine) -> None:
    """Create the rollout tables once per engine and process."""
    from loopml.storage.sql import ensure_tables as ensure

    key = str(engine.url)
    if key not in _CHECKED:
        _backfill_arm_stats(engine)
        _CHECKED.add(key)
    ensure(engine, metadata)


def _backfill_arm_stats(engine: Engine) -> None:
    """A database from before the per-arm totals existed: create them from its assignments.

    Only rows up to the largest id seen before the table exists are added up; anything
    written after it exists is counted by its writer, so nothing counts twice.
    """
    inspector = sa.inspect(engine)
    if not inspector.has_table(assignments.name) or inspector.has_table(arm_stats.name):
        return
    with engine.connect() as conn:
        top = conn.execute(sa.select(sa.func.max(assignments.c.id))).scalar()
    try:
        arm_stats.create(engine)
    except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
        return  # another process created it (and backfills it)
    if top is None:
        return
    rows = (
        "SELECT experiment, arm, kind, count(*), "
        "sum(CASE WHEN error THEN 1 ELSE 0 END), coalesce(sum(latency_ms), 0), "
        f"count(latency_ms) FROM {assignments.name} WHERE id <= :top "
        "GROUP BY experiment, arm, kind"
    )
    with engine.begin() as conn:
        conn.execute(sa.text(UPSERT_ARM_STATS.format(rows=rows)), {"top": top})
