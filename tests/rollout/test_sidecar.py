"""The rollout sidecar: assignment rows committed, counted, never lost; shadows scored there."""

from __future__ import annotations

import asyncio
import time

import pytest

from loopml.rollout.records import ExperimentSpec
from loopml.rollout.shadow_scoring import TIMED_PER_BATCH
from loopml.rollout.sidecar import Sidecar, encode_mirror
from loopml.rollout.store import ASSIGNMENT_COLUMNS, ExperimentStore


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/meta.db"
    return request.getfixturevalue("postgres_schema")


def rows(n: int, start: int = 0) -> list[tuple]:
    now = time.time()
    out = []
    for i in range(start, start + n):
        row = {
            "experiment": "e1",
            "request_id": f"r{i}",
            "unit_id": f"u{i}",
            "arm": "production" if i % 2 else "challenger",
            "version": 1 if i % 2 else 2,
            "kind": "serve",
            "ts": now,
            "latency_ms": 1.0,
            "error": False,
            "score": None,
            "detail": None,
        }
        out.append(tuple(row[c] for c in ASSIGNMENT_COLUMNS))
    return out


def test_rows_written_by_the_child_are_in_the_store_with_their_totals(url):
    store = ExperimentStore(url)
    store.create(ExperimentSpec("e1", "ctr", "ab", ("production", "2")))

    async def main():
        writer = Sidecar(url)
        try:
            assert await writer.add_assignments(rows(500)) == 500
            assert await writer.add_assignments(rows(3, start=500)) == 3
        finally:
            await writer.aclose()

    asyncio.run(main())
    totals = store.arm_totals("e1", kind="serve")
    assert totals["production"]["requests"] + totals["challenger"]["requests"] == 503
    assert len(store.timeline("e1")) == 503


def test_a_killed_child_fails_the_batch_then_a_new_one_takes_over(tmp_path):
    url = f"sqlite:///{tmp_path}/meta.db"
    store = ExperimentStore(url)

    async def main():
        writer = Sidecar(url)
        try:
            assert await writer.add_assignments(rows(10)) == 10
            writer._proc.kill()
            await writer._proc.wait()
            # the dead child is noticed and replaced before the next batch
            assert await writer.add_assignments(rows(10, start=10)) == 10
            # a child that dies mid-batch fails that batch (the caller keeps the rows)
            writer._proc.stdin.close()
            with pytest.raises(OSError, match="rollout sidecar"):
                await writer.add_assignments(rows(5, start=20))
            assert await writer.add_assignments(rows(5, start=20)) == 5
        finally:
            await writer.aclose()

    asyncio.run(main())
    assert len(store.timeline("e1")) == 25


def test_a_write_the_database_refuses_is_reported_not_swallowed(tmp_path):
    url = f"sqlite:///{tmp_path}/meta.db"
    writer = Sidecar(url)
    bad = [rows(1)[0][:-2]]  # a row two columns short

    async def main():
        try:
            with pytest.raises(OSError, match="could not write"):
                await writer.add_assignments(bad)
            assert await writer.add_assignments(rows(2)) == 2  # the child is still serving
        finally:
            await writer.aclose()

    asyncio.run(main())
    assert writer._proc is None


