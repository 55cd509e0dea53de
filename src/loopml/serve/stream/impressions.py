"""The CTR model's input for an impression, built from cached per-user and per-item parts.

An impression becomes features in two stateless steps: the reader joins the event with
the latest user and item profiles (:meth:`EventReader.impression_features`), then the
model's ``Crosses | OneHot`` front crosses and one-hot encodes the result. Done per
event that is two dicts and some twenty string formats, most of them repeating what
the previous impression of the same user or item produced. :class:`ImpressionEncoder`
encodes each profile once (until it changes) and assembles an impression's input from
those parts: the same keys, values and key order as the two steps (the tests check it
on every impression of a simulated stream), in less than half the time.

It handles the well-formed common case only; for anything else (a ``ts`` that is not
a float, a missing ``item_id``, a position of an unusual type, ...) it answers None and
the learner takes the general path, which is also the one that reports bad events.
"""

from __future__ import annotations

from collections.abc import Callable
from math import isfinite
from typing import Any

from loopml.serve.stream.events import _HOURS, _ITEM_FIELDS, _USER_FIELDS, EventReader
from loopml.serve.stream.features import Crosses, OneHot, note_kinds

_HOUR_NAMES = tuple(f"hour={h}" for h in _HOURS)
_OWN_FIELDS = ("item_id", "position", "hour", "device")
_SMALL = 10_000  # caches keyed by a raw value (positions, devices) stop growing here

