"""The JSON-lines spool: served events reach the log exactly once, through crashes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq

from loopml.logs.eventlog import EventLog
from loopml.logs.spool import SPOOL_DIR, SpoolWriter, settle

T0 = datetime(2026, 3, 1, 23, 59, 58, tzinfo=UTC)


def prediction(i: int, ts: datetime = T0) -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "ts": ts,
        "request_id": f"r{i}",
        "model": "ctr",
        "version": 1,
        "inputs": '{"f0":0.5}',
        "output": i / 100,
        "outputs": None,
        "latency_ms": 0.2,
        "arm": None,
        "entity_id": None,
    }


def stored_rows(log: EventLog, event_type: str = "prediction") -> int:
    """Rows in the Parquet files themselves (the views would hide duplicates)."""
    paths = [p for ps in log.partitions(event_type).values() for p in ps]
    return sum(pq.read_metadata(p).num_rows for p in paths)


def spooled(root) -> list[str]:
    """What waits in the prediction spool (its lock file aside)."""
    return sorted(p.name for p in (root / SPOOL_DIR / "prediction").iterdir() if p.name != ".lock")


def test_sealed_rows_become_queryable_once_and_the_spool_empties(tmp_path):
    log = EventLog(str(tmp_path))
    writer = log.spool_writer("prediction", seal_s=3600)
    writer.write([prediction(i) for i in range(3)])
    # across midnight: each day gets its own partition
    writer.write([prediction(3, T0 + timedelta(seconds=5))])
    assert log.counts()["prediction"] == 0  # still open: not yet visible
    writer.seal()
    found = log.sql("SELECT request_id, output, ts FROM prediction ORDER BY request_id")
    assert found["request_id"].tolist() == ["r0", "r1", "r2", "r3"]
    assert found["output"].tolist() == [0.0, 0.01, 0.02, 0.03]
    assert sorted(log.partitions("prediction")) == ["2026-03-01", "2026-03-02"]
    assert spooled(tmp_path) == []
    assert log.settle() == 0 and stored_rows(log) == 4


def test_writer_seals_by_age_and_size(tmp_path):
    writer = SpoolWriter(tmp_path, "prediction", seal_s=0.0)
    writer.write([prediction(0)])
    assert writer.due() is False  # sealed by that write: nothing open
    assert len(list((tmp_path / SPOOL_DIR / "prediction").glob("*.jsonl"))) == 1
    writer = SpoolWriter(tmp_path, "prediction", seal_s=3600, seal_rows=2)
    writer.write([prediction(1)])
    assert writer.due() is False and writer.open_path.exists()
    writer.write([prediction(2)])
    assert not writer.open_path.exists()
    assert len(list((tmp_path / SPOOL_DIR / "prediction").glob("*.jsonl"))) == 2


def test_a_settle_that_crashed_after_writing_is_finished_without_duplicates(tmp_path):
    log = EventLog(str(tmp_path))
    writer = log.spool_writer("prediction")
    writer.write([prediction(i) for i in range(5)])
    writer.seal()

    def crash_after_write(event_type, rows, name):
        log.append_generated(event_type, rows, name=name)
        raise KeyboardInterrupt("killed between the Parquet write and the clean-up")

    with contextlib.suppress(KeyboardInterrupt):
        settle(tmp_path, crash_after_write, lambda *a: None)
    left = list((tmp_path / SPOOL_DIR / "prediction").glob("settle-*"))
    assert len(left) == 1  # the batch the crashed pass took
    assert log.settle() == 5  # the re-run rewrites the same file name, then cleans up
    assert stored_rows(log) == 5
    assert spooled(tmp_path) == []


def test_a_killed_writer_is_sealed_and_its_torn_line_dead_lettered(tmp_path):
    code = f"""
import os, sys, uuid
from datetime import UTC, datetime
from loopml.logs.spool import SpoolWriter
w = SpoolWriter({str(tmp_path)!r}, "prediction", seal_s=3600)
row = dict(event_id="", ts=datetime(2026, 3, 1, tzinfo=UTC), request_id="r", model="ctr",
           version=1, inputs="{{}}", output=0.5, outputs=None, latency_ms=0.1, arm=None,
           entity_id=None)
w.write([dict(row, event_id=uuid.uuid4().hex, request_id=f"r{{i}}") for i in range(7)])
w._fh.write(b'{{"event_id": "torn", "ts": "2026-03')   # the process dies mid-line
w._fh.flush()
print("ready", flush=True)
sys.stdin.read()
"""
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdout.readline().strip() == b"ready"
    log = EventLog(str(tmp_path))
    assert log.counts()["prediction"] == 0  # its writer is alive: the file stays open
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert log.counts()["prediction"] == 7
    dead = log.dead_letters()
    assert len(dead) == 1 and "torn" in dead["row"].iloc[0]
    assert "unreadable spool line" in dead["reason"].iloc[0]
    assert dead["source"].iloc[0] == "spool"


def test_a_row_without_a_required_field_is_dead_lettered_by_name(tmp_path):
    log = EventLog(str(tmp_path))
    writer = log.spool_writer("prediction")
    bad = prediction(0)
    bad["model"] = None
    writer.write([bad, prediction(1)])
    writer.seal()
    assert log.counts()["prediction"] == 1  # the good row; reads keep working
    dead = log.dead_letters()
    assert len(dead) == 1 and "'model'" in dead["reason"].iloc[0]
    assert '"request_id":"r0"' in dead["row"].iloc[0]


def test_off_local_disk_there_is_no_spool():
    assert EventLog("memory://events").spool_writer("prediction") is None


SETTLER = """
import sys
from loopml.logs.eventlog import EventLog
print(EventLog(sys.argv[1]).settle())
"""


def test_readers_settling_at_once_store_every_row_once(tmp_path):
    log = EventLog(str(tmp_path))
    for k in range(40):  # many sealed files: a long settle that two readers overlap
        writer = log.spool_writer("prediction")
        writer.write([prediction(k * 50 + i) for i in range(50)])
        writer.seal()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SETTLER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    settled = [int(p.communicate(timeout=120)[0].strip()) for p in procs]
    assert sum(settled) == 2000
    assert stored_rows(log) == 2000 and log.counts()["prediction"] == 2000
    assert spooled(tmp_path) == []
