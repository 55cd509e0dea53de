"""Living with a log-format change: the three options of seed 000 §4.3.

When a schema version adds a field (impression v2 adds ``device``), a model that wants
the field cannot train on older data as it is. The seed lists three ways out:

(a) **keep the old feature set**: train on the fields every row in the time range has,
    so all the history stays usable -> :func:`common_fields`;
(b) **backfill**: compute the new field for old rows (by a registered function) and
    rewrite the old partitions, then train the new feature set on everything ->
    :func:`register_backfill` + :func:`backfill`;
(c) **one model per schema, then combine them**: select each version's rows with its own
    columns so a separate model can be trained on each -> :func:`rows_by_schema`
    (the combining model lives in ``loopml.train``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.core.errors import NotFoundError, ValidationError
from loopml.core.progress import progress_bar
from loopml.logs.schemas import all_fields, arrow_type, introduced_in, versions
from loopml.logs.validation import VERSION_COLUMN, _coerce

if TYPE_CHECKING:
    import pandas as pd

    from loopml.logs.eventlog import EventLog

#: ``fn(rows, log) -> values``: one value per row of an old partition (None when unknown).
BackfillFn = Callable[["pd.DataFrame", "EventLog"], Any]

_BACKFILLS: dict[tuple[str, str], BackfillFn] = {}


# -- (a) keep the old feature set ----------------------------------------------------------
def common_fields(log: EventLog, event_type: str, start: Any = None, end: Any = None) -> list[str]:
    """Fields stored for *every* event of ``event_type`` in ``[start, end)`` (day granularity).

    A model restricted to these columns can train on the whole range across a format
    change. After a backfill, the backfilled field counts as present.
    """
    days = _days_in_range(log, event_type, start, end)
    shared: set[str] | None = None
    for paths in days.values():
        for path in paths:
            cols = set(log.files.columns(path))
            shared = cols if shared is None else shared & cols
    if shared is None:
        raise NotFoundError(
            f"no {event_type} events stored between {start or 'the start'} and "
            f"{end or 'the end'}; ingest some or widen the range",
            event_type=event_type,
        )
    return [name for name in all_fields(event_type) if name in shared]


# -- (b) backfill --------------------------------------------------------------------------
def register_backfill(event_type: str, field: str, fn: BackfillFn) -> None:
    """Declare how to compute ``field`` for rows stored before it existed.

    >>> register_backfill("impression", "device", lambda rows, log: ["unknown"] * len(rows))
    >>> ("impression", "device") in registered_backfills()
    True
    """
    introduced_in(event_type, field)  # the field must exist in some schema version
    if not callable(fn):
        raise ValidationError(
            f"backfill for {event_type}.{field} must be a function (rows, log) -> values, got "
            f"{type(fn).__name__}",
            field="fn",
        )
    _BACKFILLS[(event_type, field)] = fn


def registered_backfills() -> dict[tuple[str, str], BackfillFn]:
    return dict(_BACKFILLS)


@dataclass
class BackfillResult:
    """How many files were rewritten, and rows given the field."""

    files_rewritten: int = 0
    rows: int = 0
    files_already_done: int = 0
    paths: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"rewrote {self.files_rewritten} file(s), {self.rows} row(s); "
            f"{self.files_already_done} already had the field"
        )


def backfill(
    log: EventLog,
    event_type: str,
    field: str,
    fn: BackfillFn | None = None,
    *,
    progress: bool = False,
) -> BackfillResult:
    """Add ``field`` to every stored file that lacks it, computed by the registered function.

    Each file is rewritten on its own: the new file (``<old>.bf-<field>.parquet``) is
    written atomically, then the old one is removed. A crash in between leaves both, which
    the views de-duplicate by ``event_id``; running again finds the new file, removes the
    old one and carries on, so the backfill is idempotent and re-runnable.
    """
    spec = all_fields(event_type).get(field)
    if spec is None:
        introduced_in(event_type, field)  # raises NotFoundError naming the valid fields
    fn = fn or _BACKFILLS.get((event_type, field))
    if fn is None:
        raise NotFoundError(
            f"no backfill registered for {event_type}.{field}; call "
            f"register_backfill({event_type!r}, {field!r}, fn) first or pass fn=",
            field=field,
        )
    result = BackfillResult()
    paths = [p for ps in log.partitions(event_type).values() for p in ps]
    with progress_bar(len(paths), f"backfilling {event_type}.{field}", progress) as advance:
        for path in paths:
            _backfill_file(log, event_type, path, field, spec.type, fn, result)
            advance(1)
    return result


def _backfill_file(
    log: EventLog,
    event_type: str,
    path: str,
    field: str,
    type_name: str,
    fn: BackfillFn,
    result: BackfillResult,
) -> None:
    import pandas as pd
    import pyarrow as pa

    suffix = f".bf-{field}.parquet"
    if path.endswith(suffix) or field in log.files.columns(path):
        result.files_already_done += 1
        return
    target_name = path.rsplit("/", 1)[-1].removesuffix(".parquet") + suffix
    target = path.rsplit("/", 1)[0] + "/" + target_name
    if log.files.exists(target):  # a crash after the write: finish the job
        log.files.remove(path)
        result.files_already_done += 1
        return
    table = log.files.read(path)
    rows = table.to_pandas()
    values = pd.Series(list(fn(rows, log)), dtype=object)
    if len(values) != len(rows):
        raise ValidationError(
            f"backfill for {event_type}.{field} returned {len(values)} values for {len(rows)} "
            "rows; return one value (or None) per row",
            field=field,
        )
    typed, bad = _coerce(values, type_name)
    if bad.any():
        example = values[bad].iloc[0]
        raise ValidationError(
            f"backfill for {event_type}.{field} returned {example!r}, which is not a "
            f"{type_name}; return {type_name} values or None",
            field=field,
        )
    column = pa.array(typed, type=arrow_type(type_name), from_pandas=True)
    position = table.schema.get_field_index(VERSION_COLUMN)
    table = (
        table.add_column(position, field, column)
        if position >= 0
        else table.append_column(field, column)
    )
    directory = path.rsplit("/", 2)
    written = log.files.write(f"{event_type}/{directory[-2]}", table, name=target_name)
    log.files.remove(path)
    result.files_rewritten += 1
    result.rows += len(rows)
    result.paths.append(written)


# -- (c) one model per schema --------------------------------------------------------------
def rows_by_schema(
    log: EventLog,
    event_type: str,
    start: Any = None,
    end: Any = None,
) -> dict[int, pd.DataFrame]:
    """``{schema_version: rows}`` in ``[start, end)``, each with only its version's columns."""
    where = _time_filter(start, end)
    out = {}
    for schema in versions(event_type):
        cols = ", ".join(f'"{c}"' for c in [*schema.columns, VERSION_COLUMN])
        frame = log.sql(
            f'SELECT {cols} FROM "{event_type}" WHERE {VERSION_COLUMN} = {schema.version}'
            f"{where} ORDER BY ts, event_id"
        )
        if len(frame):
            out[schema.version] = frame
    return out


