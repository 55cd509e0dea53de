"""The knobs of the simulated world, checked once so a bad value fails at construction.

Every default is the project's embedded data set: 20k users, 500 items, two weeks of
about 100k impressions a day, a log-format change on day 7 and a preference shift plus
a new user segment on day 10. Changing ``seed`` gives a different but equally shaped
world; the same config always gives identical frames.
"""

from __future__ import annotations

import datetime as dt
import numbers
from dataclasses import dataclass, fields

from loopml.core.clock import to_utc
from loopml.core.errors import ValidationError

#: Microseconds per day: timestamps inside the sim are int64 microseconds since the epoch.
US_PER_DAY = 86_400_000_000

#: Segments of the users who exist before day 0, with their shares.
SEGMENTS: tuple[tuple[str, float], ...] = (
    ("organic", 0.55),
    ("paid_social", 0.30),
    ("referral", 0.15),
)

_KINDS: dict[str, tuple[type, str]] = {
    "int": (numbers.Integral, "an integer"),
    "float": (numbers.Real, "a number"),
    "str": (str, "a string"),
}


@dataclass(frozen=True)
class WorldConfig:
    """Settings of one simulated world (see :mod:`loopml.sim.world` for the model).

    ``format_change_day`` and ``shift_day`` may lie beyond ``days``: the event then
    simply does not happen inside the generated window.

    >>> WorldConfig(days=3).start_datetime.isoformat()
    '2026-01-05T00:00:00+00:00'
    >>> WorldConfig(n_users=0)
    Traceback (most recent call last):
    ...
    loopml.core.errors.ValidationError: WorldConfig.n_users must be >= 1, got 0
    """

    seed: int = 0
    n_users: int = 20_000
    n_items: int = 500
    n_categories: int = 12
    days: int = 14
    start: str = "2026-01-05"  # UTC midnight of day 0
    impressions_per_day: int = 100_000  # approximate; slates of slate_size items per request
    slate_size: int = 5
    base_ctr: float = 0.03  # overall click rate lands at a few percent (imbalance)
    format_change_day: int = 7  # from this day impressions are schema_version 2 with `device`
    shift_day: int = 10  # preference shift for a fraction of users + a new segment appears
    shift_fraction: float = 0.5
    conversion_rate: float = 0.08  # P(conversion | click), arriving hours to days later
    new_segment: str = "promo_2026"  # the user segment that starts signing up on shift_day
    new_segment_fraction: float = 0.15  # its size, as a fraction of n_users

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            kind, name = _KINDS[str(f.type)]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValidationError(
                    f"WorldConfig.{f.name} must be {name}, got {value!r} ({type(value).__name__})",
                    field=f.name,
                )
        _at_least(self, "seed", 0)
        _at_least(self, "n_users", 1)
        _at_least(self, "n_items", 1)
        _at_least(self, "n_categories", 1)
        _at_least(self, "days", 1)
        _at_least(self, "slate_size", 1)
        _at_least(self, "impressions_per_day", 0)
        _at_least(self, "format_change_day", 0)
        _at_least(self, "shift_day", 0)
        if self.slate_size > self.n_items:
            raise ValidationError(
                f"WorldConfig.slate_size ({self.slate_size}) exceeds n_items ({self.n_items}): "
                "a slate shows distinct items; lower slate_size or raise n_items",
                field="slate_size",
            )
        _open_unit(self, "base_ctr", "pick a click rate such as 0.03")
        _closed_unit(self, "shift_fraction")
        _closed_unit(self, "conversion_rate")
        _closed_unit(self, "new_segment_fraction")
        taken = [name for name, _ in SEGMENTS]
        if not self.new_segment or self.new_segment in taken:
            raise ValidationError(
                f"WorldConfig.new_segment must be a new, non-empty segment name, got "
                f"{self.new_segment!r}; existing segments are {', '.join(taken)}",
                field="new_segment",
            )
        start = self.start_datetime  # raises on an unparseable value
        if start.time() != dt.time(0, 0):
            raise ValidationError(
                f"WorldConfig.start must be a UTC midnight, got {self.start!r}; "
                f"use a date such as {start.date().isoformat()!r}",
                field="start",
            )

    @property
    def start_datetime(self) -> dt.datetime:
        """Day 0 at UTC midnight, timezone-aware."""
        try:
            return to_utc(self.start)
        except ValueError as exc:
            raise ValidationError(
                f"WorldConfig.start {self.start!r} is not a date; use ISO format like '2026-01-05'",
                field="start",
            ) from exc

    @property
    def start_us(self) -> int:
        """Day 0 as int64 microseconds since the epoch (the sim's internal clock)."""
        start = self.start_datetime
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (start - epoch) // dt.timedelta(microseconds=1)

    def day_start_us(self, day: int) -> int:
        """UTC midnight of ``day`` in epoch microseconds."""
        return self.start_us + day * US_PER_DAY

    @property
    def n_new_users(self) -> int:
        """Users of ``new_segment``; they sign up from ``shift_day`` on."""
        return round(self.new_segment_fraction * self.n_users)


def _at_least(cfg: WorldConfig, name: str, low: int) -> None:
    value = getattr(cfg, name)
    if value < low:
        raise ValidationError(f"WorldConfig.{name} must be >= {low}, got {value!r}", field=name)


def _open_unit(cfg: WorldConfig, name: str, hint: str) -> None:
    value = getattr(cfg, name)
    if not 0.0 < value < 1.0:
        raise ValidationError(
            f"WorldConfig.{name} must be > 0 and < 1, got {value!r}; {hint}", field=name
        )


def _closed_unit(cfg: WorldConfig, name: str) -> None:
    value = getattr(cfg, name)
    if not 0.0 <= value <= 1.0:
        raise ValidationError(
            f"WorldConfig.{name} must be between 0 and 1 (inclusive), got {value!r}",
            field=name,
        )
