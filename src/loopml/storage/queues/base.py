"""The queue contract shared by the embedded SQLite queue and Redis Streams.

A *topic* is split into numbered *partitions*; a message's key picks its partition, so
all messages of one key are read in the order they were published. Consumers read as a
named *group*: each message goes to one consumer of the group and stays *pending* until
that consumer acknowledges it. A consumer that dies leaves its messages pending; when it
comes back, :meth:`Queue.recover` hands them to it again (or :meth:`Queue.claim_stale`
moves a dead consumer's messages to a live one). Delivery is therefore at-least-once:
consumers acknowledge only after the effect of a message is durable, and deduplicate
by event id or position so a redelivered message never counts twice. High-rate
consumers read with :meth:`Queue.consume_batch`, which hands over a delivery as columns
(:class:`MessageBatch`) and acks it in one call.

A producer may *pack* messages published together (``publish_many(..., pack=n)``): up
to ``n`` consecutive messages of one partition share one stored entry, as Kafka's record
batches do, so a backend whose cost is per entry (Redis Streams) pays it once per pack.
Consumers still see one message per event, each with a position of its own (an entry's
position plus the event's index in it), and a packed entry is acknowledged in the
backend only once every one of its events is.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from loopml.core.errors import ClosedError, ValidationError
from loopml.core.names import check_name

#: A position inside one partition, comparable across messages of that partition: the
#: entry's two numbers, plus the event's index for an event of a packed entry.
Position = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """One delivered message: where it sits in the topic, its key and its decoded payload."""

    topic: str
    partition: int
    id: str
    position: Position
    key: str | None
    payload: dict[str, Any]
    deliveries: int = 1


class MessageBatch(Sequence[Message]):
    """One delivery held as parallel columns instead of one :class:`Message` per entry.

    A consumer that applies thousands of small events a second spends more time building
    per-message objects than the queue spends delivering them. A batch keeps ids,
    positions, keys and decoded payloads as lists (what a learner loops over), acks in one
    call, and builds a :class:`Message` only when one is asked for (``batch[i]``,
    iteration), so it still reads as a sequence of messages.

    >>> batch = MessageBatch("events", [0, 0], ["1", "2"], [(1, 0), (2, 0)], [None, "u1"],
    ...                      [{"n": 1}, {"n": 2}])
    >>> len(batch), batch[1].key, [m.payload["n"] for m in batch]
    (2, 'u1', [1, 2])
    >>> len(MessageBatch.concat([batch, batch])), batch.receipt().payloads
    (4, [None, None])
    """

    __slots__ = ("deliveries", "ids", "keys", "partitions", "payloads", "positions", "topic")

    def __init__(
        self,
        topic: str,
        partitions: list[int],
        ids: list[str],
        positions: list[Position],
        keys: list[str | None],
        payloads: list[dict[str, Any]],
        deliveries: list[int] | None = None,
    ) -> None:
        self.topic = topic
        self.partitions = partitions
        self.ids = ids
        self.positions = positions
        self.keys = keys
        self.payloads = payloads
        self.deliveries = deliveries if deliveries is not None else [1] * len(ids)

    @classmethod
    def empty(cls, topic: str) -> MessageBatch:
        return cls(topic, [], [], [], [], [], [])

    @classmethod
    def from_messages(cls, messages: Iterable[Message], topic: str = "") -> MessageBatch:
        """The columns of ``messages`` (all of one topic)."""
        ms = list(messages)
        return cls(
            ms[0].topic if ms else topic,
            [m.partition for m in ms],
            [m.id for m in ms],
            [m.position for m in ms],
            [m.key for m in ms],
            [m.payload for m in ms],
            [m.deliveries for m in ms],
        )

    @classmethod
    def concat(cls, batches: Sequence[MessageBatch]) -> MessageBatch:
        """One batch holding every message of ``batches`` in order (e.g. to ack them at once)."""
        if len(batches) == 1:
            return batches[0]
        out = cls.empty(batches[0].topic if batches else "")
        for b in batches:
            out.extend(b)
        return out

    def extend(self, other: MessageBatch) -> None:
        self.partitions += other.partitions
        self.ids += other.ids
        self.positions += other.positions
        self.keys += other.keys
        self.payloads += other.payloads
        self.deliveries += other.deliveries

    def receipt(self) -> MessageBatch:
        """What an ack needs (ids, partitions, positions), without the payloads.

        A consumer holding applied batches until its next commit keeps receipts, so the
        decoded events are freed as soon as they are applied.
        """
        return MessageBatch(
            self.topic,
            self.partitions,
            self.ids,
            self.positions,
            self.keys,
            [None] * len(self.ids),  # type: ignore[list-item]
            self.deliveries,
        )

    def messages(self) -> list[Message]:
        return [self[i] for i in range(len(self.ids))]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Message:  # type: ignore[override]
        return Message(
            self.topic,
            self.partitions[i],
            self.ids[i],
            self.positions[i],
            self.keys[i],
            self.payloads[i],
            self.deliveries[i],
        )

    def __iter__(self) -> Iterator[Message]:
        for i in range(len(self.ids)):
            yield self[i]

    def __repr__(self) -> str:
        return f"MessageBatch({self.topic!r}, {len(self)} messages)"


def partition_for(key: str | None, partitions: int) -> int:
    """The partition of ``key``: a stable hash, so one key always lands in one partition.

    >>> partition_for("user-7", 4) == partition_for("user-7", 4)
    True
    >>> partition_for(None, 4)
    0
    """
    if key is None or partitions == 1:
        return 0
    return zlib.crc32(key.encode()) % partitions


def check_topic(topic: str) -> str:
    return check_name(topic, "topic")


def check_partitions(partitions: object) -> int:
    if (
        isinstance(partitions, bool)
        or not isinstance(partitions, int)
        or not 1 <= partitions <= 256
    ):
        raise ValidationError(
            f"partitions must be an integer from 1 to 256, got {partitions!r}", field="partitions"
        )
    return partitions


@dataclass(frozen=True)
class ReadAhead:
    """A batch read that is under way: ``result()`` waits for it, ``cancel()`` drops it
    (its messages stay delivered and unacked, so a consumer's recovery finds them)."""

    result: Callable[[], MessageBatch]
    cancel: Callable[[], None]


class Queue(ABC):
    """Publish, consume as a group, acknowledge; one class per backend.

    Use as a context manager; a closed queue refuses further use with :class:`ClosedError`.
    """

    def read_ahead(
        self, topic: str, group: str, consumer: str, count: int = 100
    ) -> ReadAhead | None:
        """Start reading the next batch now and collect it later, or None when the backend
        cannot (an embedded queue: its read is the caller's own CPU anyway)."""
        return None

    url: str

    def __init__(self) -> None:
        self._closed = False

    # -- topics ------------------------------------------------------------------------
    @abstractmethod
    def create_topic(self, topic: str, partitions: int = 1) -> int:
        """Create ``topic`` (idempotent); return its partition count, which never changes."""

    @abstractmethod
    def partitions(self, topic: str) -> int:
        """The partition count of ``topic``; 1 for a topic never created."""

    @abstractmethod
    def topics(self) -> list[str]:
        """Every topic that exists."""

    @abstractmethod
    def length(self, topic: str) -> int:
        """Messages currently stored in ``topic`` (all partitions)."""

    @abstractmethod
    def delete_topic(self, topic: str) -> None:
        """Drop ``topic``, its messages, groups and pending entries."""

    # -- producing -----------------------------------------------------------------------
    def publish(self, topic: str, payload: dict[str, Any], key: str | None = None) -> str:
        """Append one message; return its id."""
        return self.publish_many(topic, [payload], [key])[0]

    @abstractmethod
    def publish_many(
        self,
        topic: str,
        payloads: Sequence[dict[str, Any]],
        keys: Sequence[str | None] | None = None,
        pack: int = 1,
    ) -> list[str]:
        """Append messages in order, atomically where the backend allows; return their ids.

        ``pack`` > 1 lets the backend store up to that many consecutive messages of one
        partition as one entry (see the module docstring); a backend whose cost is per
        message anyway may ignore it. Nothing waits to fill a pack: only messages of this
        call are packed together.
        """

    # -- consuming -----------------------------------------------------------------------
    @abstractmethod
    def consume_batch(
        self,
        topic: str,
        group: str,
        consumer: str,
        count: int = 100,
        block_ms: int = 0,
        partitions: Iterable[int] | None = None,
    ) -> MessageBatch:
        """Deliver up to ``count`` new messages to ``consumer`` as one :class:`MessageBatch`
        (columns, no per-message objects); they stay pending until acked.

        Messages come in publish order within each partition. ``block_ms`` waits that long
        for new messages when there are none. ``partitions`` restricts which partitions
        this consumer reads (all when None), so several consumers can share a topic while
        each key keeps its order.
        """

    def consume(
        self,
        topic: str,
        group: str,
        consumer: str,
        count: int = 100,
        block_ms: int = 0,
        partitions: Iterable[int] | None = None,
    ) -> list[Message]:
        """:meth:`consume_batch` as :class:`Message` objects."""
        return self.consume_batch(topic, group, consumer, count, block_ms, partitions).messages()

    @abstractmethod
    def recover(
        self, topic: str, group: str, consumer: str, partitions: Iterable[int] | None = None
    ) -> list[Message]:
        """Every message delivered to ``consumer`` but never acked (e.g. before a crash)."""

    @abstractmethod
    def claim_stale(self, topic: str, group: str, consumer: str, min_idle_ms: int) -> list[Message]:
        """Move to ``consumer`` the pending messages of any consumer idle for ``min_idle_ms``."""

    @abstractmethod
    def ack(self, topic: str, group: str, messages: Iterable[Message] | MessageBatch) -> int:
        """Acknowledge processed messages (a list or a batch); return how many were pending."""

    @abstractmethod
    def pending(self, topic: str, group: str) -> int:
        """Messages delivered to the group and not yet acknowledged."""

    @abstractmethod
    def lag(self, topic: str, group: str) -> int:
        """Messages published but not yet delivered to the group."""

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        self._closed = True

    def _select(self, topic: str, partitions: Iterable[int] | None) -> list[int]:
        """The partitions of ``topic`` to read: all of them, or the valid ones asked for."""
        check_topic(topic)
        total = self.partitions(topic)
        if partitions is None:
            return list(range(total))
        chosen = sorted(set(partitions))
        bad = [p for p in chosen if not 0 <= p < total]
        if bad:
            raise ValidationError(
                f"topic {topic!r} has partitions 0..{total - 1}; got {bad}", field="partitions"
            )
        return chosen

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"queue {self.url} is closed; open a new one with open_queue()")

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def check_count(count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValidationError(f"count must be a positive integer, got {count!r}", field="count")
    return count


def check_keys(payloads: Sequence[Any], keys: Sequence[str | None] | None) -> list[str | None]:
    if keys is None:
        return [None] * len(payloads)
    keys = list(keys)
    if len(keys) != len(payloads):
        raise ValidationError(
            f"keys has {len(keys)} entries but payloads has {len(payloads)}; give one key per "
            "payload or none",
            field="keys",
        )
    return keys


def check_pack(pack: object) -> int:
    if isinstance(pack, bool) or not isinstance(pack, int) or not 1 <= pack <= 100_000:
        raise ValidationError(
            f"pack must be an integer from 1 to 100000 (messages per stored entry), got {pack!r}",
            field="pack",
        )
    return pack


def check_payload(payload: object) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValidationError(
            f"a message payload must be a dict, got {type(payload).__name__}", field="payload"
        )
    return payload
