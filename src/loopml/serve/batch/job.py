"""`loopml predict batch`: build (or reuse) the population snapshot, then score it.

The snapshot is written once per job as Parquet under the project's state directory,
so a re-run after a crash scores the same rows in the same chunks, whatever arrived in
the event log meanwhile.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.serve.batch.scorer import BatchResult, BatchScorer, job_id_for

if TYPE_CHECKING:
    from loopml.core.config import ProjectConfig


def run_batch_job(
    cfg: ProjectConfig,
    model: str,
    *,
    score_date: str | None = None,
    population: str = "active_users_x_top_items",
    top_items: int = 20,
    chunk_size: int = 50_000,
    context: dict[str, Any] | None = None,
    force: bool = False,
    progress: bool = False,
) -> BatchResult:
    """Score ``model`` (``NAME`` or ``NAME@ALIAS``; alias defaults to production)."""
    import pandas as pd

    from loopml.logs.eventlog import EventLog
    from loopml.predict.flavours import load_predictor
    from loopml.registry.registry import Registry, parse_ref
    from loopml.serve.batch.population import build_population
    from loopml.serve.batch.table import PredictionTable

    name, ref = parse_ref(model if "@" in model else f"{model}@production")
    registry = Registry.from_config(cfg)
    version = registry.get(name, ref)
    predictor = load_predictor(registry, name, version.version).load()
    log = EventLog.from_config(cfg)
    if score_date is None:
        last = log.sql("SELECT max(ts) AS t FROM impression")["t"].iloc[0]
        score_date = (pd.Timestamp(last).date() + dt.timedelta(days=1)).isoformat()
    job_id = job_id_for(name, version.version, population, score_date)
    snapshot = Path(cfg.state_dir) / "batch" / job_id / "population.parquet"
    if snapshot.exists() and not force:
        frame = pd.read_parquet(snapshot)
    else:
        frame = build_population(
            log,
            predictor.signature,
            score_date=score_date,
            population=population,
            top_items=top_items,
            context=context,
            progress=progress,
        )
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        tmp = snapshot.with_suffix(".tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(snapshot)
    table = PredictionTable(cfg.url("predictions"))
    scorer = BatchScorer(predictor, table, chunk_size=chunk_size, progress=progress)
    return scorer.run(
        frame,
        population_name=population,
        score_date=score_date,
        run_id=version.run_id,
        force=force,
    )
