"""Cron schedules: when a job is next due, checked once when the job is added.

Standard five-field cron expressions (``*/15 * * * *``) and the ``@hourly``,
``@daily``, ``@weekly``, ``@monthly`` shorthands, evaluated in UTC with croniter.
"""

from __future__ import annotations

import datetime as dt

from loopml.core.clock import to_utc
from loopml.core.errors import UnavailableError, ValidationError

_EXAMPLES = "'*/15 * * * *' (every 15 minutes), '0 3 * * *' (03:00 daily), '@hourly'"


def _croniter():  # noqa: ANN202
    try:
        from croniter import croniter
    except ModuleNotFoundError as exc:  # pragma: no cover - installed with loopml[jobs]
        raise UnavailableError(
            "cron schedules need croniter; install it with `pip install 'loopml[jobs]'`"
        ) from exc
    return croniter


def check_cron(expr: str) -> str:
    """Return ``expr`` if it is a valid cron expression, else raise with examples.

    >>> check_cron("*/5 * * * *")
    '*/5 * * * *'
    >>> check_cron("every 5 minutes")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    loopml.core.errors.ValidationError: schedule 'every 5 minutes' is not a cron expression; ...
    """
    if not isinstance(expr, str) or not _croniter().is_valid(expr.strip()):
        raise ValidationError(
            f"schedule {expr!r} is not a cron expression; use five fields "
            f"(minute hour day month weekday), e.g. {_EXAMPLES}",
            field="schedule",
        )
    return expr.strip()


def next_run(expr: str, after: dt.datetime | str) -> dt.datetime:
    """The first time strictly after ``after`` that ``expr`` fires (UTC).

    >>> next_run("0 3 * * *", "2026-01-05T04:00:00Z").isoformat()
    '2026-01-06T03:00:00+00:00'
    """
    base = to_utc(after)
    return to_utc(_croniter()(check_cron(expr), base).get_next(dt.datetime))
