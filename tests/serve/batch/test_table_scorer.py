"""Pattern 1: idempotent, resumable writes into SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.core.signature import ColumnSpec, Signature
from loopml.predict.predictor import Predictor
from loopml.serve.batch.scorer import BatchScorer
from loopml.serve.batch.table import PredictionTable


class LinearScore(Predictor):
    """A tiny real predictor: a fixed logistic function of two features."""

    flavour = "test-linear"

    def __init__(self, fail_at_call: int | None = None) -> None:
        super().__init__(Signature((ColumnSpec("a"), ColumnSpec("b"))), name="lin", version=2)
        self.calls = 0
        self.fail_at_call = fail_at_call

    def _predict(self, columns):
        self.calls += 1
        if self.fail_at_call is not None and self.calls == self.fail_at_call:
            raise RuntimeError("simulated crash mid-job")
        return 1.0 / (1.0 + np.exp(-(0.5 * columns["a"] - 0.25 * columns["b"])))


def _population(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "user_id": [f"u{i // 10:05d}" for i in range(n)],
            "item_id": [f"i{i % 10:03d}" for i in range(n)],
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
        }
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def table_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/pred.db"
    return request.getfixturevalue("postgres_schema")


def test_rerun_leaves_exactly_one_row_per_key(table_url):
    table = PredictionTable(table_url)
    pop = _population(2_500)
    scorer = BatchScorer(LinearScore().load(), table, chunk_size=1_000)
    first = scorer.run(pop, population_name="all", score_date="2026-01-19", run_id="r1")
    again = scorer.run(pop, population_name="all", score_date="2026-01-19", run_id="r1", force=True)
    assert first.job_id == again.job_id
    assert table.count(first.job_id) == 2_500
    dupes = table.read(
        "SELECT user_id, item_id, COUNT(*) AS n FROM predictions "
        "GROUP BY job_key, user_id, item_id HAVING COUNT(*) > 1"
    )
    assert dupes == []
    row = table.read(
        "SELECT score, version, run_id FROM latest_predictions WHERE user_id = :u AND item_id = :i",
        {"u": "u00000", "i": "i003"},
    )[0]
    a, b = pop.loc[3, "a"], pop.loc[3, "b"]
    assert row["score"] == pytest.approx(1 / (1 + np.exp(-(0.5 * a - 0.25 * b))))
    assert (row["version"], row["run_id"]) == (2, "r1")


def test_crash_mid_job_then_rerun_completes_without_duplicates(table_url):
    table = PredictionTable(table_url)
    pop = _population(5_000)
    crashing = BatchScorer(LinearScore(fail_at_call=3).load(), table, chunk_size=1_000)
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.run(pop, population_name="all", score_date="2026-01-19")
    partial = table.count()
    assert 0 < partial < 5_000
    result = BatchScorer(LinearScore().load(), table, chunk_size=1_000).run(
        pop, population_name="all", score_date="2026-01-19"
    )
    assert result.chunks_skipped == 2 and result.chunks_written == 3
    assert table.count(result.job_id) == 5_000
    latest = table.read("SELECT COUNT(*) AS n FROM latest_predictions WHERE model = 'lin'")
    assert latest[0]["n"] == 5_000


def test_population_without_key_names_the_column(tmp_path):
    table = PredictionTable(f"sqlite:///{tmp_path}/p.db")
    pop = _population(10).drop(columns=["item_id"])
    with pytest.raises(ValueError, match="item_id"):
        BatchScorer(LinearScore().load(), table).run(pop, population_name="x", score_date="d")
