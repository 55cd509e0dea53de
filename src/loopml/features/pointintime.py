"""Point-in-time feature values, computed exactly in DuckDB with ASOF joins.

A feature for a row at time t uses only events with ``ts < t`` (strictly earlier), so
no future event, and no event at the same instant, leaks into a training row.

How: per (event type, entity) the events are reduced to one row per distinct ts with a
running count/sum ordered by ts. An ``ASOF JOIN ... ON q.ts > c.ts`` picks the last
running total strictly before t; a second one at ``t - window`` is subtracted, giving
the count in ``[t - window, t)`` exactly (ties included). Recency comes from the same
join (the ts it matched), snapshots from an ASOF join on the latest attribute row. All
joins run in one query, so a training set of millions of rows takes seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loopml.core.errors import ValidationError
from loopml.features.views import Age, Count, FeatureView, Latest, Rate, Recency, Sum
from loopml.features.windows import window_seconds
from loopml.logs.progress import progress_bar
from loopml.logs.schemas import SQL_TYPES, all_fields

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from loopml.logs.eventlog import EventLog

ROW = "_row"


def check_views(views: Sequence[FeatureView], available: Sequence[str], what: str) -> None:
    """Refuse non-views, duplicate view names, and entity keys the rows do not have."""
    seen: set[str] = set()
    for view in views:
        if not isinstance(view, FeatureView):
            raise ValidationError(
                f"views must be FeatureView objects, got {view!r}; look one up with "
                "default_catalog().get(name)",
                field="views",
            )
        if view.name in seen:
            raise ValidationError(
                f"feature view {view.name} is listed twice (two versions?); pick one",
                field="views",
            )
        seen.add(view.name)
        if view.entity not in available:
            raise ValidationError(
                f"feature view {view.name} is keyed by {view.entity!r} but {what} has only "
                f"{sorted(available)}; add the column or choose another view",
                field=view.entity,
            )


def materialise_events(
    con: duckdb.DuckDBPyConnection,
    views: Sequence[FeatureView],
    before: Any,
    extra: dict[str, set[str]] | None = None,
) -> None:
    """Copy each needed event type once (de-duplicated, ``ts < before``) into ``ev_<type>``."""
    need: dict[str, set[str]] = {k: set(v) for k, v in (extra or {}).items()}
    for view in views:
        for f in view.features:
            for event in (f.numerator, f.denominator) if isinstance(f, Rate) else (f.event,):
                cols = need.setdefault(event, set())
                cols.add(view.entity)
                if isinstance(f, Sum | Latest | Age):
                    cols.add(f.column)
    for event, cols in need.items():
        ordered = [c for c in all_fields(event) if c in cols | {"event_id", "ts"}]
        select = ", ".join(f'"{c}"' for c in ordered)
        con.execute(
            f'CREATE OR REPLACE TEMP TABLE "ev_{event}" AS SELECT {select} FROM "{event}" '
            f"WHERE ts < $before",
            {"before": before},
        )


def feature_query(
    con: duckdb.DuckDBPyConnection, views: Sequence[FeatureView], table: str
) -> tuple[str, list[str]]:
    """SQL selecting ``_row`` plus every view's columns for the rows of ``table``.

    ``table`` needs ``_row``, ``ts`` and the views' entity columns; the ``ev_<type>``
    tables must exist (:func:`materialise_events`).
    """
    shifts: set[int] = set()
    cums: dict[tuple[str, str], dict[str, Any]] = {}
    snaps: dict[tuple[str, str], set[str]] = {}

    def cum(event: str, entity: str) -> dict[str, Any]:
        return cums.setdefault(
            (event, entity), {"windows": set(), "sums": set(), "unbounded": False}
        )

    for view in views:
        for f in view.features:
            if isinstance(f, Count | Sum):
                spec = cum(f.event, view.entity)
                spec["windows"].add(window_seconds(f.window))
                if isinstance(f, Sum):
                    spec["sums"].add(f.column)
            elif isinstance(f, Rate):
                for event in (f.numerator, f.denominator):
                    cum(event, view.entity)["windows"].add(window_seconds(f.window))
            elif isinstance(f, Recency):
                cum(f.event, view.entity)["unbounded"] = True
            else:
                snaps.setdefault((f.event, view.entity), set()).add(f.column)

    joins: list[str] = []
    alias: dict[tuple[str, str, int], str] = {}  # (event, entity, shift) -> join alias
    for i, ((event, entity), spec) in enumerate(sorted(cums.items())):
        sums = sorted(spec["sums"])
        inner = ", ".join(["count(*) AS n", *(f'sum("{c}") AS s_{c}' for c in sums)])
        running = ", ".join(["sum(n) OVER w AS n", *(f"sum(s_{c}) OVER w AS s_{c}" for c in sums)])
        longest = max(spec["windows"], default=0)
        where = f'"{entity}" IS NOT NULL'
        params: dict[str, Any] = {}
        if not spec["unbounded"] and longest:  # older events never enter a window
            where += f" AND ts >= (SELECT min(ts) FROM {table}) - to_microseconds($span)"
            params = {"span": longest * 1_000_000}
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE cum_{i} AS SELECT k, ts, {running} FROM "
            f'(SELECT "{entity}" AS k, ts, {inner} FROM "ev_{event}" WHERE {where} GROUP BY ALL) '
            "WINDOW w AS (PARTITION BY k ORDER BY ts ROWS UNBOUNDED PRECEDING)",
            params,
        )
        for shift in [0, *sorted(spec["windows"])]:
            name = f"c{i}_{shift}"
            alias[(event, entity, shift)] = name
            shifts.add(shift)
            at = "q.ts" if shift == 0 else f"q.t_{shift}"
            joins.append(
                f'ASOF LEFT JOIN cum_{i} {name} ON q."{entity}" = {name}.k AND {at} > {name}.ts'
            )
    snap_alias: dict[tuple[str, str], str] = {}
    for j, ((event, entity), cols) in enumerate(sorted(snaps.items())):
        picks = ", ".join(f'arg_max("{c}", event_id) AS "{c}"' for c in sorted(cols))
        con.execute(
            f'CREATE OR REPLACE TEMP TABLE snap_{j} AS SELECT "{entity}" AS k, ts, {picks} '
            f'FROM "ev_{event}" WHERE "{entity}" IS NOT NULL GROUP BY ALL'
        )
        name = f"s{j}"
        snap_alias[(event, entity)] = name
        joins.append(
            f'ASOF LEFT JOIN snap_{j} {name} ON q."{entity}" = {name}.k AND q.ts > {name}.ts'
        )

    columns, exprs = [], []
    for view in views:
        for f, column in zip(view.features, view.columns, strict=True):
            exprs.append(f'{_expr(f, view.entity, alias, snap_alias)} AS "{column}"')
            columns.append(column)
    shifted = "".join(f", ts - to_microseconds({s * 1_000_000}) AS t_{s}" for s in shifts if s)
    sql = f"SELECT q.{ROW}, {', '.join(exprs)} FROM (SELECT *{shifted} FROM {table}) q " + " ".join(
        joins
    )
    return sql, columns


def _expr(f: Any, entity: str, alias: dict, snap_alias: dict) -> str:
    def windowed(event: str, value: str, window: str) -> str:
        now = alias[(event, entity, 0)]
        then = alias[(event, entity, window_seconds(window))]
        return f"(coalesce({now}.{value}, 0) - coalesce({then}.{value}, 0))"

    if isinstance(f, Count):
        return f"CAST({windowed(f.event, 'n', f.window)} AS BIGINT)"
    if isinstance(f, Sum):
        return f"CAST({windowed(f.event, f's_{f.column}', f.window)} AS DOUBLE)"
    if isinstance(f, Rate):
        num = windowed(f.numerator, "n", f.window)
        den = windowed(f.denominator, "n", f.window)
        prior = float(f.prior) * float(f.weight)
        return f"(({num} + {prior!r}) / nullif({den} + {float(f.weight)!r}, 0))"
    if isinstance(f, Recency):
        last = alias[(f.event, entity, 0)]
        return f"((epoch_us(q.ts) - epoch_us({last}.ts)) / 1e6)"
    snap = snap_alias[(f.event, entity)]
    if isinstance(f, Age):
        return f'((epoch_us(q.ts) - epoch_us({snap}."{f.column}")) / 86400e6)'
    return f'{snap}."{f.column}"'


def point_in_time(
    log: EventLog,
    views: Sequence[FeatureView],
    entities: pd.DataFrame,
    *,
    progress: bool = False,
) -> pd.DataFrame:
    """Join each row of ``entities`` (entity columns + ``ts``) to its features as of ``ts``.

    Returns ``entities`` (same order, same index) with the views' columns appended.
    """
    import pandas as pd

    from loopml.logs.eventlog import to_frame
    from loopml.logs.evolution import utc

    if "ts" not in entities.columns:
        raise ValidationError(
            f"entities need a 'ts' column (the time each row's features are wanted at); got "
            f"{list(entities.columns)}",
            field="ts",
        )
    check_views(views, list(entities.columns), "entities")
    keys = sorted({v.entity for v in views})
    try:
        stamps = pd.to_datetime(entities["ts"], utc=True)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"entities.ts is not a time column ({exc})", field="ts") from None
    frame = pd.DataFrame({k: entities[k].astype("str") for k in keys})
    frame["ts"] = stamps.astype("datetime64[us, UTC]").to_numpy()
    frame[ROW] = range(len(frame))
    con = log.connect()
    try:
        with progress_bar(3, "point-in-time features", progress) as advance:
            con.register("entities_in", frame)
            types = ", ".join(f'CAST("{k}" AS VARCHAR) AS "{k}"' for k in keys)
            con.execute(
                f"CREATE TEMP TABLE q AS SELECT {ROW}, {types}, CAST(ts AS TIMESTAMPTZ) AS ts "
                "FROM entities_in"
            )
            top = frame["ts"].max() if len(frame) else utc("1970-01-01")
            materialise_events(con, views, top)
            advance(1)
            sql, columns = feature_query(con, views, "q")
            advance(1)
            values = to_frame(con.sql(f"{sql} ORDER BY {ROW}"))
            advance(1)
    finally:
        con.close()
    out = entities.copy()
    for column in columns:
        out[column] = values[column].to_numpy() if len(values) else pd.Series(dtype=object)
    return out


def sql_type(view: FeatureView, column: str) -> str:
    """The DuckDB type of one output column (for typed empty results)."""
    f = view.features[view.columns.index(column)]
    if isinstance(f, Count):
        return "BIGINT"
    if isinstance(f, Latest):
        return SQL_TYPES[all_fields(f.event)[f.column].type]
    return "DOUBLE"
