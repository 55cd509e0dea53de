"""Time windows and the rows inside them: what a drift or performance check looks at.

Windows are tumbling (each period on its own), sliding (the last ``size``, moved by
``step``) or cumulative (everything since the first start). The prediction log's
``inputs`` JSON is expanded into one column per feature, next to the model's
``output`` (named ``prediction``), so the same profile tests inputs and outputs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from loopml.core.clock import to_utc
from loopml.core.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.logs.eventlog import EventLog

MODES = ("cumulative", "sliding", "tumbling")
#: The column that holds the model's logged output in a prediction frame.
OUTPUT = "prediction"


def parse_duration(text: str | float | int | dt.timedelta) -> dt.timedelta:
    """``"1d"``, ``"6h"``, ``"30m"``, ``"45s"`` or seconds as a timedelta.

    >>> parse_duration("6h"), parse_duration(90)
    (datetime.timedelta(seconds=21600), datetime.timedelta(seconds=90))
    """
    if isinstance(text, dt.timedelta):
        return text
    if isinstance(text, int | float) and not isinstance(text, bool):
        return dt.timedelta(seconds=float(text))
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    value = str(text).strip().lower()
    try:
        if value and value[-1] in units:
            return dt.timedelta(seconds=float(value[:-1]) * units[value[-1]])
        return dt.timedelta(seconds=float(value))
    except ValueError:
        raise ValidationError(
            f"duration {text!r} is not valid; write a number with a unit: 30s, 15m, 6h, 1d, 1w",
            field="window",
        ) from None


def windows(
    start: dt.datetime | str,
    end: dt.datetime | str,
    size: str | dt.timedelta = "1d",
    mode: str = "tumbling",
    step: str | dt.timedelta | None = None,
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """``(window start, window end)`` pairs covering ``[start, end)``.

    >>> [(a.day, b.day) for a, b in windows("2026-01-01", "2026-01-04", "1d")]
    [(1, 2), (2, 3), (3, 4)]
    >>> [(a.day, b.day) for a, b in windows("2026-01-01", "2026-01-04", "1d", "cumulative")]
    [(1, 2), (1, 3), (1, 4)]
    >>> [(a.day, b.day) for a, b in windows("2026-01-01", "2026-01-04", "2d", "sliding", "1d")]
    [(1, 3), (2, 4)]
    """
    if mode not in MODES:
        raise ValidationError(f"window mode {mode!r} is unknown; use one of {MODES}", field="mode")
    lo, hi = to_utc(start), to_utc(end)
    width = parse_duration(size)
    stride = parse_duration(step) if step is not None else width
    if width <= dt.timedelta(0) or stride <= dt.timedelta(0):
        raise ValidationError("window size and step must be positive", field="window")
    if mode == "sliding":
        cursor = lo
        while cursor + width <= hi:
            yield cursor, cursor + width
            cursor += stride
        return
    cursor = lo
    while cursor < hi:
        stop = min(cursor + width, hi)
        yield (lo if mode == "cumulative" else cursor), stop
        cursor = stop


def prediction_frame(
    events: EventLog,
    model: str,
    start: dt.datetime | str,
    end: dt.datetime | str,
    version: int | None = None,
) -> pd.DataFrame:
    """Logged predictions of ``model`` in ``[start, end)``: one column per input feature,
    plus ``prediction`` (the output), ``version``, ``request_id``, ``entity_id``, ``arm``, ``ts``.
    """
    import orjson
    import pandas as pd

    query = (
        "SELECT ts, request_id, version, inputs, output, entity_id, arm FROM prediction "
        "WHERE model = ? AND ts >= ? AND ts < ?"
    )
    params: list[Any] = [model, to_utc(start), to_utc(end)]
    if version is not None:
        query += " AND version = ?"
        params.append(int(version))
    from loopml.logs.eventlog import to_frame

    con = events.connect(("prediction",))
    try:
        raw = to_frame(con.execute(query + " ORDER BY ts", params))
    finally:
        con.close()
    if raw.empty:
        return pd.DataFrame(columns=["ts", "request_id", "version", OUTPUT])
    inputs = pd.DataFrame.from_records(
        [orjson.loads(s) if s else {} for s in raw["inputs"].tolist()], index=raw.index
    )
    meta = raw[["ts", "request_id", "version", "entity_id", "arm"]]
    return pd.concat([inputs, meta, raw["output"].rename(OUTPUT)], axis=1)
