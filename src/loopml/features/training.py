"""Training sets (one row per impression, features as of that instant, a delayed label)
and the latest feature values for the online store, from the same view definitions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loopml.core.errors import ValidationError
from loopml.features.pointintime import (
    ROW,
    check_views,
    feature_query,
    materialise_events,
    point_in_time,
)
from loopml.features.views import FeatureView
from loopml.features.windows import window_seconds
from loopml.logs.progress import progress_bar
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
    model lineage. Rows near ``end`` whose label window reaches past the newest event
    may be missing late labels: leave a ``label_window`` of margin when choosing ``end``.
    """
    from loopml.logs.eventlog import to_frame
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
    horizon = window_seconds(label_window, "label_window")
    con = log.connect()
    try:
        with progress_bar(4, "building training set", progress) as advance:
            materialise_events(
                con,
                views,
                hi,
                extra={"impression": {"request_id", "user_id", "item_id", "position", "device"}},
            )
            cols = ", ".join(f'"{c}"' for c in BASE_COLUMNS)
            con.execute(
                f"CREATE TEMP TABLE q AS SELECT row_number() OVER (ORDER BY ts, event_id) "
                f'AS {ROW}, {cols} FROM "ev_impression" WHERE ts >= $lo',
                {"lo": lo},
            )
            advance(1)
            features, columns = feature_query(con, views, "q")
            advance(1)
            con.execute(
                f'CREATE TEMP TABLE labels AS SELECT DISTINCT q.{ROW} FROM q JOIN "{label}" l '
                "ON l.impression_id = q.event_id AND l.ts >= q.ts "
                "AND l.ts <= q.ts + to_microseconds($h) "
                "WHERE l.ts >= $lo AND l.ts <= $hi + to_microseconds($h)",
                {"h": horizon * 1_000_000, "lo": lo, "hi": hi},
            )
            advance(1)
            feature_cols = ", ".join(f'f."{c}"' for c in columns)
            frame = to_frame(
                con.sql(
                    f"SELECT {', '.join(f'q.{c}' for c in BASE_COLUMNS)}, {feature_cols}, "
                    f"CAST(l.{ROW} IS NOT NULL AS TINYINT) AS label "
                    f"FROM q JOIN ({features}) f USING ({ROW}) "
                    f"LEFT JOIN labels l USING ({ROW}) ORDER BY q.{ROW}"
                )
            )
            advance(1)
    finally:
        con.close()
    frame["label"] = frame["label"].astype("int8")
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


def latest_values(
    log: EventLog,
    view: FeatureView,
    as_of: Any = None,
    entity_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Feature values per entity as of ``as_of`` (now when None), from events strictly before.

    These are exactly the values a training row at ``as_of`` would get, so the online
    store (materialised from this) serves what the model was trained on. Without
    ``entity_ids``, every entity that has any of the view's events before ``as_of``.
    """
    import pandas as pd

    from loopml.core.clock import utcnow
    from loopml.logs.evolution import utc

    check_views([view], [view.entity], "the view")
    at = utc(as_of if as_of is not None else utcnow())
    if entity_ids is None:
        union = " UNION ".join(
            f'SELECT DISTINCT "{view.entity}" AS k FROM "{e}" WHERE ts < $at '
            f'AND "{view.entity}" IS NOT NULL'
            for e in view.events
        )
        con = log.connect()
        try:
            ids = [r[0] for r in con.execute(f"{union} ORDER BY k", {"at": at}).fetchall()]
        finally:
            con.close()
    else:
        ids = [str(e) for e in entity_ids]
    entities = pd.DataFrame({view.entity: pd.Series(ids, dtype="str"), "ts": at})
    out = point_in_time(log, [view], entities)
    return out.drop(columns=["ts"]).reset_index(drop=True)
