"""Chunked, resumable scoring of a population into the predictions table.

The population is frozen before scoring (a Parquet snapshot per job), so a re-run
after a crash scores exactly the same rows in the same chunks; chunks already
committed are skipped, the rest are upserted. Scoring of chunk k+1 overlaps the
database write of chunk k.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loopml.core.errors import ValidationError
from loopml.core.progress import progress_bar

if TYPE_CHECKING:
    import pandas as pd

    from loopml.predict.predictor import Predictor
    from loopml.serve.batch.table import PredictionTable


def job_id_for(model: str, version: int, population: str, score_date: str) -> str:
    """The job's identity: the same (model version, population, date) is the same job.

    >>> job_id_for("ctr", 3, "active_users", "2026-01-19")
    '542feccf58d24822b4e7a4497e0f6255'
    """
    key = f"{model}\x1f{version}\x1f{population}\x1f{score_date}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True)
class BatchResult:
    """What a batch job did: rows and chunks written now versus skipped as already done."""

    job_id: str
    rows: int
    chunks: int
    chunks_written: int
    chunks_skipped: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


class BatchScorer:
    """Score a frozen population with a loaded predictor into a :class:`PredictionTable`."""

    def __init__(
        self,
        predictor: Predictor,
        table: PredictionTable,
        *,
        chunk_size: int = 50_000,
        progress: bool = False,
    ) -> None:
        if chunk_size < 1:
            raise ValidationError(f"chunk_size must be >= 1, got {chunk_size}", field="chunk_size")
        self.predictor = predictor
        self.table = table
        self.chunk_size = chunk_size
        self.progress = progress

    def run(
        self,
        population: pd.DataFrame,
        *,
        population_name: str,
        score_date: str,
        run_id: str | None = None,
        force: bool = False,
    ) -> BatchResult:
        """Score ``population`` (``user_id``, ``item_id`` and the model's features)."""
        start = time.perf_counter()
        for key in ("user_id", "item_id"):
            if key not in population.columns:
                raise ValidationError(
                    f"population has no {key!r} column; it has {list(population.columns)[:12]}. "
                    "Use item_id='' for per-user scores.",
                    field=key,
                )
        p = self.predictor
        job_id = job_id_for(p.name, p.version, population_name, score_date)
        n = len(population)
        n_chunks = max(1, -(-n // self.chunk_size))
        job_key, done = self.table.open_job(
            job_id,
            model=p.name,
            version=p.version,
            run_id=run_id,
            population=population_name,
            score_date=score_date,
            n_rows=n,
            n_chunks=n_chunks,
        )
        if force:
            self.table.reset_chunks(job_key)
            done = set()
        p.signature.validate(population.iloc[:1])  # fail fast, naming the field
        columns = {c: population[c].to_numpy() for c in p.signature.names}
        users = population["user_id"].astype(str).to_numpy()
        items = population["item_id"].astype(str).to_numpy()
        todo = [k for k in range(n_chunks) if k not in done]

        written = 0
        with (
            ThreadPoolExecutor(max_workers=1) as writer,
            progress_bar(len(todo), "scoring chunks", self.progress) as advance,
        ):
            pending = None
            for k in todo:
                lo, hi = k * self.chunk_size, min(n, (k + 1) * self.chunk_size)
                scores = p.predict({c: v[lo:hi] for c, v in columns.items()})
                if scores.ndim > 1:
                    scores = scores[:, -1]
                if pending is not None:
                    pending.result()
                    advance()
                pending = writer.submit(
                    self.table.write_chunk,
                    job_key,
                    k,
                    user_ids=users[lo:hi],
                    item_ids=items[lo:hi],
                    scores=scores,
                )
                written += 1
            if pending is not None:
                pending.result()
                advance()
        self.table.finish_job(job_key)
        return BatchResult(
            job_id=job_id,
            rows=n,
            chunks=n_chunks,
            chunks_written=written,
            chunks_skipped=n_chunks - len(todo),
            seconds=time.perf_counter() - start,
        )
