"""Time windows written the way people say them: ``30m``, ``1h``, ``1d``, ``7d``, ``2w``."""

from __future__ import annotations

import re

from loopml.core.errors import ValidationError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def window_seconds(window: str, what: str = "window") -> int:
    """Seconds in ``window``.

    >>> window_seconds("7d")
    604800
    >>> window_seconds("7 days")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    loopml.core.errors.ValidationError: window '7 days' is not understood; ...
    """
    match = _PATTERN.match(window) if isinstance(window, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValidationError(
            f"{what} {window!r} is not understood; write a count and a unit: "
            f"s, m, h, d or w (e.g. '30m', '1h', '7d')",
            field=what,
        )
    return int(match.group(1)) * _UNITS[match.group(2)]
