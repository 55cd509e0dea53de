"""Vectorised validation of event rows against their schema version.

Logs arrive in batches of millions of rows, so every check runs column-wise over the
whole batch (pandas/Arrow), never as a Python loop per row. Each row ends up either
*valid* (typed, ready for Parquet) or *rejected* with one reason that names the field
and the fix; the caller sends rejected rows to the dead-letter log, so nothing is
silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loopml.core.errors import NotFoundError
from loopml.logs.schemas import all_fields, versions

if TYPE_CHECKING:
    import pandas as pd

VERSION_COLUMN = "schema_version"

_TYPE_FIX = {
    "string": "must be text; send a string",
    "int64": "must be a whole number (int64); send e.g. 3",
    "float64": "must be a number (float64); send e.g. 0.5",
    "bool": "must be true or false; send a boolean",
    "timestamp": (
        "must be a timestamp; send ISO-8601 text such as '2026-01-02T03:04:05Z' or a datetime"
    ),
}
_TRUE = ("true", "t", "yes", "y", "1", "1.0")
_FALSE = ("false", "f", "no", "n", "0", "0.0")


@dataclass
class Validated:
    """The outcome of validating one batch of one event type.

    ``valid`` maps schema version to a typed frame (schema columns in order, plus any
    newer-version columns the rows carried, plus ``schema_version``). ``rejected`` holds
    the original rows that failed, index-aligned with ``reasons``.
    """

    valid: dict[int, pd.DataFrame] = field(default_factory=dict)
    rejected: pd.DataFrame | None = None
    reasons: pd.Series | None = None

    @property
    def accepted(self) -> int:
        return sum(len(f) for f in self.valid.values())


def validate(frame: pd.DataFrame, event_type: str) -> Validated:
    """Split ``frame`` into typed valid rows per schema version and rejected rows.

    >>> import pandas as pd
    >>> rows = pd.DataFrame({"event_id": ["a", "b"], "ts": ["2026-01-01T00:00:00Z", "soon"],
    ...                      "impression_id": ["i", "i"], "user_id": ["u", "u"],
    ...                      "item_id": ["x", "x"]})
    >>> out = validate(rows, "click")
    >>> out.accepted
    1
    >>> print(out.reasons.iloc[0])  # doctest: +ELLIPSIS
    click v1: field 'ts' must be a timestamp; send ISO-8601 text such as ...
    """
    import numpy as np
    import pandas as pd

    frame = frame.reset_index(drop=True)
    n = len(frame)
    reasons = pd.Series(np.full(n, None, dtype=object))
    try:
        known = versions(event_type)
    except NotFoundError as exc:
        return Validated({}, frame, pd.Series([exc.message] * n, dtype=object))

    row_version = _row_versions(frame, known, reasons)
    union = all_fields(event_type)
    typed: dict[str, pd.Series] = {}
    bad_type: dict[str, pd.Series] = {}
    for name in frame.columns:
        if name in union:
            typed[name], bad_type[name] = _coerce(frame[name], union[name].type)
    present = {name: frame[name].notna() for name in frame.columns}

    out = Validated()
    for schema in known:
        mask = (row_version == schema.version) & reasons.isna()
        if not mask.any():
            continue
        prefix = f"{event_type} v{schema.version}: "
        newer = [c for c in union if c not in schema.columns]
        for name in frame.columns:
            if name == VERSION_COLUMN or name in schema.columns or name in newer:
                continue
            _reject(
                reasons,
                mask & present[name],
                f"{prefix}unknown column {name!r}; remove it, or add it to a new schema "
                f"version in loopml.logs.schemas (fields: {', '.join(schema.columns)})",
            )
        for f in schema.fields:
            if f.name not in frame.columns:
                if f.required:
                    _reject(
                        reasons,
                        mask,
                        f"{prefix}missing required field {f.name!r} ({f.type}); add the column",
                    )
                continue
            if f.required:
                _reject(
                    reasons,
                    mask & ~present[f.name],
                    f"{prefix}required field {f.name!r} is null; send a value",
                )
            _reject(
                reasons, mask & bad_type[f.name], f"{prefix}field {f.name!r} {_TYPE_FIX[f.type]}"
            )
        for name in newer:
            if name in frame.columns:
                _reject(
                    reasons,
                    mask & bad_type[name],
                    f"{prefix}field {name!r} {_TYPE_FIX[union[name].type]}",
                )
        if "event_id" in typed:
            empty = typed["event_id"].fillna("x").str.len() == 0
            _reject(reasons, mask & empty, f"{prefix}field 'event_id' is empty; send a unique id")
        ok = mask & reasons.isna()
        if not ok.any():
            continue
        cols: dict[str, pd.Series] = {}
        for f in schema.fields:
            cols[f.name] = typed[f.name][ok] if f.name in typed else _nulls(int(ok.sum()), f.type)
        for name in newer:  # a newer field sent early is kept, not dropped
            if name in typed and present[name][ok].any():
                cols[name] = typed[name][ok]
        good = pd.DataFrame(cols)
        good[VERSION_COLUMN] = np.int64(schema.version)
        out.valid[schema.version] = good.reset_index(drop=True)
    bad = reasons.notna()
    if bad.any():
        out.rejected = frame[bad]
        out.reasons = reasons[bad]
    return out


def _row_versions(frame: pd.DataFrame, known: list, reasons: pd.Series) -> pd.Series:
    """Each row's declared schema version; missing means the latest."""
    import numpy as np
    import pandas as pd

    latest = known[-1].version
    if VERSION_COLUMN not in frame.columns:
        return pd.Series(np.full(len(frame), latest, dtype=np.int64))
    raw = frame[VERSION_COLUMN]
    num = pd.to_numeric(raw, errors="coerce")
    valid = {s.version for s in known}
    ok = num.isin(valid) | raw.isna()
    have = ", ".join(str(v) for v in sorted(valid))
    _reject(
        reasons,
        ~ok,
        f"{known[0].event_type}: unknown {VERSION_COLUMN}; valid: {have} (omit it for the latest)",
    )
    return num.fillna(latest).where(ok, -1).astype(np.int64)