def fields_by_version(event_type: str) -> dict[int, list[str]]:
    """What each schema version of ``event_type`` carries.

    >>> fields_by_version("impression")[2][-1]
    'device'
    """
    return {s.version: s.columns for s in versions(event_type)}


def utc(value: Any) -> pd.Timestamp:
    """A UTC timestamp from text, a datetime, a date or a pandas Timestamp (naive = UTC).

    >>> utc("2026-01-02").isoformat()
    '2026-01-02T00:00:00+00:00'
    """
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"{value!r} is not a time; send ISO-8601 text such as '2026-01-02T03:04:05Z'",
            field="time",
        ) from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _time_filter(start: Any, end: Any) -> str:
    parts = []
    if start is not None:
        parts.append(f" AND ts >= TIMESTAMPTZ '{utc(start).isoformat()}'")
    if end is not None:
        parts.append(f" AND ts < TIMESTAMPTZ '{utc(end).isoformat()}'")
    return "".join(parts)


def _days_in_range(log: EventLog, event_type: str, start: Any, end: Any) -> dict[str, list[str]]:
    """Day partitions overlapping ``[start, end)``."""
    lo = utc(start).date().isoformat() if start is not None else ""
    hi = (utc(end) - _tick()).date().isoformat() if end is not None else "9999"
    return {d: p for d, p in log.partitions(event_type).items() if lo <= d <= hi}


def _tick() -> Any:
    import pandas as pd

    return pd.Timedelta(microseconds=1)
