"""Pattern-1 benchmark: loopml's batch job (score + idempotent write) vs the plain baseline.

Baseline = what a user writes by hand: ``model.predict_proba(df)`` then
``df.to_sql(...)`` (plain inserts, no idempotency, no resume). loopml = the registered
model loaded through the registry (hash verified) and ``BatchScorer`` writing
chunk-committed upserts. Both score the same LightGBM model on the same rows, in the
same run, on SQLite and PostgreSQL.

    .venv/bin/python bench/batch.py [--rows 400000] [--repeats 3] [--no-postgres]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid

import numpy as np
import pandas as pd
import sqlalchemy as sa

from loopml.core.config import ProjectConfig, init_project
from loopml.core.signature import Signature
from loopml.predict.flavours import load_predictor, save_model
from loopml.registry.registry import Registry
from loopml.serve.batch.scorer import BatchScorer
from loopml.serve.batch.table import PredictionTable

NUMERIC = [f"num_{i}" for i in range(12)]
CATEGORICAL = ["country", "age_band", "segment", "category"]
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def make_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(size=n) for c in NUMERIC})
    for c, k in zip(CATEGORICAL, (8, 6, 4, 12), strict=True):
        frame[c] = pd.Categorical(rng.integers(0, k, n).astype(str))
    frame["user_id"] = [f"u{i // 20:06d}" for i in range(n)]
    frame["item_id"] = [f"i{i % 20:04d}" for i in range(n)]
    return frame


def train_model(seed: int):
    from lightgbm import LGBMClassifier

    frame = make_frame(100_000, seed)
    logit = frame["num_0"] - 0.5 * frame["num_1"] + (frame["country"].cat.codes == 3) - 3
    y = np.random.default_rng(seed).random(len(frame)) < 1 / (1 + np.exp(-logit))
    model = LGBMClassifier(n_estimators=100, num_leaves=31, verbose=-1, random_state=seed)
    model.fit(frame[NUMERIC + CATEGORICAL], y)
    return model


def fresh_pg_schema() -> str:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with sa.create_engine(PG).begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    return schema


def drop_pg_schema(schema: str) -> None:
    with sa.create_engine(PG).begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


def run_baseline(model, frame: pd.DataFrame, url: str) -> float:
    engine = sa.create_engine(url)
    start = time.perf_counter()
    out = frame[["user_id", "item_id"]].copy()
    out["score"] = model.predict_proba(frame[NUMERIC + CATEGORICAL])[:, 1]
    out.to_sql("baseline_predictions", engine, if_exists="append", index=False, chunksize=50_000)
    seconds = time.perf_counter() - start
    engine.dispose()
    return seconds


def run_loopml(predictor, frame: pd.DataFrame, url: str) -> float:
    table = PredictionTable(url)
    start = time.perf_counter()
    BatchScorer(predictor, table, chunk_size=50_000).run(
        frame, population_name="bench", score_date=uuid.uuid4().hex[:10]
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    model = train_model(0)
    frame = make_frame(args.rows, 1)
    tmp = tempfile.mkdtemp()
    init_project(f"{tmp}/p", name="bench")
    cfg = ProjectConfig.load(f"{tmp}/p")
    registry = Registry.from_config(cfg)
    sig = Signature.infer(frame[NUMERIC + CATEGORICAL])
    registry.register("bench", save_model(model, "lightgbm"), flavour="lightgbm", signature=sig)
    predictor = load_predictor(registry, "bench", "latest").load()

    backends = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
    print(f"rows={args.rows:,} repeats={args.repeats} (medians; rows/s = score + write)")
    for backend in backends:
        base_t, loop_t = [], []
        for r in range(args.repeats):
            if backend == "sqlite":
                url_b, url_l = f"sqlite:///{tmp}/base{r}.db", f"sqlite:///{tmp}/loop{r}.db"
                schemas = []
            else:
                schemas = [fresh_pg_schema(), fresh_pg_schema()]
                url_b = f"{PG}?options=-csearch_path%3D{schemas[0]}"
                url_l = f"{PG}?options=-csearch_path%3D{schemas[1]}"
            base_t.append(run_baseline(model, frame, url_b))
            loop_t.append(run_loopml(predictor, frame, url_l))
            for s in schemas:
                drop_pg_schema(s)
        b, lo = statistics.median(base_t), statistics.median(loop_t)
        print(
            f"{backend:10s} baseline {args.rows / b:>10,.0f} rows/s  "
            f"loopml {args.rows / lo:>10,.0f} rows/s  ratio {b / lo:.2f}x"
        )


if __name__ == "__main__":
    main()
