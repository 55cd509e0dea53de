"""A server's assignment rows go through a child process: committed, counted, never lost."""

from __future__ import annotations

import asyncio
import time

import pytest

from loopml.rollout.assignment_writer import AssignmentWriter
from loopml.rollout.records import ExperimentSpec
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
        writer = AssignmentWriter(url)
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
        writer = AssignmentWriter(url)
        try:
            assert await writer.add_assignments(rows(10)) == 10
            writer._proc.kill()
            await writer._proc.wait()
            # the dead child is noticed and replaced before the next batch
            assert await writer.add_assignments(rows(10, start=10)) == 10
            # a child that dies mid-batch fails that batch (the caller keeps the rows)
            writer._proc.stdin.close()
            with pytest.raises(OSError, match="assignment writer"):
                await writer.add_assignments(rows(5, start=20))
            assert await writer.add_assignments(rows(5, start=20)) == 5
        finally:
            await writer.aclose()

    asyncio.run(main())
    assert len(store.timeline("e1")) == 25


def test_a_write_the_database_refuses_is_reported_not_swallowed(tmp_path):
    url = f"sqlite:///{tmp_path}/meta.db"
    writer = AssignmentWriter(url)
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
