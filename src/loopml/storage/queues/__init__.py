"""Message queues for pattern 4: the embedded SQLite queue and Redis Streams, one contract.

``open_queue(url)`` picks the backend from the URL scheme, as ``storage.queue`` in
``loopml.toml`` names it.
"""

from __future__ import annotations

from loopml.core.errors import ConfigError
from loopml.storage.queues.base import Message, MessageBatch, Position, Queue, partition_for
from loopml.storage.queues.dedup import SeenIds

__all__ = [
    "Message",
    "MessageBatch",
    "Position",
    "Queue",
    "SeenIds",
    "open_queue",
    "partition_for",
]


def open_queue(url: str, namespace: str = "loopml") -> Queue:
    """Open the queue at ``url``: ``sqlite:///path`` or ``redis://host:port/db``.

    ``namespace`` prefixes Redis keys so several projects can share one server; the
    SQLite queue is already private to its file.

    >>> import tempfile
    >>> q = open_queue(f"sqlite:///{tempfile.mkdtemp()}/queue.db")
    >>> type(q).__name__
    'SQLiteQueue'
    >>> open_queue("kafka://broker:9092")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    loopml.core.errors.ConfigError: queue URL 'kafka://broker:9092' is not supported; use sqlite:///...
    """
    if url.startswith("sqlite:///"):
        from loopml.storage.queues.sqlite_queue import SQLiteQueue

        return SQLiteQueue(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from loopml.storage.queues.redis_streams import RedisStreamsQueue

        return RedisStreamsQueue(url, namespace=namespace)
    raise ConfigError(
        f"queue URL {url!r} is not supported; use sqlite:///path/queue.db (embedded) or "
        "redis://host:6379/0 (Redis Streams)",
        key="storage.queue",
    )
