"""Packed entries (``publish_many(..., pack=n)``): one message per event, the contract unchanged.

Redis Streams stores up to ``n`` events of a partition in one entry; the SQLite queue
accepts ``pack`` and stores a row per event. Both must read, order, ack, recover and
survive a SIGKILL exactly as with one entry per event.
"""

from __future__ import annotations

import textwrap
import threading
import time
import uuid

import pytest
from tests.storage.conftest import run_until_killed

from loopml.core.errors import ValidationError
from loopml.storage.queues import MessageBatch, Queue, SeenIds, open_queue, partition_for


def _events(n: int, start: int = 0) -> list[dict]:
    return [{"event_id": f"e{i}", "n": i} for i in range(start, start + n)]


def _is_redis(queue: Queue) -> bool:
    return queue.url.startswith("redis")


@pytest.mark.parametrize("queue_spec", ["sqlite", "redis"], indirect=True)
def test_reads_cut_across_packed_entries_one_message_per_event(queue: Queue) -> None:
    ids = queue.publish_many("events", _events(25), pack=10)  # entries of 10, 10 and 5
    assert len(set(ids)) == 25
    assert queue.length("events") == 25 and queue.lag("events", "g") == 25
    got: list[MessageBatch] = []
    while batch := queue.consume_batch("events", "g", "c", count=7):
        assert len(batch) <= 7  # count counts events, whatever the entries hold
        got.append(batch)
    assert [len(b) for b in got] == [7, 7, 7, 4]
    everything = MessageBatch.concat(got)
    assert [p["n"] for p in everything.payloads] == list(range(25))
    assert everything.ids == ids  # the ids publish returned, one per event
    positions = everything.positions
    assert positions == sorted(positions) and len(set(positions)) == 25
    assert list(everything) == [everything[i] for i in range(25)]
    assert queue.lag("events", "g") == 0 and queue.pending("events", "g") == 25
    assert queue.ack("events", "g", everything) == 25
    assert queue.ack("events", "g", everything) == 0  # acking twice changes nothing
    assert queue.pending("events", "g") == 0 and queue.length("events") == 25
    with pytest.raises(ValidationError, match="pack"):
        queue.publish_many("events", _events(2), pack=0)


@pytest.mark.parametrize("queue_spec", ["sqlite", "redis"], indirect=True)
def test_ordering_per_key_across_packed_entries_and_consumers(queue: Queue) -> None:
    queue.create_topic("clicks", partitions=4)
    keys = [f"user-{k}" for k in range(12)]
    payloads, msg_keys = [], []
    for i in range(240):
        key = keys[(i * 7) % len(keys)]
        payloads.append({"key": key, "i": i})
        msg_keys.append(key)
    for start in range(0, 240, 60):  # four publishes, entries of up to 5 per partition
        queue.publish_many("clicks", payloads[start : start + 60], msg_keys[start : start + 60], 5)
    seen: dict[str, list[tuple[str, int]]] = {}
    for _ in range(30):  # two consumers, two partitions each, reads that split entries
        for consumer, parts in (("a", [0, 1]), ("b", [2, 3])):
            got = queue.consume_batch("clicks", "g", consumer, count=3, partitions=parts)
            for m in got:
                assert m.partition == partition_for(m.key, 4)
                seen.setdefault(m.payload["key"], []).append((consumer, m.payload["i"]))
            queue.ack("clicks", "g", got)
    assert sum(len(v) for v in seen.values()) == 240
    for key, items in seen.items():
        assert len({c for c, _ in items}) == 1, f"{key} went to two consumers"
        order = [i for _, i in items]
        assert order == sorted(order), f"{key} arrived out of order"
    assert queue.pending("clicks", "g") == 0 and queue.lag("clicks", "g") == 0


@pytest.mark.parametrize("queue_spec", ["sqlite", "redis"], indirect=True)
def test_single_and_packed_entries_mixed_in_one_stream(queue: Queue) -> None:
    queue.publish_many("events", _events(3))  # three plain entries
    queue.publish_many("events", _events(9, 3), pack=4)  # 4 + 4 + 1 (a lone one is plain)
    queue.publish("events", {"event_id": "e12", "n": 12})
    queue.publish_many("events", _events(6, 13), pack=6)
    assert queue.length("events") == 19
    first = queue.consume_batch("events", "g", "c", count=5)
    second = queue.consume("events", "g", "c", count=5)
    third = queue.consume_batch("events", "g", "c", count=100)
    got = list(first) + second + list(third)
    assert [m.payload["n"] for m in got] == list(range(19))
    positions = [m.position for m in got]
    assert positions == sorted(positions) and len(set(positions)) == 19
    if _is_redis(queue):  # plain entries keep their two-number position
        assert [len(p) for p in positions] == [2] * 3 + [3] * 8 + [2, 2] + [3] * 6
    assert queue.ack("events", "g", second + list(first)) == 10  # out of order, across kinds
    assert queue.pending("events", "g") == 9
    assert queue.ack("events", "g", third) == 9
    assert queue.pending("events", "g") == 0 and queue.lag("events", "g") == 0


