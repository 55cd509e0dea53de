"""From queue payloads to what the learner acts on: examples, labels and profile facts.

Two vocabularies arrive on the events topic:

- loopml's behaviour events (the sim's and a real app's): ``user`` and ``item``
  snapshots update profiles; an ``impression`` becomes an example whose features are
  its own fields plus the user's and item's latest attributes (a stream-table join);
  a ``click`` is the positive label of the impression it names.
- generic labelled streams: ``{"type": "example", "x": {...}, "y": ...}`` (``y``
  optional) and ``{"type": "label", "example_id": ..., "y": ...}``.

Anything else is counted and skipped. Bad events raise :class:`ValidationError` naming
the field, so the runner can dead-letter them and carry on.
"""

from __future__ import annotations

import datetime as dt
from math import isfinite
from typing import Any

from loopml.core.errors import ValidationError

EXAMPLE, LABEL, PROFILE, OTHER = "example", "label", "profile", "other"

#: Raw columns an impression example carries; a CTR snapshot's signature.
CTR_COLUMNS = (
    "item_id",
    "position",
    "hour",
    "device",
    "country",
    "age_band",
    "segment",
    "category",
    "publisher",
)
_USER_FIELDS = ("country", "age_band", "segment")
_ITEM_FIELDS = ("category", "publisher")
_HOURS = tuple(str(h) for h in range(24))


def event_time(value: Any, event_type: str = "event") -> float:
    """Epoch seconds from a number, an ISO string or a datetime.

    >>> event_time("2026-01-05T01:00:00Z")
    1767574800.0
    """
    kind = type(value)
    if (kind is float or kind is int) and isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            value = None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    raise ValidationError(
        f"{event_type} event: ts {value!r} is not a time; send epoch seconds or an ISO-8601 "
        "string such as '2026-01-05T10:00:00Z'",
        field="ts",
    )


class EventReader:
    """Classify payloads and build impression features from the profiles seen so far.

    It is part of the learner's state (the profiles travel in its checkpoint).

    >>> r = EventReader()
    >>> r.read({"type": "item", "event_id": "a", "ts": 0, "item_id": "i1", "category": "news"})[0]
    'profile'
    >>> kind, ts, eid, x, y = r.read({"type": "impression", "event_id": "m1", "ts": 3600,
    ...     "item_id": "i1", "user_id": "u1", "position": 2})
    >>> kind, x["category"], x["position"], x["hour"]
    ('example', 'news', '2', '1')
    """

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}

    def read(self, payload: dict[str, Any]) -> tuple[str, float, str, Any, Any]:
        """``(kind, ts, event_id, x_or_example_id, y)`` for one payload."""
        event_type = payload.get("type")
        event_id = payload.get("event_id")
        if not isinstance(event_id, str) or not event_id:
            raise ValidationError(
                f"{event_type or 'untyped'} event has no event_id (got {event_id!r}); every "
                "event needs a unique string id so redelivery counts once",
                field="event_id",
            )
        ts = payload.get("ts")
        if ts.__class__ is float and isfinite(ts):
            pass  # the common case, decided without a call
        elif ts is None and "ts" not in payload:
            raise ValidationError(
                f"{event_type} event {event_id} has no ts; send epoch seconds", field="ts"
            )
        else:
            ts = event_time(ts, str(event_type))
        if event_type == "impression":
            return EXAMPLE, ts, event_id, self._impression(payload, ts), None
        if event_type == "click":
            return LABEL, ts, event_id, _required(payload, "impression_id"), True
        if event_type == "example":
            x = payload.get("x")
            if not isinstance(x, dict):
                raise ValidationError(
                    f"example event {event_id}: x must be an object of features, got "
                    f"{type(x).__name__}",
                    field="x",
                )
            return EXAMPLE, ts, event_id, x, payload.get("y")
        if event_type == "label":
            if "y" not in payload:
                raise ValidationError(f"label event {event_id} has no y", field="y")
            return LABEL, ts, event_id, _required(payload, "example_id"), payload["y"]
        if event_type == "user":
            uid = _required(payload, "user_id")
            self.users[uid] = _attributes(payload, _USER_FIELDS)
            return PROFILE, ts, event_id, None, None
        if event_type == "item":
            iid = _required(payload, "item_id")
            self.items[iid] = _attributes(payload, _ITEM_FIELDS)
            return PROFILE, ts, event_id, None, None
        return OTHER, ts, event_id, None, None

    def impression_features(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Raw features of an impression (or a prediction request shaped like one)."""
        ts = payload.get("ts")
        return self._impression(payload, None if ts is None else event_time(ts))

    def _impression(self, payload: dict[str, Any], ts: float | None) -> dict[str, Any]:
        item_id = payload.get("item_id")
        if not isinstance(item_id, str) or not item_id:
            _required(payload, "item_id")
        x: dict[str, Any] = {"item_id": item_id}
        position = payload.get("position")
        if position is not None:
            x["position"] = str(position)
        if ts is not None:
            x["hour"] = _HOURS[int(ts // 3600 % 24)]
        device = payload.get("device")
        if device is not None:
            x["device"] = device
        # profiles hold only the attributes that were set (see _attributes)
        user = self.users.get(payload.get("user_id"))
        if user:
            x.update(user)
        item = self.items.get(item_id)
        if item:
            x.update(item)
        return x

    def __setstate__(self, state: dict[str, Any]) -> None:
        # profiles from checkpoints written before _attributes may hold None values
        for table in ("users", "items"):
            state[table] = {
                k: {a: v for a, v in attrs.items() if v is not None}
                for k, attrs in state.get(table, {}).items()
            }
        self.__dict__.update(state)


def _attributes(payload: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The profile attributes ``payload`` sets (absent and None ones left out)."""
    return {k: v for k in names if (v := payload.get(k)) is not None}


def _required(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise ValidationError(
            f"{payload.get('type')} event {payload.get('event_id')}: {name} must be a "
            f"non-empty string, got {value!r}",
            field=name,
        )
    return value
