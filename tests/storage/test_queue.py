"""One contract suite over both queues: the embedded SQLite queue and real Redis Streams."""

from __future__ import annotations

import textwrap
import time

import pytest
from tests.storage.conftest import run_until_killed

from loopml.core.errors import ClosedError, ConfigError, ValidationError
from loopml.storage.queues import MessageBatch, Queue, SeenIds, open_queue, partition_for

BACKENDS = ["sqlite", "redis"]


pytestmark = pytest.mark.parametrize("queue_spec", BACKENDS, indirect=True)


def test_publish_consume_ack_in_order(queue: Queue) -> None:
    ids = queue.publish_many("events", [{"event_id": f"e{i}", "n": i} for i in range(25)])
    assert len(set(ids)) == 25
    got = queue.consume("events", "g", "c1", count=10)
    assert [m.payload["n"] for m in got] == list(range(10))
    assert [m.id for m in got] == ids[:10]
    assert queue.pending("events", "g") == 10
    assert queue.lag("events", "g") == 15
    assert queue.ack("events", "g", got[:4]) == 4
    assert queue.ack("events", "g", got[:4]) == 0  # acking twice changes nothing
    assert queue.pending("events", "g") == 6
    rest = queue.consume("events", "g", "c1", count=100)
    assert [m.payload["n"] for m in rest] == list(range(10, 25))
    assert queue.consume("events", "g", "c1") == []
    # a second group reads the whole topic independently
    other = queue.consume("events", "g2", "c", count=100)
    assert len(other) == 25
    assert queue.length("events") == 25
    assert "events" in queue.topics()


def test_positions_increase_within_a_partition(queue: Queue) -> None:
    queue.publish_many("events", [{"i": i} for i in range(30)])
    got = queue.consume("events", "g", "c", count=30)
    positions = [m.position for m in got]
    assert positions == sorted(positions) and len(set(positions)) == 30


def test_ordering_per_key_across_partitions_and_consumers(queue: Queue) -> None:
    assert queue.create_topic("clicks", partitions=4) == 4
    assert queue.create_topic("clicks", partitions=8) == 4  # the count never changes
    keys = [f"user-{k}" for k in range(12)]
    payloads, msg_keys = [], []
    for i in range(240):
        key = keys[(i * 7) % len(keys)]
        payloads.append({"key": key, "i": i})
        msg_keys.append(key)
    queue.publish_many("clicks", payloads, msg_keys)
    seen: dict[str, list[tuple[str, int]]] = {}
    for _ in range(20):  # two consumers share the topic, two partitions each, small reads
        for consumer, parts in (("a", [0, 1]), ("b", [2, 3])):
            for m in queue.consume("clicks", "g", consumer, count=7, partitions=parts):
                assert m.partition == partition_for(m.key, 4)
                seen.setdefault(m.payload["key"], []).append((consumer, m.payload["i"]))
    assert sum(len(v) for v in seen.values()) == 240
    for key, items in seen.items():
        assert len({c for c, _ in items}) == 1, f"{key} went to two consumers"
        order = [i for _, i in items]
        assert order == sorted(order), f"{key} arrived out of order"


def test_unacked_messages_are_redelivered_and_dedup_counts_once(queue_spec) -> None:
    url, namespace = queue_spec
    q1 = open_queue(url, namespace=namespace)
    # the producer retries one publish: event e3 is in the topic twice
    events = [{"event_id": f"e{i}"} for i in range(6)] + [{"event_id": "e3"}]
    q1.publish_many("events", events)
    first = q1.consume("events", "g", "learner", count=4)
    q1.ack("events", "g", first[:2])
    q1.close()  # "crash" with two delivered, unacked messages
    q2 = open_queue(url, namespace=namespace)
    redelivered = q2.recover("events", "g", "learner")
    assert [m.payload["event_id"] for m in redelivered] == ["e2", "e3"]
    assert all(m.deliveries >= 2 for m in redelivered)
    rest = q2.consume("events", "g", "learner", count=100)
    seen, counted = SeenIds(), 0
    for m in first[:2] + redelivered + rest:
        counted += seen.add(m.payload["event_id"])
    assert counted == 6  # seven messages, six distinct events
    q2.ack("events", "g", redelivered + rest)
    assert q2.pending("events", "g") == 0
    assert q2.recover("events", "g", "learner") == []
    q2.close()


