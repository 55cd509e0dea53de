"""The experiment store contract, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import time

import pytest

from loopml.core.errors import ConflictError, NotFoundError
from loopml.rollout import lifecycle
from loopml.rollout.records import ExperimentSpec
from loopml.rollout.store import ExperimentStore


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return ExperimentStore(f"sqlite:///{tmp_path}/meta.db")
    return ExperimentStore(request.getfixturevalue("postgres_schema"))


def _spec(name="e1", model="ctr", policy="ab", **kw):
    return ExperimentSpec(name, model, policy, ("production", "challenger"), **kw)


def test_one_running_experiment_per_model_and_names_are_never_reused(store):
    store.create(_spec())
    with pytest.raises(ConflictError, match="already has the running experiment 'e1'"):
        store.create(_spec("e2"))
    lifecycle.stop(store, "e1", "enough")
    store.create(_spec("e2"))
    with pytest.raises(ConflictError, match="already exists"):
        store.create(_spec("e1", model="other"))
    with pytest.raises(NotFoundError, match="did you mean 'e1'"):
        store.get("e11")
    assert [e.name for e in store.list("running")] == ["e2"]


def test_changes_bump_the_revision_and_stale_writers_lose(store):
    exp = store.create(_spec(policy="canary"))
    moved = store.update("e1", action="advance", stage=1, reason="ok", expected_revision=1)
    assert moved.revision == 2 and moved.stage == 1 and moved.stage_started_at >= exp.created_at
    with pytest.raises(ConflictError, match="changed meanwhile"):
        store.update("e1", action="rollback", status="rolled_back", expected_revision=1)
    assert store.revisions() == {"e1": (2, "running")}
    actions = [e["action"] for e in store.events("e1")]
    assert actions == ["start", "advance"]


def test_outcomes_join_to_arms_and_redelivery_counts_once(store):
    exp = store.create(_spec())
    now = time.time()
    rows = [
        {
            "experiment": "e1",
            "request_id": f"r{i}",
            "unit_id": f"u{i}",
            "arm": "production" if i % 2 else "challenger",
            "version": 1 if i % 2 else 2,
            "kind": "serve",
            "ts": now,
            "latency_ms": 1.0 + i,
            "error": i == 3,
            "score": 0.5,
            "detail": None,
        }
        for i in range(10)
    ]
    assert store.add_assignments(rows) == 10
    feedback = [{"request_id": "r1", "value": 1, "event_id": "ev1"}] * 2
    feedback += [{"request_id": "r2", "value": 1}, {"request_id": "nope", "value": 1}]
    out = lifecycle.record_feedback(store, exp, feedback)
    assert out["accepted"] == 2 and out["duplicates"] == 1 and out["rejected"] == 1
    assert "was not routed" in out["reasons"][0]
    totals = store.arm_totals("e1", kind="serve")
    assert totals["production"]["requests"] == 5 and totals["production"]["errors"] == 1
    outcomes = store.outcome_totals("e1", "click")
    assert outcomes["production"]["positive"] == 1 and outcomes["challenger"]["positive"] == 1
    assert outcomes["production"]["binary"]
    assert sorted(store.latencies("e1", "challenger")) == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert len(store.timeline("e1")) == 10


def test_assignment_log_keeps_rows_through_a_failed_write_and_bounds_memory(tmp_path):
    import asyncio

    from loopml.rollout.assignment_log import AssignmentLog
    from loopml.rollout.store import ASSIGNMENT_COLUMNS

    store = ExperimentStore(f"sqlite:///{tmp_path}/meta.db")
    log = AssignmentLog(store, flush_rows=10_000, max_rows=5)
    row = dict.fromkeys(ASSIGNMENT_COLUMNS)
    row.update(experiment="e", request_id="r", arm="a", kind="serve", ts=1.0, error=False)

    async def main():
        for _ in range(7):
            log.add(tuple(row[c] for c in ASSIGNMENT_COLUMNS))
        store.engine.dispose()
        with store.engine.begin() as conn:  # the table disappears: the write fails
            conn.exec_driver_sql("ALTER TABLE rollout_assignments RENAME TO parked")
        failed = await log.flush()
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE parked RENAME TO rollout_assignments")
        return failed, len(log), await log.flush()

    failed, kept, written = asyncio.run(main())
    assert (failed, kept, written) == (0, 5, 5)
    assert log.lost == 2 and log.written == 5
    assert store.arm_totals("e")["a"]["requests"] == 5


def _rows(n, now, experiment="e1"):
    return [
        (
            experiment,
            f"r{i}",
            f"u{i % 7}",
            ("production", "challenger")[i % 2],
            1 + i % 2,
            "shadow" if i % 5 == 0 else "serve",
            now + i,
            None if i % 11 == 0 else float(i % 13),
            i % 3 == 0,
            None,
            None,
        )
        for i in range(n)
    ]


def _scanned(store, name, kind=None):
    """arm_totals computed the slow way, straight from the assignment rows."""
    rows = store.timeline(name, kind=kind)
    out = {}
    for _, _, arm, latency, error, _ in rows:
        acc = out.setdefault(arm, {"requests": 0, "errors": 0, "lat": []})
        acc["requests"] += 1
        acc["errors"] += bool(error)
        if latency is not None:
            acc["lat"].append(latency)
    return {
        arm: {
            "requests": acc["requests"],
            "errors": acc["errors"],
            "mean_latency_ms": sum(acc["lat"]) / len(acc["lat"]),
        }
        for arm, acc in out.items()
    }


def test_per_arm_totals_are_kept_at_write_time_and_match_the_rows(store):
    store.create(_spec())
    now = time.time()
    for start in (0, 40, 95):  # batches, as the router's buffer writes them
        store.add_assignments(_rows(130, now)[start : start + 55 if start < 95 else None])
    for kind in (None, "serve", "shadow"):
        got = store.arm_totals("e1", kind=kind)
        want = _scanned(store, "e1", kind)
        assert got.keys() == want.keys()
        for arm in want:
            assert got[arm]["requests"] == want[arm]["requests"]
            assert got[arm]["errors"] == want[arm]["errors"]
            assert got[arm]["mean_latency_ms"] == pytest.approx(want[arm]["mean_latency_ms"])
    # a window still reads the rows themselves
    windowed = store.arm_totals("e1", kind="serve", since=now + 100)
    assert sum(v["requests"] for v in windowed.values()) == sum(
        1 for i in range(100, 130) if i % 5 != 0
    )


def test_a_database_from_before_the_totals_is_backfilled_once(store):
    from loopml.rollout import tables
    from loopml.storage.sql import dispose_all

    url = store.url
    store.create(_spec())
    store.add_assignments(_rows(60, time.time()))
    with store.engine.begin() as conn:  # the database as an older loopml left it
        conn.exec_driver_sql("DROP TABLE rollout_arm_stats")
    dispose_all()
    tables._CHECKED.clear()
    from loopml.storage import sql

    sql._CREATED.clear()
    reopened = ExperimentStore(url)
    assert reopened.arm_totals("e1") == _scanned(reopened, "e1")
    reopened.add_assignments(_rows(10, time.time()))  # new rows add on top, once
    assert reopened.arm_totals("e1")["production"]["requests"] == 35
    tables._CHECKED.clear()
    again = ExperimentStore(url)  # the table exists now: no second backfill
    assert again.arm_totals("e1")["production"]["requests"] == 35


def test_a_cursor_only_moves_forward(store):
    store.create(_spec())
    assert store.cursor("e1", "event_log") is None
    store.set_cursor("e1", "event_log", 100.0)
    store.set_cursor("e1", "event_log", 50.0)  # a slower writer, late
    assert store.cursor("e1", "event_log") == 100.0
    store.set_cursor("e1", "event_log", 150.0)
    assert store.cursor("e1", "event_log") == 150.0
    assert store.cursor("e1", "other") is None


def test_two_writers_adding_the_same_outcomes_store_each_once(store):
    from concurrent.futures import ThreadPoolExecutor

    exp = store.create(_spec())
    store.add_assignments(_rows(40, time.time()))
    served = [i for i in range(1, 40, 2) if i % 5]  # challenger's served requests
    rows = [{"request_id": f"r{i}", "value": 1, "event_id": f"ev{i}"} for i in served]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: lifecycle.record_feedback(store, exp, rows), range(4)))
    assert sum(o["accepted"] for o in outs) == len(rows)
    assert sum(o["rejected"] for o in outs) == 0
    assert store.outcome_totals("e1", "click")["challenger"]["positive"] == len(rows)


def test_one_of_many_processes_takes_each_turn_of_a_periodic_job(store):
    """Several server workers each tick; a periodic job (the event-log join) runs in one
    of them per interval: racing callers get exactly one win, and the next interval is
    free again."""
    from concurrent.futures import ThreadPoolExecutor

    other = ExperimentStore(store.url)  # a second process's connection
    with ThreadPoolExecutor(8) as pool:
        wins = list(
            pool.map(
                lambda i: (store if i % 2 else other).take_turn("e1", "join-turn", 0.5),
                range(16),
            )
        )
    assert sum(wins) == 1
    assert not store.take_turn("e1", "join-turn", 0.5)
    assert store.take_turn("e2", "join-turn", 0.5)  # per experiment
    time.sleep(0.6)
    assert other.take_turn("e1", "join-turn", 0.5)
    assert not store.take_turn("e1", "join-turn", 0.5)
