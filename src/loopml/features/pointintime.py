"""Point-in-time feature values: a row at time t sees only events with ``ts < t``.

DuckDB reads the de-duplicated events each view needs (once per event type, bounded in
time: ``[earliest t - longest window, latest t)``, unbounded below only for recency and
snapshots); :mod:`loopml.features.asof` then answers every (entity, t) lookup exactly:
windowed counts and sums as the difference of running totals at t and at t - window,
recency and snapshots from the latest event strictly before t.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.errors import ValidationError
from loopml.core.progress import progress_bar
from loopml.features.asof import AsOfIndex, encode, query_order
from loopml.features.views import Age, Count, FeatureView, Rate, Recency, Sum
from loopml.features.windows import window_seconds

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from loopml.logs.eventlog import EventLog


def check_views(views: Sequence[FeatureView], available: Sequence[str], what: str) -> None:
    """Refuse non-views, one view listed twice, and entity keys the rows do not have."""
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


@dataclass
class _Source:
    """What the views need from one (event type, entity) pair."""

    event: str
    entity: str
    columns: set[str] = field(default_factory=set)
    longest: int = 0  # longest window in seconds
    unbounded: bool = False  # recency / snapshots need all history
    snapshot: bool = False  # ties at one instant are broken by event_id
    table: Any = None
    index: AsOfIndex | None = None


def _plan(views: Sequence[FeatureView]) -> dict[tuple[str, str], _Source]:
    sources: dict[tuple[str, str], _Source] = {}

    def source(event: str, entity: str) -> _Source:
        return sources.setdefault((event, entity), _Source(event, entity))

    for view in views:
        for f in view.features:
            if isinstance(f, Rate):
                for event in (f.numerator, f.denominator):
                    s = source(event, view.entity)
                    s.longest = max(s.longest, window_seconds(f.window))
                continue
            s = source(f.event, view.entity)
            if isinstance(f, Count | Sum):
                s.longest = max(s.longest, window_seconds(f.window))
                if isinstance(f, Sum):
                    s.columns.add(f.column)
            elif isinstance(f, Recency):
                s.unbounded = True
            else:
                s.unbounded = s.snapshot = True
                s.columns.add(f.column)
    return sources


def load_events(
    log: EventLog,
    con: duckdb.DuckDBPyConnection,
    views: Sequence[FeatureView],
    first: Any,
    before: Any,
    extra: dict[str, set[str]] | None = None,
) -> dict[str, Any]:
    """Each needed event type read once: de-duplicated, time-ordered, as an Arrow table.

    ``first``/``before``: the earliest and (exclusive) latest query time; rows older than
    ``first`` minus the longest window are skipped unless recency or a snapshot needs all
    history. ``extra``: more columns per type, read from ``first`` on. Reading past
    ``before`` would be harmless (lookups only ever see ``ts < t``), reading less is not.
    """
    import pandas as pd

    from loopml.logs.scan import scan

    cols: dict[str, set[str]] = {}
    lower: dict[str, Any] = {}  # earliest ts needed per event type; None = all history

    def need(event: str, bound: Any) -> None:
        if bound is None or lower.get(event, bound) is None:
            lower[event] = None
        else:
            lower[event] = min(bound, lower.get(event, bound))

    for s in _plan(views).values():
        cols.setdefault(s.event, set()).update({s.entity, *s.columns})
        need(s.event, None if s.unbounded else first - pd.Timedelta(seconds=s.longest))
    for event, more in (extra or {}).items():
        cols.setdefault(event, set()).update(more)
        need(event, first)
    return {
        event: scan(log, con, event, sorted(needed), lower[event], before)
        for event, needed in cols.items()
    }


def compute_features(
    tables: dict[str, Any],
    views: Sequence[FeatureView],
    keys: dict[str, Any],
    ts_us: np.ndarray,
) -> dict[str, Any]:
    """Every view column for query rows given by entity ``keys`` (Arrow strings) and
    ``ts_us`` (int64 microseconds, UTC), from the tables of :func:`load_events`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sources = _plan(views)
    for s in sources.values():
        s.table = tables[s.event]
    codes: dict[str, np.ndarray] = {}
    for entity in sorted({s.entity for s in sources.values()}):
        mine = [s for s in sources.values() if s.entity == entity]
        encoded = encode(keys[entity], *(s.table.column(entity) for s in mine))
        codes[entity] = encoded[0]
        for s, c in zip(mine, encoded[1:], strict=True):
            t = s.table.column("_t").to_numpy().astype(np.int64)
            tie = None
            if s.snapshot:
                tie = pc.rank(s.table.column("event_id"), tiebreaker="first").to_numpy()
            s.index = AsOfIndex(c, t, tie)

    queries: dict[tuple[str, str], Any] = {}
    orders = {entity: query_order(c, ts_us) for entity, c in codes.items()}

    def lookup(event: str, entity: str) -> Any:
        if (event, entity) not in queries:
            index = sources[(event, entity)].index
            queries[(event, entity)] = index.query(codes[entity], ts_us, orders[entity])
        return queries[(event, entity)]

    out: dict[str, Any] = {}
    for view in views:
        for f, column in zip(view.features, view.columns, strict=True):
            if isinstance(f, Count):
                out[column] = lookup(f.event, view.entity).window_count(window_seconds(f.window))
            elif isinstance(f, Sum):
                values = _floats(sources[(f.event, view.entity)].table.column(f.column))
                q = lookup(f.event, view.entity)
                out[column] = q.window_sum(values, window_seconds(f.window))
            elif isinstance(f, Rate):
                seconds = window_seconds(f.window)
                num = lookup(f.numerator, view.entity).window_count(seconds)
                den = lookup(f.denominator, view.entity).window_count(seconds)
                total = den + float(f.weight)
                with np.errstate(divide="ignore", invalid="ignore"):
                    rate = (num + float(f.prior) * float(f.weight)) / total
                out[column] = np.where(total > 0, rate, np.nan)
            else:
                table = sources[(f.event, view.entity)].table
                last = lookup(f.event, view.entity).last()
                if isinstance(f, Recency):
                    when = table.column("_t").to_numpy().astype(np.int64)
                    out[column] = _since(ts_us, when, last) / 1e6
                elif isinstance(f, Age):
                    stamp = pc.cast(pc.cast(table.column(f.column), pa.timestamp("us")), pa.int64())
                    when = pc.fill_null(stamp, 0).to_numpy()
                    known = last >= 0
                    known[known] &= pc.is_valid(stamp).to_numpy(zero_copy_only=False)[last[known]]
                    out[column] = _since(ts_us, when, np.where(known, last, -1)) / 86_400e6
                else:
                    out[column] = table.column(f.column).take(pa.array(last, mask=last < 0))
    return out


