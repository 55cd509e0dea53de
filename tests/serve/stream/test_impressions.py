"""Impressions encoded from cached profile parts equal the reader + front general path."""

from __future__ import annotations

import random

import pytest

from loopml.serve.stream.events import EventReader
from loopml.serve.stream.features import Crosses, OneHot, compile_front
from loopml.serve.stream.impressions import ImpressionEncoder
from loopml.serve.stream.models import make_model, split_stateless
from loopml.serve.stream.produce import event_payloads
from loopml.sim.config import WorldConfig
from loopml.sim.world import World


def _general(reader: EventReader, front: list, payload: dict) -> dict:
    return compile_front(front)(reader.impression_features(payload))


def test_every_impression_of_a_stream_encodes_exactly_like_the_general_path() -> None:
    world = World(
        WorldConfig(days=1, impressions_per_day=4000, n_users=300, n_items=40, format_change_day=0)
    )
    front, _ = split_stateless(make_model("logreg"))
    reader = EventReader()
    kinds: dict[str, str] = {}
    encode = ImpressionEncoder.for_front(front, reader, kinds).encode
    rng = random.Random(5)
    compared = 0
    for payload, _ in event_payloads(world.generate()):
        if payload["type"] != "impression":
            reader.read(payload)
            if payload["type"] == "user" and rng.random() < 0.2:  # a profile changes later
                changed = dict(payload, segment="returning", event_id=payload["event_id"] + "b")
                reader.read(changed)
            continue
        event = dict(payload)
        variant = rng.random()
        if variant < 0.1:
            event.pop("position", None)
        elif variant < 0.2:
            event.pop("device", None)
        elif variant < 0.3:
            event["position"] = str(event.get("position", 1))
        elif variant < 0.35:
            event["user_id"] = "nobody"
        got = encode(event)
        assert got is not None
        assert list(got.items()) == list(_general(reader, front, event).items())
        compared += 1
    assert compared == 4000
    assert set(kinds) == {
        "item_id", "position", "hour", "device", "country", "age_band", "segment", "category",
        "publisher",
    }  # fmt: skip


def test_profiles_with_numbers_and_updates_between_impressions() -> None:
    front = [Crosses([("age_band", "category"), ("device", "category")]), OneHot()]
    reader = EventReader()
    encode = ImpressionEncoder.for_front(front, reader, {}).encode
    event = {"type": "impression", "event_id": "m", "ts": 7200.5, "user_id": "u", "item_id": "i"}
    reader.read({"type": "user", "event_id": "u1", "ts": 0, "user_id": "u", "age_band": 31})
    reader.read({"type": "item", "event_id": "i1", "ts": 0, "item_id": "i", "category": 4.5})
    for device in (None, "web", "ios", "web"):
        e = event if device is None else dict(event, device=device)
        assert list(encode(e).items()) == list(_general(reader, front, e).items())
    reader.read({"type": "item", "event_id": "i2", "ts": 1, "item_id": "i", "category": "news"})
    reader.read({"type": "user", "event_id": "u2", "ts": 1, "user_id": "u", "country": "KR"})
    e = dict(event, device="web")
    assert list(encode(e).items()) == list(_general(reader, front, e).items())
    assert "age_band|category=31|news" not in encode(e)  # the new profile has no age band


@pytest.mark.parametrize(
    "change",
    [
        {"ts": 7200},  # an int ts: read() converts it
        {"ts": "2026-01-05T01:00:00Z"},
        {"position": 1.0},  # 1, 1.0 and True are one dict key but three features
        {"position": True},
        {"device": 3},
        {"item_id": ""},
        {"ts": float("nan")},
    ],
)
def test_unusual_impressions_are_left_to_the_general_path(change: dict) -> None:
    front, _ = split_stateless(make_model("logreg"))
    encode = ImpressionEncoder.for_front(front, EventReader(), {}).encode
    event = {"type": "impression", "event_id": "m", "ts": 7200.0, "item_id": "i", "position": 1}
    assert encode(event) is not None
    assert encode(dict(event, **change)) is None


def test_only_crosses_of_user_or_device_with_item_attributes_are_encoded() -> None:
    reader = EventReader()

    def encoder(pairs: list) -> ImpressionEncoder | None:
        return ImpressionEncoder.for_front([Crosses(pairs), OneHot()], reader, {})

    assert encoder([("segment", "category"), ("device", "publisher")]) is not None
    assert encoder([]) is not None
    for pairs in ([("position", "category")], [("category", "segment")], [("segment", "x")]):
        assert encoder(pairs) is None  # the general path handles them
    assert ImpressionEncoder.for_front([OneHot()], reader, {}) is None