# -- shadow scoring in the sidecar -----------------------------------------------------------
FEATURES = ["f0", "f1", "f2", "f3"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """``ctr`` v1 (production) and v2, a differently regularised challenger."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from tests.serve.online.conftest import make_project, register

    from loopml.core.config import ProjectConfig

    root = make_project(tmp_path_factory.mktemp("sidecar") / "proj")
    cfg = ProjectConfig.load(root)
    rng = np.random.default_rng(0)
    X = pd.DataFrame({f: rng.normal(size=300) for f in FEATURES})
    y = (X.f0 + rng.normal(scale=0.7, size=300) > 0).astype(int)
    register(cfg, "ctr", LogisticRegression().fit(X, y), X, "sklearn", (0, 1))
    challenger = LogisticRegression(C=0.01).fit(X, y)
    register(cfg, "ctr", challenger, X, "sklearn", (0, 1), None)
    return cfg, challenger  # what v2 answers, to check the sidecar's scores against


def mirror_of(i: int, columns: dict, version: str = "2") -> tuple:
    return (
        "sh",
        "challenger",
        version,
        "ctr",
        f"r{i}",
        f"u{i}",
        columns,
        {"x-unit-id": f"u{i}"},
        None,
        "simple",
        time.time(),
    )


def test_the_sidecar_scores_mirrors_with_the_registered_challenger_and_logs_them(project):
    """What the sidecar records for a mirrored request is the challenger's own answer to
    it (the registered v2, loaded from the registry). The first mirrors of each batch are
    called alone and timed, the rest scored in one call (no latency); a batch call that
    one bad row fails is redone one request at a time. A request the challenger cannot
    take and a version that does not exist are that row's error, and the sidecar goes on."""
    import numpy as np
    import pandas as pd

    from loopml.logs.eventlog import EventLog

    cfg, challenger = project
    url = cfg.url("metadata")
    store = ExperimentStore(url)
    store.create(ExperimentSpec("sh", "ctr", "shadow", ("production", "2")))
    rng = np.random.default_rng(1)
    inputs = [{f: [float(rng.normal())] for f in FEATURES} for _ in range(40)]
    mirrors = [mirror_of(i, cols) for i, cols in enumerate(inputs)]
    mirrors[39] = mirror_of(39, {**inputs[39], "f2": ["high"]})  # fails its batch call
    mirrors.append(mirror_of(40, {"f0": [1.0]}))  # three features missing
    mirrors.append(mirror_of(41, inputs[0], version="9"))  # no such version

    async def main():
        sidecar = Sidecar(url, project=str(cfg.root))
        try:
            assert sidecar.scores_shadows
            encoded = [encode_mirror(m) for m in mirrors]
            first = await sidecar.send(rows(2), encoded[:30])
            second = await sidecar.send([], encoded[30:])
        finally:
            await sidecar.aclose()
        return first, second

    first, second = asyncio.run(main())
    assert first == (2, 30) and second == (0, 12)
    shadow = {r[1]: r for r in store.timeline("sh", kind="shadow")}
    assert len(shadow) == 42
    frame = pd.DataFrame({f: [c[f][0] for c in inputs] for f in FEATURES})
    expected = challenger.predict_proba(frame)[:, 1]
    scores = np.array([shadow[f"r{i}"][5] for i in range(39)])
    np.testing.assert_allclose(scores, expected[:39], rtol=1e-9)
    assert all(shadow[f"r{i}"][4] is False for i in range(39))
    batched = {i for i in range(39) if shadow[f"r{i}"][3] is None}
    assert batched == set(range(TIMED_PER_BATCH, 30))  # the first batch's untimed rest
    assert all(shadow[f"r{i}"][3] > 0 for i in set(range(39)) - batched)  # CPU time, ms
    assert [shadow[f"r{i}"][4] for i in (39, 40, 41)] == [True, True, True]  # recorded
    with store.engine.connect() as conn:
        details = dict(
            conn.exec_driver_sql(
                "SELECT request_id, detail FROM rollout_assignments WHERE kind = 'shadow' AND error"
            ).fetchall()
        )
    assert "f2" in details["r39"] and "f1" in details["r40"] and "9" in details["r41"]
    # the challenger's predictions are in the prediction log, tagged with the arm
    with EventLog.from_config(cfg).connect(tables=["prediction"]) as con:
        logged = con.execute(
            "SELECT count(*) FROM prediction WHERE arm = 'challenger' AND version = 2"
        ).fetchone()[0]
    assert logged == 39


def test_mirrors_beyond_the_bound_are_counted_as_dropped_not_queued(project):
    """A sidecar that falls behind (it runs on idle CPU only) never makes the server hold
    more than ``max_mirrors`` requests; the surplus is counted."""
    from loopml.rollout.assignment_log import AssignmentLog

    cfg, _ = project
    sidecar = Sidecar(cfg.url("metadata"), project=str(cfg.root))
    log = AssignmentLog(sidecar, flush_mirrors=10_000, max_mirrors=5)
    assert log.takes_mirrors

    async def main():
        try:
            log.add_mirror(mirror_of(99, {"f0": [object()]}))  # nothing the pipe can carry
            assert len(log._mirrors) == 0 and log.mirrors_dropped == 1
            for i in range(12):
                log.add_mirror(mirror_of(100 + i, {f: [0.5] for f in FEATURES}))
            assert len(log._mirrors) == 5
            await log.flush()
        finally:
            await sidecar.aclose()

    asyncio.run(main())
    assert log.mirrored == 5 and log.mirrors_dropped == 8


def test_rows_encoded_as_they_come_are_kept_through_a_failed_batch(tmp_path):
    """With a sidecar the assignment log encodes each row as it is added; a batch the
    child fails to take stays buffered, encoded, and goes with the next flush."""
    from loopml.rollout.assignment_log import AssignmentLog

    url = f"sqlite:///{tmp_path}/meta.db"
    store = ExperimentStore(url)
    sidecar = Sidecar(url)
    log = AssignmentLog(sidecar)

    async def main():
        try:
            for row in rows(5):
                log.add(row)
            assert all(type(r) is bytes for r in log._rows)
            assert await log.flush() == 5
            for row in rows(5, start=5):
                log.add(row)
            sidecar._proc.stdin.close()  # the child goes away mid-batch
            assert await log.flush() == 0 and len(log) == 5
            assert await log.flush() == 5 and len(log) == 0  # a new child takes them
        finally:
            await sidecar.aclose()

    asyncio.run(main())
    assert sorted(r[1] for r in store.timeline("e1")) == sorted(f"r{i}" for i in range(10))
    assert log.written == 10 and log.lost == 0
