"""Message payloads on the wire: JSON via orjson, with numpy scalars and arrays allowed."""

from __future__ import annotations

from typing import Any

import orjson

from loopml.core.errors import ValidationError

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def encode(payload: dict[str, Any]) -> bytes:
    """JSON bytes of ``payload``; a value JSON cannot hold is a clear error, not a lost message.

    >>> encode({"event_id": "e1", "x": 1.5})
    b'{"event_id":"e1","x":1.5}'
    """
    try:
        return orjson.dumps(payload, option=_OPTIONS)
    except TypeError as exc:
        raise ValidationError(
            f"message payload cannot be encoded as JSON ({exc}); send str, int, float, bool, "
            "None, lists, dicts, datetimes or numpy values",
            field="payload",
        ) from None


def decode(data: bytes | str) -> dict[str, Any]:
    """The payload dict back from its JSON bytes."""
    return orjson.loads(data)