Encode = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class ImpressionEncoder:
    """``OneHot(Crosses(reader.impression_features(payload)))`` with per-profile caches.

    Build it with :meth:`for_front`, which returns None when the front or its crosses
    are not of the shape it knows (then the general path is used). Crosses may pair a
    user attribute or the device with an item attribute (the default CTR crosses).

    >>> reader = EventReader()
    >>> _ = reader.read({"type": "user", "event_id": "u", "ts": 0, "user_id": "u1",
    ...                  "segment": "paid"})
    >>> _ = reader.read({"type": "item", "event_id": "i", "ts": 0, "item_id": "i1",
    ...                  "category": "news"})
    >>> steps = [Crosses([("segment", "category")]), OneHot()]
    >>> encode = ImpressionEncoder.for_front(steps, reader, {}).encode
    >>> event = {"type": "impression", "event_id": "m", "ts": 3600.0, "user_id": "u1",
    ...          "item_id": "i1", "position": 1}
    >>> list(encode(event))  # doctest: +NORMALIZE_WHITESPACE
    ['item_id=i1', 'position=1', 'hour=1', 'segment=paid', 'category=news',
     'segment|category=paid|news']
    >>> encode(event) == steps[1].transform_one(steps[0].transform_one(
    ...     reader.impression_features(event)))
    True
    """

    def __init__(
        self, pairs: list[tuple[str, str]], reader: EventReader, kinds: dict[str, str]
    ) -> None:
        self.pairs = pairs
        self._kinds = kinds
        self.encode: Encode = self._compile(reader)

    @classmethod
    def for_front(
        cls, steps: list[Any], reader: EventReader, kinds: dict[str, str]
    ) -> ImpressionEncoder | None:
        """An encoder for the stateless ``steps`` of a model, or None if it cannot be one.

        ``kinds`` is the learner's record of raw columns and their kinds; the encoder
        adds the columns it produces.
        """
        if not (
            len(steps) == 2
            and type(steps[0]) is Crosses
            and type(steps[1]) is OneHot
            and type(reader) is EventReader
        ):
            return None
        pairs = [(a, b) for a, b in steps[0].pairs]
        for a, b in pairs:
            if b not in _ITEM_FIELDS or (a not in _USER_FIELDS and a != "device"):
                return None
        return cls(pairs, reader, kinds)

    def _compile(self, reader: EventReader) -> Encode:
        users, items = reader.users, reader.items  # the reader's live profile tables
        pairs = self.pairs
        heads = [f"{a}|{b}=" for a, b in pairs]
        by_device = [a == "device" for a, _ in pairs]
        kinds = self._kinds

        def note(attrs: dict[str, Any]) -> None:
            note_kinds(kinds, attrs)

        # item id -> (profile, "item_id=..", one-hot attributes, crosses' item values)
        item_parts: dict[str, tuple[Any, str, dict[str, Any], tuple[str | None, ...]]] = {}
        # user id -> (profile, {device: (device and user one-hot, crosses' user values)})
        user_parts: dict[Any, tuple[Any, dict[Any, tuple[dict[str, Any], tuple]]]] = {}
        nobody: dict[Any, tuple[dict[str, Any], tuple]] = {}  # the same without a profile
        # the crosses of one (user values, item values) combination: few distinct ones,
        # shared by every user and item with those values (tuples interned to match)
        crossed: dict[tuple[tuple, tuple], dict[str, float]] = {}
        interned: dict[tuple, tuple] = {}
        positions: dict[Any, str] = {}
        own = dict.fromkeys(_OWN_FIELDS, "")  # their kind: strings (category)

        def intern(values: tuple) -> tuple:
            if len(interned) >= _SMALL:
                return values
            return interned.setdefault(values, values)

        def item_part(item_id: str, profile: dict[str, Any] | None) -> tuple:
            attrs = profile or {}
            note(own)
            note(attrs)
            tails = intern(tuple(None if (v := attrs.get(b)) is None else f"{v}" for _, b in pairs))
            part = (profile, f"item_id={item_id}", OneHot().transform_one(attrs), tails)
            item_parts[item_id] = part
            return part

        def user_part(profile: dict[str, Any], device: str | None) -> tuple:
            start = {} if device is None else {f"device={device}": 1.0}
            start.update(OneHot().transform_one(profile))
            heads_now = []
            for (a, _), head, dev in zip(pairs, heads, by_device, strict=True):
                v = device if dev else profile.get(a)
                heads_now.append(None if v is None else f"{head}{v}|")
            return start, intern(tuple(heads_now))

        def encode(payload: dict[str, Any]) -> dict[str, Any] | None:
            ts = payload.get("ts")
            item_id = payload.get("item_id")
            device = payload.get("device")
            if (
                ts.__class__ is not float
                or item_id.__class__ is not str
                or not item_id
                or (device is not None and device.__class__ is not str)
                or not isfinite(ts)
            ):
                return None
            item_profile = items.get(item_id)
            item = item_parts.get(item_id)
            if item is None or item[0] is not item_profile:
                item = item_part(item_id, item_profile)
            out = {item[1]: 1.0}
            position = payload.get("position")
            if position is not None:
                # exact classes only: 1, 1.0 and True are one dict key but three features
                if position.__class__ is not int and position.__class__ is not str:
                    return None
                name = positions.get(position)
                if name is None:
                    name = f"position={position}"
                    if len(positions) < _SMALL:
                        positions[position] = name
                out[name] = 1.0
            out[_HOUR_NAMES[int(ts // 3600 % 24)]] = 1.0
            user_id = payload.get("user_id")
            profile = users.get(user_id)
            if profile:
                user = user_parts.get(user_id)
                if user is None or user[0] is not profile:
                    note(profile)
                    user = user_parts[user_id] = (profile, {})
                by_dev = user[1]
            else:
                by_dev = nobody
            part = by_dev.get(device)
            if part is None:
                part = user_part(profile or {}, device)
                if len(by_dev) < _SMALL:
                    by_dev[device] = part
            out.update(part[0])
            out.update(item[2])
            key = (part[1], item[3])
            cross = crossed.get(key)
            if cross is None:
                cross = {
                    h + t: 1.0 for h, t in zip(*key, strict=True) if h is not None and t is not None
                }
                if len(crossed) < _SMALL:
                    crossed[key] = cross
            out.update(cross)
            return out

        return encode
