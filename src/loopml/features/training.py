"""Training sets (one row per impression, features as of that instant, a delayed label)
and the latest feature values for the online store, from the same view definitions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.errors import ValidationError
from loopml.core.progress import progress_bar
from loopml.features.pointintime import (
    as_pandas,
    check_views,
    compute_features,
    load_events,
    point_in_time,
)
from loopml.features.views import FeatureView
from loopml.features.windows import window_seconds
from loopml.logs.schemas import all_fields, event_types

if TYPE_CHECKING:
    import pandas as pd

    from loopml.logs.eventlog import EventLog

#: Columns of every training row, before the features.
BASE_COLUMNS = ("event_id", "ts", "request_id", "user_id", "item_id", "position", "device")


def build_training_set(
    log: EventLog,
    views: Sequence[FeatureView],
    *,
    start: Any,
    end: Any,
    label: str = "click",
    label_window: str = "1h",
    progress: bool = False,
) -> pd.DataFrame:
    """One row per impression with ``start <= ts < end``: ids, position, device (None before
    schema v2), the views' features as of the impression (events strictly before it) and
    ``label`` = 1 when a ``label`` event for that impression came within ``label_window``.

    ``frame.attrs["loopml"]`` records the view versions, the time range and the label, for
    model lineage. Impressions whose label window reaches past the newest logged event may
    still get a late label: leave ``label_window`` of margin before the end of the log.
    """
    import pyarrow.compute as pc

    from loopml.logs.evolution import utc

    lo, hi = utc(start), utc(end)
    if hi <= lo:
        raise ValidationError(
            f"end ({hi.isoformat()}) must be after start ({lo.isoformat()})", field="end"
        )
    check_views(views, list(BASE_COLUMNS), "an impression")
    if label not in event_types() or "impression_id" not in all_fields(label):
        valid = [e for e in event_types() if "impression_id" in all_fields(e)]
        raise ValidationError(
            f"label {label!r} cannot label impressions: use an event type with an "
            f"impression_id column, one of {valid}",
            field="label",
        )
    horizon = window_seconds(label_window, "label_window") * 1_000_000
    con = log.connect()
    try:
        with progress_bar(3, "building training set", progress) as advance:
            tables = load_events(log, con, views, lo, hi, extra={"impression": set(BASE_COLUMNS)})
            impressions = tables["impression"]
            t_all = impressions.column("_t").to_numpy()
            first = int(np.searchsorted(t_all, _micros(lo), side="left"))
            rows = impressions.slice(first)  # time-ordered: [lo, hi) is a suffix
            con.register("rows_in", rows.select(["event_id", "ts"]))
            hits = con.sql(
                f'SELECT DISTINCT l.impression_id FROM "{label}" l JOIN rows_in i '
                "ON l.impression_id = i.event_id AND l.ts >= i.ts "
                "AND l.ts <= i.ts + to_microseconds($h) "
                "WHERE l.ts >= $lo AND l.ts <= $hi + to_microseconds($h)",
                params={"h": horizon, "lo": lo, "hi": hi},
            ).to_arrow_table()
            advance(1)
            keys = {c: rows.column(c) for c in ("user_id", "item_id")}
            ts_us = rows.column("_t").to_numpy().astype(np.int64)
            values = compute_features(tables, views, keys, ts_us)
            advance(1)
            frame = rows.select(list(BASE_COLUMNS)).to_pandas()
            for column, data in values.items():
                frame[column] = as_pandas(data)
            hit = pc.is_in(rows.column("event_id"), value_set=hits.column(0).combine_chunks())
            frame["label"] = hit.to_numpy(zero_copy_only=False).astype(np.int8)
            advance(1)
    finally:
        con.close()
    if frame["ts"].dtype != "datetime64[us, UTC]" and len(frame):
        frame["ts"] = frame["ts"].astype("datetime64[us, UTC]")
    frame.attrs["loopml"] = {
        "views": {v.name: v.version for v in views},
        "start": lo.isoformat(),
        "end": hi.isoformat(),
        "label": label,
        "label_window": label_window,
        "rows": len(frame),
        "positive_rate": float(frame["label"].mean()) if len(frame) else 0.0,
    }
    return frame


def _micros(stamp: Any) -> int:
    """Microseconds since the epoch (``Timestamp.value`` is always nanoseconds)."""
    return int(stamp.value // 1_000)


def latest_values(
    log: EventLog,
    view: FeatureView,
    as_of: Any = None,
    entity_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Feature values per entity as of ``as_of`` (now when None), from events strictly before.

    These are exactly the values a training row at ``as_of`` would get, so the online
    store (materialised from this) serves what the model was trained on. Without
    ``entity_ids``: every entity with any of the view's events before ``as_of``.
    """
    import pandas as pd

    from loopml.core.clock import utcnow
    from loopml.logs.evolution import utc

    check_views([view], [view.entity], "the view")
    at = utc(as_of if as_of is not None else utcnow())
    if entity_ids is None:
        found = set()
        for event in view.events:
            found.update(log.distinct(event, view.entity, before=at))
        ids = pd.Series(sorted(found), dtype="str")
    else:
        ids = pd.Series([str(e) for e in entity_ids], dtype="str")
    entities = pd.DataFrame({view.entity: ids.array, "ts": at})
    out = point_in_time(log, [view], entities)
    return out.drop(columns=["ts"]).reset_index(drop=True)
