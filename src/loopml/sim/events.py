"""Turning simulated arrays into event frames with exactly the schema's columns.

Frames carry the columns of :func:`loopml.logs.schemas.get_schema` in schema order
plus an int ``schema_version``; text columns are pandas strings and ``ts`` columns are
``datetime64[us, UTC]``. Event ids are deterministic and readable: ``imp-<day>-<n>``,
``req-<day>-<n>``, ``clk-<day>-<n>`` and ``cnv-<day>-<n>``, where a click and its
conversion reuse the number of the impression they came from.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from loopml.logs.schemas import get_schema
from loopml.sim.truth import DEVICES

if TYPE_CHECKING:
    from loopml.sim.traffic import Outcomes, Traffic

_DEVICE_NAMES = pd.array(DEVICES, dtype="str")  # also the template for missing strings


def with_schema(frame: pd.DataFrame, event_type: str, version: int = 1) -> pd.DataFrame:
    """Order columns as the schema says, coerce their types, add ``schema_version``.

    Columns of the schema that ``frame`` lacks (an optional field) are added as missing.
    """
    schema = get_schema(event_type, version)
    out = frame.reindex(columns=schema.columns)
    for f in schema.fields:
        if f.type == "string":
            out[f.name] = out[f.name].astype("str")
        elif f.type == "int64":
            out[f.name] = out[f.name].astype("int64")
        elif f.type == "float64":
            out[f.name] = out[f.name].astype("float64")
        elif f.type == "timestamp":
            out[f.name] = pd.to_datetime(out[f.name], utc=True).dt.as_unit("us")
    out["schema_version"] = np.full(len(out), version, dtype=np.int64)
    return out.reset_index(drop=True)


def numbered(prefix: str, day: int, numbers: np.ndarray, width: int = 7) -> pd.Series:
    """Ids like ``imp-003-0000042``: a prefix, the zero-padded day and number.

    >>> numbered("imp", 3, np.array([0, 42])).tolist()
    ['imp-003-0000000', 'imp-003-0000042']
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    size = int(numbers.max()) + 1 if numbers.size else 1
    digits = _padded_digits(1 << max(size - 1, 1).bit_length(), width)
    return f"{prefix}-{day:03d}-" + pd.Series(digits.take(numbers))


@lru_cache(maxsize=8)
def _padded_digits(n: int, width: int) -> pd.api.extensions.ExtensionArray:
    """'0000000'..: formatting numbers is the slow part of id building, so it is cached."""
    return pd.Series(np.arange(n)).astype("str").str.zfill(width).array


def timestamps(ts_us: np.ndarray) -> pd.DatetimeIndex:
    """Epoch microseconds to ``datetime64[us, UTC]``."""
    return pd.to_datetime(np.asarray(ts_us, dtype=np.int64), unit="us", utc=True)


def impression_frame(
    traffic: Traffic, version: int, user_ids: pd.Series, item_ids: pd.Series
) -> pd.DataFrame:
    """The impressions of one day; v2 adds the client ``device``."""
    n = len(traffic)
    data = {
        "event_id": numbered("imp", traffic.day, np.arange(n)),
        "ts": timestamps(traffic.ts_us),
        "request_id": numbered("req", traffic.day, traffic.request, width=6),
        "user_id": user_ids.array.take(traffic.user),
        "item_id": item_ids.array.take(traffic.item),
        "position": traffic.position,
    }
    if version >= 2:
        data["device"] = _DEVICE_NAMES.take(traffic.device.astype(np.intp))
    return with_schema(pd.DataFrame(data), "impression", version)


def click_frame(traffic: Traffic, outcomes: Outcomes, impressions: pd.DataFrame) -> pd.DataFrame:
    """One click per clicked impression, seconds to minutes after it, in time order."""
    rows = np.flatnonzero(outcomes.click)
    frame = pd.DataFrame(
        {
            "event_id": numbered("clk", traffic.day, rows),
            "ts": timestamps(outcomes.click_ts_us),
            "impression_id": impressions["event_id"].array.take(rows),
            "user_id": impressions["user_id"].array.take(rows),
            "item_id": impressions["item_id"].array.take(rows),
        }
    )
    return sort_by_time(with_schema(frame, "click"))


def conversion_frame(
    traffic: Traffic, outcomes: Outcomes, impressions: pd.DataFrame
) -> pd.DataFrame:
    """Conversions of clicked impressions, hours to days later, in time order."""
    rows = outcomes.conv_rows
    frame = pd.DataFrame(
        {
            "event_id": numbered("cnv", traffic.day, rows),
            "ts": timestamps(outcomes.conv_ts_us),
            "impression_id": impressions["event_id"].array.take(rows),
            "user_id": impressions["user_id"].array.take(rows),
            "item_id": impressions["item_id"].array.take(rows),
            "value": outcomes.conv_value,
        }
    )
    return sort_by_time(with_schema(frame, "conversion"))


def sort_by_time(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable sort by ``ts`` (ties keep id order), with a fresh index."""
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def concat_events(frames: list[pd.DataFrame], event_type: str, version: int) -> pd.DataFrame:
    """Concatenate frames of one event type, possibly of several schema versions.

    The result has the columns of schema ``version`` (the newest present); fields an
    older version lacks are missing, e.g. ``device`` of v1 impressions.
    """
    schema = get_schema(event_type, version)
    columns = [*schema.columns, "schema_version"]
    parts = [_with_missing(f, schema.fields) for f in frames if len(f)]
    if not parts:
        return with_schema(pd.DataFrame(), event_type, version)
    return pd.concat(parts, ignore_index=True)[columns]


def _with_missing(frame: pd.DataFrame, fields: tuple) -> pd.DataFrame:
    """Add fields an older schema version lacks, as missing values of the right type."""
    missing = [f for f in fields if f.name not in frame.columns]
    if not missing:
        return frame
    frame = frame.copy()
    for f in missing:
        if f.type == "string":  # an all-missing take is far faster than converting NaNs
            frame[f.name] = _DEVICE_NAMES.take(np.full(len(frame), -1), allow_fill=True)
        else:
            frame[f.name] = np.full(len(frame), np.nan)
    return frame
