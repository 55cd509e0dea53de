"""The embedded queue's own file: pending work kept per delivery, and older queue files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from loopml.storage.queues import open_queue


def test_a_queue_file_with_per_message_pending_rows_keeps_its_pending_work(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    with open_queue(url) as q:
        q.publish_many("events", [{"n": i} for i in range(6)])
        q.consume("events", "g", "dead", count=6)
    # the layout written before deliveries were kept as ranges: one row per message
    conn = sqlite3.connect(tmp_path / "queue.db")
    rows = conn.execute("SELECT topic, grp, lo, part, consumer, delivered_at FROM deliveries")
    rows = rows.fetchall()
    conn.execute("DROP TABLE deliveries")
    conn.execute(
        "CREATE TABLE pending (topic TEXT NOT NULL, grp TEXT NOT NULL, seq INTEGER NOT NULL, "
        "part INTEGER NOT NULL, consumer TEXT NOT NULL, delivered_at REAL NOT NULL, "
        "deliveries INTEGER NOT NULL, PRIMARY KEY (topic, grp, seq)) WITHOUT ROWID"
    )
    (topic, grp, lo, part, consumer, at) = rows[0]
    conn.executemany(
        "INSERT INTO pending VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (topic, grp, seq, part, consumer, at, 1 + (seq % 2))
            for seq in range(lo, lo + 6)
            if seq != lo + 2
        ],  # fmt: skip
    )
    conn.commit()
    conn.close()
    with open_queue(url) as q:
        assert q.pending("events", "g") == 5
        back = q.recover("events", "g", "dead")
        assert [m.payload["n"] for m in back] == [0, 1, 3, 4, 5]
        assert [m.deliveries for m in back] == [3, 2, 2, 3, 2]  # each row kept its count
        assert q.ack("events", "g", back) == 5 and q.pending("events", "g") == 0
    tables = sqlite3.connect(tmp_path / "queue.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    )
    assert "pending" not in {name for (name,) in tables}


def test_one_delivery_is_one_row_however_many_messages(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    with open_queue(url) as q:
        q.publish_many("events", [{"n": i} for i in range(2500)])
        batches = [q.consume_batch("events", "g", "c", count=1000) for _ in range(3)]
        assert [len(b) for b in batches] == [1000, 1000, 500]
        rows = q._conn.execute("SELECT lo, hi FROM deliveries ORDER BY lo").fetchall()
        assert rows == [(1, 1000), (1001, 2000), (2001, 2500)]
        assert q.pending("events", "g") == 2500
        assert q.ack("events", "g", batches[1]) == 1000
        assert q._conn.execute("SELECT COUNT(*) FROM deliveries").fetchone() == (2,)