def _reject(reasons: pd.Series, mask: pd.Series, reason: str) -> None:
    """Record ``reason`` for rows in ``mask`` that have no reason yet (first failure wins)."""
    hit = mask & reasons.isna()
    if hit.any():
        reasons[hit] = reason


def _nulls(n: int, type_name: str) -> pd.Series:
    import pandas as pd

    dtype = {
        "string": "str",
        "int64": "Int64",
        "float64": "Float64",
        "bool": "boolean",
        "timestamp": "datetime64[us, UTC]",
    }[type_name]
    return pd.Series([None] * n, dtype=dtype)


def _coerce(values: pd.Series, type_name: str) -> tuple[pd.Series, pd.Series]:
    """Column-wise conversion to the schema type: (typed values, mask of unconvertible rows)."""
    import pandas as pd

    present = values.notna()
    if type_name == "string":
        if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
            return values, present & False
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind in ("string", "empty", "integer", "floating", "mixed-integer-float", "boolean"):
            out = values.astype("str")
            if kind in ("floating", "mixed-integer-float"):  # 3.0 -> "3", not "3.0"
                num = pd.to_numeric(values, errors="coerce")
                whole = present & (num % 1 == 0)
                out = out.where(~whole, num.where(whole).astype("Int64").astype("str"))
            return out, present & False
        scalar = values.map(lambda v: isinstance(v, str | int | float), na_action="ignore")
        bad = present & ~scalar.fillna(True).astype(bool)
        return values.where(~bad).astype("str"), bad
    if type_name in ("int64", "float64"):
        if values.dtype == bool or pd.api.types.infer_dtype(values, skipna=True) == "boolean":
            return _nulls(len(values), type_name), present
        num = pd.to_numeric(values, errors="coerce")
        bad = present & num.isna()
        if type_name == "int64":
            fractional = present & ~bad & (num % 1 != 0)
            bad = bad | fractional
            return num.where(~bad).astype("Int64"), bad
        return num.astype("Float64"), bad
    if type_name == "bool":
        if values.dtype == bool:
            return values.astype("boolean"), present & False
        text = values.astype("str").str.strip().str.lower()
        truthy, falsy = text.isin(_TRUE), text.isin(_FALSE)
        out = pd.Series(pd.NA, index=values.index, dtype="boolean")
        out[truthy] = True
        out[falsy] = False
        return out, present & ~(truthy | falsy)
    return _coerce_timestamp(values, present)


def _coerce_timestamp(values: pd.Series, present: pd.Series) -> tuple[pd.Series, pd.Series]:
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[us, UTC]"), present & False
    if pd.api.types.is_datetime64_dtype(dtype):
        return values.dt.tz_localize("UTC").astype("datetime64[us, UTC]"), present & False
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        # A bare number is ambiguous (seconds? milliseconds?): refuse rather than guess.
        return _nulls(len(values), "timestamp"), present
    kind = pd.api.types.infer_dtype(values, skipna=True)
    numeric = present & False
    if kind not in ("string", "empty", "datetime", "datetime64", "date"):
        numeric = (
            values.map(
                lambda v: isinstance(v, int | float) and not isinstance(v, bool), na_action="ignore"
            )
            .fillna(False)
            .astype(bool)
        )
    candidates = values.where(~numeric)
    parsed = pd.to_datetime(candidates, utc=True, errors="coerce", format="ISO8601")
    parsed = parsed.astype("datetime64[us, UTC]")
    return parsed, present & parsed.isna()
