"""The predictions table: where pattern 1 leaves its scores for a web application.

One row per (job, user_id, item_id). A job is identified by (model, version,
population, date), so re-running it rewrites the same rows instead of adding more:
writes are upserts, committed per chunk together with the chunk's completion record,
so a job killed at any point resumes exactly where its last commit ended.

Web applications read ``latest_predictions`` (the newest complete job per model).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loopml.core.clock import utcnow
from loopml.storage.sql import engine_for

if TYPE_CHECKING:
    import numpy as np
    from sqlalchemy.engine import Engine

KEY_COLUMNS = ("user_id", "item_id")


def _tables(metadata: Any) -> tuple[Any, Any, Any]:
    import sqlalchemy as sa

    # Per-job facts (model, version, run id, date) live once in batch_jobs; a prediction
    # row is only (job, user, item, score). On SQLite the table is WITHOUT ROWID: one
    # B-tree instead of a table plus its key index, which makes upserts ~3x faster.
    predictions = sa.Table(
        "predictions",
        metadata,
        sa.Column("job_key", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("item_id", sa.String(64), primary_key=True),
        sa.Column("score", sa.Float, nullable=False),
        sqlite_with_rowid=False,
    )
    jobs = sa.Table(
        "batch_jobs",
        metadata,
        sa.Column("job_key", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), nullable=False, unique=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("population", sa.String(128), nullable=False),
        sa.Column("score_date", sa.String(10), nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("n_chunks", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    chunks = sa.Table(
        "batch_job_chunks",
        metadata,
        sa.Column("job_key", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("chunk", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True)),
    )
    return predictions, jobs, chunks


_LATEST_VIEW = """
CREATE VIEW latest_predictions AS
SELECT p.user_id, p.item_id, p.score, j.model, j.version, j.run_id, j.score_date, j.job_id
FROM predictions p
JOIN batch_jobs j ON j.job_key = p.job_key
WHERE j.status = 'complete'
  AND j.finished_at = (
    SELECT MAX(j2.finished_at) FROM batch_jobs j2
    WHERE j2.model = j.model AND j2.status = 'complete'
  )
"""


class PredictionTable:
    """Idempotent, chunk-committed writes of scores into SQLite or PostgreSQL."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.url = url
        self.engine: Engine = engine_for(url)
        self._metadata = sa.MetaData()
        self.predictions, self.jobs, self.chunks = _tables(self._metadata)
        self._metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            if not sa.inspect(conn).has_table(
                "latest_predictions"
            ) and "latest_predictions" not in (sa.inspect(conn).get_view_names()):
                conn.execute(sa.text(_LATEST_VIEW))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- job bookkeeping ---------------------------------------------------------------
    def open_job(
        self,
        job_id: str,
        *,
        model: str,
        version: int,
        run_id: str | None,
        population: str,
        score_date: str,
        n_rows: int,
        n_chunks: int,
    ) -> tuple[int, set[int]]:
        """Record the job (once); return its key and the chunk numbers already committed."""
        import sqlalchemy as sa

        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(self.jobs.c.job_key, self.jobs.c.status).where(
                    self.jobs.c.job_id == job_id
                )
            ).first()
            if row is None:
                key = conn.execute(
                    self.jobs.insert().values(
                        job_id=job_id,
                        model=model,
                        version=version,
                        run_id=run_id,
                        population=population,
                        score_date=score_date,
                        n_rows=n_rows,
                        n_chunks=n_chunks,
                        status="running",
                        started_at=utcnow(),
                    )
                ).inserted_primary_key[0]
            else:
                key = row.job_key
                if row.status == "complete":
                    conn.execute(
                        self.jobs.update()
                        .where(self.jobs.c.job_key == key)
                        .values(status="running")
                    )
            done = conn.execute(
                sa.select(self.chunks.c.chunk).where(self.chunks.c.job_key == key)
            ).scalars()
            return int(key), set(done)

    def reset_chunks(self, job_key: int) -> None:
        """Forget committed chunks so a forced re-run rewrites every row."""
        with self.engine.begin() as conn:
            conn.execute(self.chunks.delete().where(self.chunks.c.job_key == job_key))

    def finish_job(self, job_key: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                self.jobs.update()
                .where(self.jobs.c.job_key == job_key)
                .values(status="complete", finished_at=utcnow())
            )

    def job(self, job_id: str) -> dict[str, Any] | None:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.jobs).where(self.jobs.c.job_id == job_id)).first()
            return dict(row._mapping) if row else None

    # -- rows --------------------------------------------------------------------------
    def write_chunk(
        self,
        job_key: int,
        chunk: int,
        *,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        scores: np.ndarray,
    ) -> None:
        """Upsert one chunk's rows and mark the chunk committed, in one transaction."""
        with self.engine.begin() as conn:
            raw = conn.connection.driver_connection
            if self.dialect == "postgresql":
                _copy_upsert_pg(raw, job_key, user_ids, item_ids, scores)
            else:
                raw.executemany(
                    "INSERT INTO predictions (job_key, user_id, item_id, score) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (job_key, user_id, item_id) "
                    "DO UPDATE SET score = excluded.score",
                    zip([job_key] * len(scores), user_ids, item_ids, scores.tolist(), strict=True),
                )
            conn.execute(
                self.chunks.insert().values(
                    job_key=job_key, chunk=chunk, n_rows=len(scores), committed_at=utcnow()
                )
            )

    def count(self, job_id: str | None = None) -> int:
        import sqlalchemy as sa

        query = sa.select(sa.func.count()).select_from(self.predictions)
        if job_id is not None:
            key = sa.select(self.jobs.c.job_key).where(self.jobs.c.job_id == job_id)
            query = query.where(self.predictions.c.job_key == key.scalar_subquery())
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def read(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a read query (e.g. what a web app would) and return dict rows."""
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql), params or {})]


def _copy_upsert_pg(raw: Any, job_key: int, user_ids, item_ids, scores) -> None:  # noqa: ANN001
    """COPY into a temp table, then one INSERT .. ON CONFLICT: far faster than executemany."""
    buf = io.StringIO()
    for u, i, s in zip(user_ids, item_ids, scores.tolist(), strict=True):
        buf.write(f"{u}\t{i}\t{s!r}\n")
    with raw.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _loopml_stage "
            "(user_id text, item_id text, score double precision) ON COMMIT DELETE ROWS"
        )
        with cur.copy("COPY _loopml_stage (user_id, item_id, score) FROM STDIN") as copy:
            copy.write(buf.getvalue())
        cur.execute(
            "INSERT INTO predictions (job_key, user_id, item_id, score) "
            "SELECT %s, user_id, item_id, score FROM _loopml_stage "
            "ON CONFLICT (job_key, user_id, item_id) DO UPDATE SET score = EXCLUDED.score",
            (job_key,),
        )
