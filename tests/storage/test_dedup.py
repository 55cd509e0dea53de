"""Seen event ids: bounded, exact, checked a batch at a time, and cheap to checkpoint."""

from __future__ import annotations

import pickle
import random

import pytest

from loopml.storage.queues import SeenIds


def test_a_batch_check_and_extend_equal_adding_one_by_one() -> None:
    rng = random.Random(0)
    one, bulk = SeenIds(capacity=500), SeenIds(capacity=500)
    for _ in range(40):
        batch = [f"e{rng.randrange(3000)}" for _ in range(rng.randrange(1, 120))]
        answers = [one.add(e) for e in batch]
        if bulk.all_new(batch):
            assert all(answers)
            bulk.extend(batch)
        else:
            assert not all(answers)
            for e in batch:
                bulk.add(e)
        assert list(bulk._order) == list(one._order) and bulk._ids == one._ids
    assert len(one) == 500
    assert not SeenIds().all_new(["a", "a"]) and not SeenIds().all_new([["unhashable"]])


@pytest.mark.parametrize(
    "ids",
    [[], [""], ["a", "b\x00c", "d"], [1, 2.5, ("t", 1)], [f"imp-{i}" for i in range(2000)]],
)
def test_pickles_round_trip_with_order_and_capacity(ids: list) -> None:
    seen = SeenIds(capacity=1500)
    for i in ids:
        seen.add(i)
    back = pickle.loads(pickle.dumps(seen))
    assert list(back._order) == list(seen._order) and back._ids == seen._ids
    assert back.capacity == 1500 and len(back) == min(len(ids), 1500)
    assert back.add("new") and not back.add("new")