def test_claim_stale_moves_a_dead_consumers_messages(queue: Queue) -> None:
    queue.publish_many("events", [{"i": i} for i in range(5)])
    taken = queue.consume("events", "g", "dead", count=5)
    assert len(taken) == 5
    time.sleep(0.05)
    assert queue.claim_stale("events", "g", "alive", min_idle_ms=60_000) == []
    claimed = queue.claim_stale("events", "g", "alive", min_idle_ms=10)
    assert [m.payload["i"] for m in claimed] == [0, 1, 2, 3, 4]
    assert queue.recover("events", "g", "dead") == []
    assert len(queue.recover("events", "g", "alive")) == 5


def test_blocking_consume_waits_then_returns_empty(queue: Queue) -> None:
    queue.create_topic("quiet")
    start = time.monotonic()
    assert queue.consume("quiet", "g", "c", block_ms=150) == []
    assert time.monotonic() - start >= 0.12


def test_pending_survives_sigkill_of_the_consumer_process(queue_spec) -> None:
    url, namespace = queue_spec
    q = open_queue(url, namespace=namespace)
    q.publish_many("events", [{"i": i} for i in range(100)])
    script = textwrap.dedent(
        f"""
        import sys, time
        from loopml.storage.queues import open_queue
        q = open_queue({url!r}, namespace={namespace!r})
        got = q.consume("events", "g", "worker", count=40)
        q.ack("events", "g", got[:15])
        print(len(got), flush=True)
        time.sleep(60)
        """
    )
    assert run_until_killed(script) == "40"
    back = q.recover("events", "g", "worker")
    assert [m.payload["i"] for m in back] == list(range(15, 40))
    assert [m.payload["i"] for m in q.consume("events", "g", "worker", count=100)] == list(
        range(40, 100)
    )
    q.close()


def test_bad_input_is_refused_with_the_field_named(queue: Queue) -> None:
    with pytest.raises(ValidationError, match="partitions"):
        queue.create_topic("t", partitions=0)
    with pytest.raises(ValidationError, match="keys has 1 entries"):
        queue.publish_many("t", [{}, {}], keys=["a"])
    with pytest.raises(ValidationError, match="must be a dict"):
        queue.publish("t", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="cannot be encoded"):
        queue.publish("t", {"x": object()})
    with pytest.raises(ValidationError, match="topic"):
        queue.publish("../etc", {})
    with pytest.raises(ValidationError, match="partitions 0..0"):
        queue.consume("t", "g", "c", partitions=[3])
    with pytest.raises(ValidationError, match="count"):
        queue.consume("t", "g", "c", count=0)
    queue.close()
    with pytest.raises(ClosedError, match="closed"):
        queue.publish("t", {})


def test_unknown_scheme_names_the_choices(queue_spec) -> None:
    with pytest.raises(ConfigError, match="redis://"):
        open_queue("amqp://localhost")


def test_a_batch_read_holds_the_same_messages_as_a_plain_read(queue_spec) -> None:
    url, namespace = queue_spec
    payloads = [{"event_id": f"e{i}", "n": i, "x": {"f": i / 3}} for i in range(40)]
    keys = [None, "u1", 'quo"te', "ünï-ḱey", "u1"] * 8
    with open_queue(url, namespace=namespace) as q:
        q.create_topic("events", partitions=3)
        q.publish_many("events", payloads, keys)
        plain = q.consume("events", "a", "c", count=100)
        batch = q.consume_batch("events", "b", "c", count=100)
        assert len(batch) == len(plain) == 40
        assert list(batch) == plain  # same topic, partition, id, position, key, payload
        assert batch.payloads == [m.payload for m in plain]
        assert len(q.consume_batch("events", "b", "c")) == 0
        assert q.ack("events", "b", batch) == 40 and q.pending("events", "b") == 0


def test_acking_part_of_a_batch_leaves_exactly_the_rest_pending(queue_spec) -> None:
    url, namespace = queue_spec
    with open_queue(url, namespace=namespace) as q:
        for i in range(30):  # two topics interleaved: one topic's messages are not adjacent
            q.publish("events", {"n": i})
            q.publish("other", {"n": i})
        first = q.consume_batch("events", "g", "c", count=12)
        second = q.consume_batch("events", "g", "c", count=12)
        done = [first[i] for i in (0, 1, 5, 11)] + [second[3]]
        assert q.ack("events", "g", done) == 5
        assert q.ack("events", "g", done) == 0  # twice changes nothing
        assert q.pending("events", "g") == 19
        left = q.recover("events", "g", "c")
        assert [m.payload["n"] for m in left] == [
            n for n in range(24) if n not in (0, 1, 5, 11, 15)
        ]
        assert all(m.deliveries == 2 for m in left)
        assert q.ack("events", "g", MessageBatch.from_messages(left)) == 19
        assert q.pending("events", "g") == 0 and q.pending("other", "g") == 0
        assert q.lag("events", "g") == 6
