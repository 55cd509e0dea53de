"""Checking closed-loop arguments: ids, positions, times and devices from callers.

Callers (bandits, A/B tests, learners) pass lists, numpy arrays or pandas Series; these
helpers turn them into index arrays and raise a ValidationError or NotFoundError naming
the argument, the bad value and the fix, instead of failing deep inside numpy.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from loopml.core.errors import NotFoundError, ValidationError
from loopml.sim.truth import DEVICES

_DEVICE_CODES = {name: code for code, name in enumerate(DEVICES)}
_NUMERIC = ("integer", "floating", "mixed-integer-float", "decimal", "boolean")


def as_array(values: Any, name: str, max_ndim: int = 1) -> np.ndarray:
    """A numpy array (scalars become length 1) with at most ``max_ndim`` dimensions."""
    if isinstance(values, pd.Series | pd.Index):
        values = values.to_numpy(dtype=object)
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    arr = np.atleast_1d(arr)
    if arr.ndim > max_ndim:
        raise ValidationError(
            f"{name} must have at most {max_ndim} dimension(s), got shape {arr.shape}; "
            "pass a flat list or array",
            field=name,
        )
    return arr


def rows_of(index: pd.Index, values: Any, name: str, example: str, max_ndim: int = 1) -> np.ndarray:
    """Row numbers of ids in ``index``; unknown ids raise NotFoundError listing a few."""
    arr = as_array(values, name, max_ndim=max_ndim)
    flat = arr.reshape(-1)
    rows = index.get_indexer(pd.Index(flat, dtype=object)) if flat.size else np.array([], int)
    missing = rows < 0
    if missing.any():
        bad = ", ".join(repr(v) for v in flat[missing][:3])
        raise NotFoundError(
            f"{name}: {int(missing.sum())} unknown id(s), e.g. {bad}; ids look like "
            f"{example!r}, see World.users / World.items for the valid ones",
            field=name,
        )
    return rows.reshape(arr.shape)


def positions_of(values: Any) -> np.ndarray:
    """Non-negative integer slate positions."""
    arr = np.atleast_1d(np.asarray(values))
    if arr.dtype.kind not in "iu" or (arr.size and arr.min() < 0):
        raise ValidationError(
            f"positions must be integers >= 0 (0 = top slot), got {arr[:5].tolist()!r} "
            f"of dtype {arr.dtype}",
            field="positions",
        )
    return arr.astype(np.int64)


def ts_us_of(values: Any) -> np.ndarray:
    """Timestamps (scalar or array; str, datetime, pandas or numpy) as UTC epoch
    microseconds. Naive values are taken as UTC; bare numbers are refused as ambiguous."""
    try:
        if isinstance(values, str | dt.date | np.datetime64):
            ts = pd.Timestamp(values)
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            return np.array([ts.value // 1000], dtype=np.int64)  # .value is always in ns
        if isinstance(values, pd.Series | pd.Index):
            series = pd.Series(values.array)
        else:
            series = pd.Series(np.atleast_1d(np.asarray(values)))
        if pd.api.types.infer_dtype(series, skipna=True) in _NUMERIC:
            raise TypeError("bare numbers are ambiguous as timestamps")
        parsed = pd.to_datetime(series, utc=True)
        if parsed.isna().any():
            raise ValueError("missing timestamp")
        return pd.DatetimeIndex(parsed).as_unit("us").asi8.copy()
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(
            f"ts must be a timestamp or an array of them (str, datetime, pandas or numpy "
            f"datetime64), got {values!r:.80}; e.g. '2026-01-05T20:00:00Z'",
            field="ts",
        ) from exc


def device_codes_of(values: Any) -> np.ndarray:
    """Device names to codes; None / missing entries become -1 (the user's usual device)."""
    if values is None:
        return np.array([-1], dtype=np.int8)
    names = pd.Series(as_array(values, "devices"), dtype=object)
    codes = names.map(_DEVICE_CODES)
    unknown = codes.isna() & names.notna()
    if unknown.any():
        raise ValidationError(
            f"devices: unknown device {names[unknown].iloc[0]!r}; valid: {', '.join(DEVICES)} "
            "(or None for the user's usual device)",
            field="devices",
        )
    return codes.fillna(-1).to_numpy(dtype=np.int8)


def broadcast(**arrays: np.ndarray) -> list[np.ndarray]:
    """Broadcast per-row arguments to one length; a length-1 argument repeats."""
    try:
        return list(np.broadcast_arrays(*arrays.values()))
    except ValueError as exc:
        sizes = ", ".join(f"{k}={v.shape[0]}" for k, v in arrays.items())
        raise ValidationError(
            f"arguments have different lengths ({sizes}); pass equal lengths, or length 1 "
            "to repeat a value for every row",
            field=next(iter(arrays)),
        ) from exc