def test_a_packed_entry_is_xacked_only_once_all_its_events_are(redis_url) -> None:
    q = open_queue(redis_url, namespace=f"test-{uuid.uuid4().hex[:10]}")
    try:
        q.publish_many("events", _events(10), pack=10)
        stream = q._stream("events", 0)  # type: ignore[attr-defined]
        raw = q._redis  # type: ignore[attr-defined]
        head = q.consume_batch("events", "g", "c", count=6)
        assert raw.xpending(stream, "g")["pending"] == 1
        assert q.ack("events", "g", [head[i] for i in (0, 2, 5)]) == 3
        assert q.ack("events", "g", [head[0]]) == 0  # twice changes nothing
        assert raw.xpending(stream, "g")["pending"] == 1  # the entry stays in the PEL
        assert q.pending("events", "g") == 7
        left = q.recover("events", "g", "c")  # what this client has not acked, in order
        assert [m.payload["n"] for m in left] == [1, 3, 4, 6, 7, 8, 9]
        assert len(q.consume_batch("events", "g", "c")) == 0  # recover handed the rest over
        assert q.ack("events", "g", left[:-1]) == 6
        assert raw.xpending(stream, "g")["pending"] == 1
        assert q.ack("events", "g", left) == 1  # the last event completes the entry
        assert raw.xpending(stream, "g")["pending"] == 0
        assert q.pending("events", "g") == 0
    finally:
        q.purge()
        q.close()


@pytest.mark.parametrize("queue_spec", ["sqlite", "redis"], indirect=True)
def test_a_redelivered_packed_entry_counts_once_with_dedup(queue_spec) -> None:
    url, namespace = queue_spec
    q1 = open_queue(url, namespace=namespace)
    q1.publish_many("events", _events(25), pack=10)
    first = q1.consume("events", "g", "learner", count=15)
    assert q1.ack("events", "g", first[:12]) == 12  # entry 1 and two events of entry 2
    q1.close()  # "crash": the rest of entry 2 was delivered, not acked
    q2 = open_queue(url, namespace=namespace)
    back = q2.recover("events", "g", "learner")
    got = [m.payload["n"] for m in back]
    assert set(range(12, 15)) <= set(got)  # nothing unacked is lost
    if _is_redis(q2):  # a new client knows nothing of the partial ack: the whole entry
        assert got == list(range(10, 20))
    assert all(m.deliveries >= 2 for m in back)
    rest = q2.consume("events", "g", "learner", count=100)
    seen, counted = SeenIds(), 0
    for m in first[:12] + back + rest:
        counted += seen.add(m.payload["event_id"])
    assert counted == 25  # every event once, though some came twice
    q2.ack("events", "g", back + rest)
    assert q2.pending("events", "g") == 0 and q2.recover("events", "g", "learner") == []
    q2.close()


@pytest.mark.parametrize("queue_spec", ["sqlite", "redis"], indirect=True)
def test_sigkill_inside_a_packed_entry_loses_nothing(queue_spec) -> None:
    url, namespace = queue_spec
    q = open_queue(url, namespace=namespace)
    q.publish_many("events", _events(100), pack=8)
    script = textwrap.dedent(
        f"""
        import time
        from loopml.storage.queues import open_queue
        q = open_queue({url!r}, namespace={namespace!r})
        got = q.consume("events", "g", "worker", count=30)  # ends inside entry 4 (24..31)
        q.ack("events", "g", got[:13])  # entry 1 whole, entry 2 in part
        print(len(got), flush=True)
        time.sleep(60)
        """
    )
    assert run_until_killed(script) == "30"
    back = [m.payload["n"] for m in q.recover("events", "g", "worker")]
    if _is_redis(q):  # whole entries 2-4: the killed client's partial ack died with it
        assert back == list(range(8, 32))
    else:
        assert back == list(range(13, 30))
    rest = [m.payload["n"] for m in q.consume("events", "g", "worker", count=1000)]
    assert rest == list(range(back[-1] + 1, 100))
    assert sorted(set(range(13)) | set(back) | set(rest)) == list(range(100))
    q.close()


@pytest.mark.parametrize("queue_spec", ["sqlite", "redis"], indirect=True)
def test_a_blocking_read_gets_packed_events_published_while_it_waits(queue_spec) -> None:
    url, namespace = queue_spec
    q = open_queue(url, namespace=namespace)
    assert len(q.consume_batch("events", "g", "c")) == 0  # the group exists, nothing yet

    def publish_later() -> None:
        time.sleep(0.2)
        with open_queue(url, namespace=namespace) as producer:
            producer.publish_many("events", _events(25), pack=10)

    producer = threading.Thread(target=publish_later)
    producer.start()
    try:
        got = q.consume_batch("events", "g", "c", count=12, block_ms=5000)
    finally:
        producer.join(timeout=10)
    assert [p["n"] for p in got.payloads] == list(range(12))  # topped up past one entry
    rest = q.consume_batch("events", "g", "c", count=100)
    assert [p["n"] for p in rest.payloads] == list(range(12, 25))
    assert q.ack("events", "g", MessageBatch.concat([got, rest])) == 25
    assert q.pending("events", "g") == 0
    q.close()