def _floats(column: Any) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.fill_null(pc.cast(column, pa.float64()), 0.0).to_numpy()


def _since(now: np.ndarray, when: Any, last: np.ndarray) -> np.ndarray:
    """``now - when[last]`` in microseconds as float, NaN where there is no event."""
    if len(when) == 0:
        return np.full(len(now), np.nan)
    picked = np.asarray(when, dtype=np.int64)[np.maximum(last, 0)]
    return np.where(last >= 0, (now - picked).astype(np.float64), np.nan)


def as_pandas(values: Any) -> Any:
    """A feature column ready to assign positionally (Arrow -> a pandas array, no index)."""
    import pyarrow as pa

    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.to_pandas().array
    return values


def point_in_time(
    log: EventLog,
    views: Sequence[FeatureView],
    entities: pd.DataFrame,
    *,
    progress: bool = False,
) -> pd.DataFrame:
    """``entities`` (entity columns + ``ts``) with each view's features as of each row's ts.

    Same rows, order and index as given; feature columns are named ``<view>__<feature>``.
    """
    import pandas as pd
    import pyarrow as pa

    if "ts" not in entities.columns:
        raise ValidationError(
            f"entities need a 'ts' column (when each row's features are wanted); got "
            f"{list(entities.columns)}",
            field="ts",
        )
    check_views(views, list(entities.columns), "entities")
    try:
        stamps = pd.to_datetime(entities["ts"], utc=True).astype("datetime64[us, UTC]")
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"entities.ts is not a time column ({exc})", field="ts") from None
    if stamps.isna().any():
        raise ValidationError("entities.ts has missing times; give every row a ts", field="ts")
    out = entities.copy()
    if len(entities) == 0:
        for view in views:
            for column in view.columns:
                out[column] = pd.Series(dtype=object)
        return out
    ts_us = stamps.dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    keys = {v.entity: pa.array(entities[v.entity].astype("str"), pa.string()) for v in views}
    con = log.connect()
    try:
        with progress_bar(2, "point-in-time features", progress) as advance:
            tables = load_events(log, con, views, stamps.min(), stamps.max())
            advance(1)
            values = compute_features(tables, views, keys, ts_us)
            advance(1)
    finally:
        con.close()
    for column, data in values.items():
        out[column] = as_pandas(data)
    return out
