"""The embedded queue: one SQLite file, durable across a process kill, shared by processes.

Every publish and every delivery is a committed transaction in WAL mode, so a consumer
killed with SIGKILL leaves its delivered-but-unacked messages in the ``pending`` table,
and :meth:`SQLiteQueue.recover` hands them back when it restarts. It needs no service and
is the default ``storage.queue``; Redis Streams is the same contract on a real server.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from loopml.storage.queues.base import (
    Message,
    Queue,
    check_count,
    check_keys,
    check_partitions,
    check_payload,
    check_topic,
    partition_for,
)
from loopml.storage.queues.codec import decode, encode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (topic TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, part INTEGER NOT NULL,
    key TEXT, payload BLOB NOT NULL, published_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_partition ON messages (topic, part, seq);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, grp TEXT NOT NULL, part INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    PRIMARY KEY (topic, grp, part)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    topic TEXT NOT NULL, grp TEXT NOT NULL, seq INTEGER NOT NULL, part INTEGER NOT NULL,
    consumer TEXT NOT NULL, delivered_at REAL NOT NULL, deliveries INTEGER NOT NULL,
    PRIMARY KEY (topic, grp, seq)) WITHOUT ROWID;
"""
_POLL_S = 0.02


class SQLiteQueue(Queue):
    """A durable queue in one SQLite file.

    >>> import tempfile
    >>> q = SQLiteQueue(f"sqlite:///{tempfile.mkdtemp()}/q.db")
    >>> q.publish("events", {"event_id": "e1"}, key="u1")
    '1'
    >>> [m.payload for m in q.consume("events", "learner", "c1")]
    [{'event_id': 'e1'}]
    >>> q.pending("events", "learner")
    1
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        path = url.removeprefix("sqlite:///")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)
        self._parts: dict[str, int] = {}

    # -- helpers -----------------------------------------------------------------------
    def _write(self):  # noqa: ANN202
        return _Transaction(self._conn, self._lock)

    # -- topics ------------------------------------------------------------------------
    def create_topic(self, topic: str, partitions: int = 1) -> int:
        self._check_open()
        check_topic(topic)
        check_partitions(partitions)
        with self._write() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO topics (topic, partitions) VALUES (?, ?)",
                (topic, partitions),
            )
            (count,) = cur.execute(
                "SELECT partitions FROM topics WHERE topic = ?", (topic,)
            ).fetchone()
        self._parts[topic] = count
        return count

    def partitions(self, topic: str) -> int:
        self._check_open()
        if topic in self._parts:
            return self._parts[topic]
        with self._lock:
            row = self._conn.execute(
                "SELECT partitions FROM topics WHERE topic = ?", (topic,)
            ).fetchone()
        if row is None:
            return 1
        self._parts[topic] = row[0]
        return row[0]

    def topics(self) -> list[str]:
        self._check_open()
        with self._lock:
            rows = self._conn.execute("SELECT topic FROM topics ORDER BY topic").fetchall()
        return [r[0] for r in rows]

    def length(self, topic: str) -> int:
        self._check_open()
        with self._lock:
            (n,) = self._conn.execute(
                "SELECT COUNT(*) FROM messages WHERE topic = ?", (topic,)
            ).fetchone()
        return n

    def delete_topic(self, topic: str) -> None:
        self._check_open()
        with self._write() as cur:
            for table in ("messages", "offsets", "pending", "topics"):
                cur.execute(f"DELETE FROM {table} WHERE topic = ?", (topic,))
        self._parts.pop(topic, None)

    # -- producing -----------------------------------------------------------------------
    def publish_many(
        self,
        topic: str,
        payloads: Sequence[dict[str, Any]],
        keys: Sequence[str | None] | None = None,
    ) -> list[str]:
        self._check_open()
        check_topic(topic)
        keys = check_keys(payloads, keys)
        parts = self.partitions(topic) if topic in self._parts else self.create_topic(topic)
        now = time.time()
        rows = [
            (topic, partition_for(k, parts), k, encode(check_payload(p)), now)
            for p, k in zip(payloads, keys, strict=True)
        ]
        with self._write() as cur:
            # BEGIN IMMEDIATE excludes other writers, so the new seqs are contiguous.
            row = cur.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
            start = row[0] if row else 0
            cur.executemany(
                "INSERT INTO messages (topic, part, key, payload, published_at) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return [str(start + i + 1) for i in range(len(rows))]

    # -- consuming -----------------------------------------------------------------------
    def consume(
        self,
        topic: str,
        group: str,
        consumer: str,
        count: int = 100,
        block_ms: int = 0,
        partitions: Iterable[int] | None = None,
    ) -> list[Message]:
        self._check_open()
        check_count(count)
        parts = self._select(topic, partitions)
        deadline = time.monotonic() + block_ms / 1000.0
        while True:
            out = self._deliver(topic, group, consumer, count, parts)
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(_POLL_S)

    def _deliver(
        self, topic: str, group: str, consumer: str, count: int, parts: list[int]
    ) -> list[Message]:
        now = time.time()
        out: list[Message] = []
        with self._write() as cur:
            for part in parts:
                row = cur.execute(
                    "SELECT last_seq FROM offsets WHERE topic = ? AND grp = ? AND part = ?",
                    (topic, group, part),
                ).fetchone()
                last = row[0] if row else 0
                rows = cur.execute(
                    "SELECT seq, key, payload FROM messages WHERE topic = ? AND part = ? "
                    "AND seq > ? ORDER BY seq LIMIT ?",
                    (topic, part, last, count),
                ).fetchall()
                if not rows:
                    continue
                cur.executemany(
                    "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?, 1)",
                    [(topic, group, seq, part, consumer, now) for seq, _, _ in rows],
                )
                cur.execute(
                    "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?, ?)",
                    (topic, group, part, rows[-1][0]),
                )
                out.extend(
                    Message(topic, part, str(seq), (seq, 0), key, decode(data))
                    for seq, key, data in rows
                )
        return out

    def recover(
        self, topic: str, group: str, consumer: str, partitions: Iterable[int] | None = None
    ) -> list[Message]:
        self._check_open()
        parts = self._select(topic, partitions)
        marks = ",".join("?" * len(parts))
        now = time.time()
        with self._write() as cur:
            rows = cur.execute(
                "SELECT p.seq, p.part, m.key, m.payload, p.deliveries FROM pending p "
                "JOIN messages m ON m.seq = p.seq WHERE p.topic = ? AND p.grp = ? "
                f"AND p.consumer = ? AND p.part IN ({marks}) ORDER BY p.seq",
                (topic, group, consumer, *parts),
            ).fetchall()
            cur.executemany(
                "UPDATE pending SET deliveries = deliveries + 1, delivered_at = ? "
                "WHERE topic = ? AND grp = ? AND seq = ?",
                [(now, topic, group, seq) for seq, *_ in rows],
            )
        return [
            Message(topic, part, str(seq), (seq, 0), key, decode(data), deliveries + 1)
            for seq, part, key, data, deliveries in rows
        ]

    def claim_stale(self, topic: str, group: str, consumer: str, min_idle_ms: int) -> list[Message]:
        self._check_open()
        check_topic(topic)
        now = time.time()
        cutoff = now - min_idle_ms / 1000.0
        with self._write() as cur:
            rows = cur.execute(
                "SELECT p.seq, p.part, m.key, m.payload, p.deliveries FROM pending p "
                "JOIN messages m ON m.seq = p.seq WHERE p.topic = ? AND p.grp = ? "
                "AND p.consumer != ? AND p.delivered_at <= ? ORDER BY p.seq",
                (topic, group, consumer, cutoff),
            ).fetchall()
            cur.executemany(
                "UPDATE pending SET consumer = ?, deliveries = deliveries + 1, delivered_at = ? "
                "WHERE topic = ? AND grp = ? AND seq = ?",
                [(consumer, now, topic, group, seq) for seq, *_ in rows],
            )
        return [
            Message(topic, part, str(seq), (seq, 0), key, decode(data), deliveries + 1)
            for seq, part, key, data, deliveries in rows
        ]

    def ack(self, topic: str, group: str, messages: Iterable[Message]) -> int:
        self._check_open()
        seqs = [(topic, group, m.position[0]) for m in messages]
        if not seqs:
            return 0
        with self._write() as cur:
            before = self._conn.total_changes
            cur.executemany("DELETE FROM pending WHERE topic = ? AND grp = ? AND seq = ?", seqs)
            return self._conn.total_changes - before

    def pending(self, topic: str, group: str) -> int:
        self._check_open()
        with self._lock:
            (n,) = self._conn.execute(
                "SELECT COUNT(*) FROM pending WHERE topic = ? AND grp = ?", (topic, group)
            ).fetchone()
        return n

    def lag(self, topic: str, group: str) -> int:
        self._check_open()
        total = 0
        with self._lock:
            for part in range(self.partitions(topic)):
                row = self._conn.execute(
                    "SELECT last_seq FROM offsets WHERE topic = ? AND grp = ? AND part = ?",
                    (topic, group, part),
                ).fetchone()
                (n,) = self._conn.execute(
                    "SELECT COUNT(*) FROM messages WHERE topic = ? AND part = ? AND seq > ?",
                    (topic, part, row[0] if row else 0),
                ).fetchone()
                total += n
        return total

    def close(self) -> None:
        if not self._closed:
            with self._lock:
                self._conn.close()
        super().close()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` under the queue's thread lock; rollback on error."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self._conn = conn
        self._lock = lock

    def __enter__(self) -> sqlite3.Cursor:
        self._lock.acquire()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._conn.cursor()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self._conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()
