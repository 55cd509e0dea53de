"""Time in one place: UTC everywhere, and a clock tests can replace."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """Timezone-aware current UTC time."""
    return dt.datetime.now(dt.UTC)


def to_utc(value: dt.datetime | str) -> dt.datetime:
    """Parse or normalise a timestamp to aware UTC; naive values are taken as UTC.

    >>> to_utc("2026-01-02T03:04:05").isoformat()
    '2026-01-02T03:04:05+00:00'
    """
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
