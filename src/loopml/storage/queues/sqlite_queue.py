"""The embedded queue: one SQLite file, durable across a process kill, shared by processes.

Every publish and every delivery is a committed transaction in WAL mode, so a consumer
killed with SIGKILL leaves its delivered-but-unacked messages recorded, and
:meth:`SQLiteQueue.recover` hands them back when it restarts. It needs no service and
is the default ``storage.queue``; Redis Streams is the same contract on a real server.

What is pending is kept per delivery, not per message: a row of ``deliveries`` says
"the messages of this partition from seq ``lo`` to ``hi`` went to this consumer and are
not acked yet" (a consumer reads a partition in order, so one read is one range). An
ack of a whole delivery deletes its row; a partial ack splits it into what is left.
That is two row writes per batch where a row per message cost as much as reading it.
"""

from __future__ import annotations

import operator
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from loopml.storage.queues.base import (
    Message,
    MessageBatch,
    Queue,
    check_count,
    check_keys,
    check_pack,
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
CREATE TABLE IF NOT EXISTS deliveries (
    topic TEXT NOT NULL, grp TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,
    part INTEGER NOT NULL, consumer TEXT NOT NULL, delivered_at REAL NOT NULL,
    deliveries INTEGER NOT NULL, PRIMARY KEY (topic, grp, lo)) WITHOUT ROWID;
"""
#: The messages a delivery row stands for (``d`` a delivery, ``m`` a message).
_IN_RANGE = "m.topic = d.topic AND m.part = d.part AND m.seq BETWEEN d.lo AND d.hi"
_POLL_S = 0.02
_READ_JSON = (
    "SELECT count(*), json_group_array(seq), json_group_array(key), "
    "'[' || group_concat(CAST(payload AS TEXT), ',') || ']' FROM ("
    "SELECT seq, key, payload FROM messages WHERE topic = ? AND part = ? AND seq > ? "
    "ORDER BY seq LIMIT ?)"
)


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
        self._migrate()
        self._parts: dict[str, int] = {}
        self._json = True  # JSON aggregate reads; off if this SQLite lacks json_group_array

    # -- helpers -----------------------------------------------------------------------
    def _write(self):  # noqa: ANN202
        return _Transaction(self._conn, self._lock)

    def _migrate(self) -> None:
        """Queue files written before ``deliveries`` kept one ``pending`` row per message."""
        old = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pending'"
        ).fetchone()
        if old is None:
            return
        with self._write() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO deliveries SELECT topic, grp, seq, seq, part, consumer, "
                "delivered_at, deliveries FROM pending"
            )
            cur.execute("DROP TABLE pending")

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
            for table in ("messages", "offsets", "deliveries", "topics"):
                cur.execute(f"DELETE FROM {table} WHERE topic = ?", (topic,))
        self._parts.pop(topic, None)

    # -- producing -----------------------------------------------------------------------
    def publish_many(
        self,
        topic: str,
        payloads: Sequence[dict[str, Any]],
        keys: Sequence[str | None] | None = None,
        pack: int = 1,
    ) -> list[str]:
        """Append messages in one transaction; ``pack`` is accepted and not used.

        A read or an ack here already covers a range of rows in one statement, and the
        queue's work runs in the consumer's own process, so packing would save little:
        each message keeps its own row.
        """
        self._check_open()
        check_topic(topic)
        check_pack(pack)
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
    def consume_batch(
        self,
        topic: str,
        group: str,
        consumer: str,
        count: int = 100,
        block_ms: int = 0,
        partitions: Iterable[int] | None = None,
    ) -> MessageBatch:
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
    ) -> MessageBatch:
        now = time.time()
        out = MessageBatch.empty(topic)
        with self._write() as cur:
            for part in parts:
                row = cur.execute(
                    "SELECT last_seq FROM offsets WHERE topic = ? AND grp = ? AND part = ?",
                    (topic, group, part),
                ).fetchone()
                last = row[0] if row else 0
                got = self._read_after(cur, topic, part, last, count)
                if got is None:
                    continue
                seqs, keys, payloads = got
                # every message of the partition from seqs[0] to seqs[-1] is in this read
                cur.execute(
                    "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                    (topic, group, seqs[0], seqs[-1], part, consumer, now),
                )
                cur.execute(
                    "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?, ?)",
                    (topic, group, part, seqs[-1]),
                )
                out.extend(
                    MessageBatch(
                        topic,
                        [part] * len(seqs),
                        list(map(str, seqs)),
                        [(seq, 0) for seq in seqs],
                        keys,
                        payloads,
                    )
                )
        return out

    def _read_after(
        self, cur: sqlite3.Cursor, topic: str, part: int, last: int, count: int
    ) -> tuple[list[int], list[str | None], list[dict[str, Any]]] | None:
        """Up to ``count`` messages after ``last``: (seqs, keys, decoded payloads), or None.

        SQLite aggregates the rows into three JSON texts (seqs, keys, one array of the
        stored payloads), so a thousand messages cost three strings and one orjson parse
        instead of a thousand row tuples and a thousand parses.
        """
        if self._json:
            try:
                n, seqs, keys, payloads = cur.execute(
                    _READ_JSON, (topic, part, last, count)
                ).fetchone()
            except sqlite3.OperationalError:  # an SQLite built without JSON functions
                self._json = False
            else:
                if not n:
                    return None
                seqs = decode(seqs)
                # aggregates follow the ordered subquery; checked, never assumed
                if all(map(operator.lt, seqs, islice(seqs, 1, None))):
                    return seqs, decode(keys), decode(payloads)
        rows = cur.execute(
            "SELECT seq, key, payload FROM messages WHERE topic = ? AND part = ? "
            "AND seq > ? ORDER BY seq LIMIT ?",
            (topic, part, last, count),
        ).fetchall()
        if not rows:
            return None
        return [r[0] for r in rows], [r[1] for r in rows], [decode(r[2]) for r in rows]

    def recover(
        self, topic: str, group: str, consumer: str, partitions: Iterable[int] | None = None
    ) -> list[Message]:
        self._check_open()
        parts = self._select(topic, partitions)
        marks = ",".join("?" * len(parts))
        mine = f"{{d}}topic = ? AND {{d}}grp = ? AND {{d}}consumer = ? AND {{d}}part IN ({marks})"
        with self._write() as cur:
            rows = cur.execute(
                "SELECT m.seq, m.part, m.key, m.payload, d.deliveries FROM deliveries d "
                f"JOIN messages m ON {_IN_RANGE} WHERE {mine.format(d='d.')} ORDER BY m.seq",
                (topic, group, consumer, *parts),
            ).fetchall()
            cur.execute(
                "UPDATE deliveries SET deliveries = deliveries + 1, delivered_at = ? "
                f"WHERE {mine.format(d='')}",
                (time.time(), topic, group, consumer, *parts),
            )
        return [
            Message(topic, part, str(seq), (seq, 0), key, decode(data), deliveries + 1)
            for seq, part, key, data, deliveries in rows
        ]

    def claim_stale(self, topic: str, group: str, consumer: str, min_idle_ms: int) -> list[Message]:
        self._check_open()
        check_topic(topic)
        now = time.time()
        stale = "{d}topic = ? AND {d}grp = ? AND {d}consumer != ? AND {d}delivered_at <= ?"
        args = (topic, group, consumer, now - min_idle_ms / 1000.0)
        with self._write() as cur:
            rows = cur.execute(
                "SELECT m.seq, m.part, m.key, m.payload, d.deliveries FROM deliveries d "
                f"JOIN messages m ON {_IN_RANGE} WHERE {stale.format(d='d.')} ORDER BY m.seq",
                args,
            ).fetchall()
            cur.execute(
                "UPDATE deliveries SET consumer = ?, deliveries = deliveries + 1, "
                f"delivered_at = ? WHERE {stale.format(d='')}",
                (consumer, now, *args),
            )
        return [
            Message(topic, part, str(seq), (seq, 0), key, decode(data), deliveries + 1)
            for seq, part, key, data, deliveries in rows
        ]

    def ack(self, topic: str, group: str, messages: Iterable[Message] | MessageBatch) -> int:
        self._check_open()
        if isinstance(messages, MessageBatch):
            acked = {p[0] for p in messages.positions}
        else:
            acked = {m.position[0] for m in messages}
        if not acked:
            return 0
        done = 0
        with self._write() as cur:
            ranges = cur.execute(
                "SELECT lo, hi, part, consumer, delivered_at, deliveries FROM deliveries "
                "WHERE topic = ? AND grp = ? AND lo <= ? AND hi >= ?",
                (topic, group, max(acked), min(acked)),
            ).fetchall()
            for lo, hi, part, consumer, delivered_at, deliveries in ranges:
                seqs = self._seqs(cur, topic, part, lo, hi)
                if acked.issuperset(seqs):  # the usual case: the whole delivery is done
                    done += len(seqs)
                    cur.execute(
                        "DELETE FROM deliveries WHERE topic = ? AND grp = ? AND lo = ?",
                        (topic, group, lo),
                    )
                    continue
                n_left = sum(1 for seq in seqs if seq not in acked)
                if n_left == len(seqs):
                    continue
                done += len(seqs) - n_left
                cur.execute(
                    "DELETE FROM deliveries WHERE topic = ? AND grp = ? AND lo = ?",
                    (topic, group, lo),
                )
                # what is left: runs of the partition's consecutive messages, one row each
                cur.executemany(
                    "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (topic, group, a, b, part, consumer, delivered_at, deliveries)
                        for a, b in _runs_in(seqs, acked)
                    ],
                )
        return done

    def _seqs(self, cur: sqlite3.Cursor, topic: str, part: int, lo: int, hi: int) -> list[int]:
        """The seqs of a partition's messages from ``lo`` to ``hi``, in order."""
        where = "FROM messages WHERE topic = ? AND part = ? AND seq BETWEEN ? AND ?"
        if self._json:
            try:
                (text,) = cur.execute(
                    f"SELECT json_group_array(seq) FROM (SELECT seq {where} ORDER BY seq)",
                    (topic, part, lo, hi),
                ).fetchone()
            except sqlite3.OperationalError:
                self._json = False
            else:
                seqs = decode(text)
                seqs.sort()  # already in order: a linear check
                return seqs
        return [
            r[0] for r in cur.execute(f"SELECT seq {where} ORDER BY seq", (topic, part, lo, hi))
        ]

    def pending(self, topic: str, group: str) -> int:
        self._check_open()
        with self._lock:
            (n,) = self._conn.execute(
                f"SELECT COUNT(*) FROM deliveries d JOIN messages m ON {_IN_RANGE} "
                "WHERE d.topic = ? AND d.grp = ?",
                (topic, group),
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


def _runs_in(seqs: list[int], acked: set[int]) -> list[tuple[int, int]]:
    """(first, last) of each run of ``seqs`` (in order) that holds no acked seq.

    >>> _runs_in([3, 5, 6, 9, 10], {6})
    [(3, 5), (9, 10)]
    """
    runs = []
    start = None
    prev = None
    for seq in seqs:
        if seq in acked:
            if start is not None:
                runs.append((start, prev))
                start = None
        elif start is None:
            start = seq
        prev = seq
    if start is not None:
        runs.append((start, prev))
    return runs


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
