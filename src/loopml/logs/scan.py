"""Reading one event type for a time range, fast: only the day partitions that overlap the
range are opened, the time filter runs before de-duplication, and the result is Arrow.

The SQL views de-duplicate the whole history on every query, which is exact but costs a
pass over every row. Training sets and feature values need a time range only; since a
redelivered event carries its original ``ts``, duplicates always fall in the same range,
so filtering first and de-duplicating what is left gives the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loopml.logs.schemas import SQL_TYPES, all_fields

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from loopml.logs.eventlog import EventLog


def scan(
    log: EventLog,
    con: duckdb.DuckDBPyConnection,
    event_type: str,
    columns: Sequence[str],
    start: Any = None,
    end: Any = None,
) -> pa.Table:
    """``columns`` of ``event_type`` with ``start <= ts < end``, one row per event_id, ordered
    by (ts, event_id), plus ``_t`` (ts as int64 microseconds). Columns a file lacks are NULL.
    """
    from loopml.logs.evolution import utc

    fields = all_fields(event_type)
    wanted = [c for c in fields if c in {*columns, "event_id", "ts"}]
    lo = utc(start) if start is not None else None
    hi = utc(end) if end is not None else None
    first = lo.date().isoformat() if lo is not None else ""
    last = (hi - _tick()).date().isoformat() if hi is not None else "9999"
    files = [
        path
        for day, paths in log.partitions(event_type).items()
        if first <= day <= last
        for path in paths
    ]
    if not files:
        typed = ", ".join(f'CAST(NULL AS {SQL_TYPES[fields[c].type]}) AS "{c}"' for c in wanted)
        return con.sql(f"SELECT {typed}, CAST(NULL AS BIGINT) AS _t WHERE false").to_arrow_table()
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in files)
    source = f"read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"
    stored = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    select = ", ".join(
        f'"{c}"' if c in stored else f'CAST(NULL AS {SQL_TYPES[fields[c].type]}) AS "{c}"'
        for c in wanted
    )
    where, params = [], {}
    if lo is not None:
        where.append("ts >= $lo")
        params["lo"] = lo
    if hi is not None:
        where.append("ts < $hi")
        params["hi"] = hi
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return con.sql(
        f"SELECT {select}, epoch_us(ts) AS _t FROM {source} {clause} "
        "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1 "
        "ORDER BY ts, event_id",
        params=params,
    ).to_arrow_table()


def _tick() -> Any:
    import pandas as pd

    return pd.Timedelta(microseconds=1)
