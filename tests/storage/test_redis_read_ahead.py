"""Redis read-ahead: a read sent before it is needed delivers exactly what a read would."""

from __future__ import annotations

import uuid

import pytest

from loopml.storage.queues import open_queue


@pytest.fixture
def queue(redis_url):
    q = open_queue(redis_url, namespace=f"ra{uuid.uuid4().hex[:8]}")
    yield q
    q.purge()
    q.close()


def test_a_read_ahead_returns_the_next_batch_in_order(queue):
    queue.publish_many("events", [{"event_id": f"e{i}", "n": i} for i in range(30)])
    first = queue.consume_batch("events", "g", "c", count=10)
    ahead = queue.read_ahead("events", "g", "c", count=10)
    # the connection of the read in flight is its own: other commands go on meanwhile
    assert queue.pending("events", "g") == 20  # the server has already run the read
    second = ahead.result()
    third = queue.consume_batch("events", "g", "c", count=10)
    got = [p["n"] for b in (first, second, third) for p in b.payloads]
    assert got == list(range(30))
    queue.ack("events", "g", [m for b in (first, second, third) for m in b.messages()])
    assert queue.pending("events", "g") == 0


def test_a_cancelled_read_ahead_leaves_its_messages_for_recovery(queue):
    queue.publish_many("events", [{"event_id": f"e{i}", "n": i} for i in range(5)])
    ahead = queue.read_ahead("events", "g", "c", count=5)
    ahead.cancel()  # e.g. the learner was interrupted before it collected the batch
    back = queue.recover("events", "g", "c")
    assert sorted(m.payload["n"] for m in back) == [0, 1, 2, 3, 4]
    # the pool's connections still answer the right replies
    queue.publish("events", {"event_id": "e5", "n": 5})
    assert [p["n"] for p in queue.consume_batch("events", "g", "c", count=10).payloads] == [5]
