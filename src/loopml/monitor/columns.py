"""Reading one column out of a DataFrame, an Arrow table or a mapping, the cheap way.

Drift and quality only need float64 values for numeric columns and value counts for
categorical ones, so that is all this module produces. A value that cannot be read as
the column's kind is counted as a schema violation, never silently turned into data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from loopml.core.errors import NotFoundError, ValidationError, did_you_mean


def column_names(frame: Any) -> list[str]:
    """Column names of a pandas DataFrame, an Arrow table or a mapping of columns."""
    if isinstance(frame, Mapping):
        return [str(k) for k in frame]
    if hasattr(frame, "schema") and hasattr(frame, "column_names"):  # pyarrow.Table
        return list(frame.column_names)
    if hasattr(frame, "columns"):
        return [str(c) for c in frame.columns]
    raise ValidationError(
        f"monitoring input must be a pandas DataFrame, an Arrow table or a mapping of "
        f"column name to values, got {type(frame).__name__}",
        field="frame",
    )


def series(frame: Any, name: str) -> Any:
    """One column as a pandas Series (zero-copy where the source allows)."""
    import pandas as pd

    names = column_names(frame)
    if name not in names:
        raise NotFoundError(
            f"column {name!r} is not in the data; {did_you_mean(name, names)}", field=name
        )
    if isinstance(frame, Mapping):
        values = frame[name]
        return values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if hasattr(frame, "schema") and hasattr(frame, "column_names"):
        return frame.column(name).to_pandas()
    return frame[name]


def is_numeric(values: Any) -> bool:
    """True for integer, float and boolean columns."""
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values))


def numeric_values(values: Any) -> tuple[np.ndarray, int, int]:
    """``(finite float64 values, missing count, invalid count)`` of a numeric column.

    Infinities count as missing (as in the usual drift presets); strings that are not
    numbers count as invalid.

    >>> import pandas as pd
    >>> x, missing, invalid = numeric_values(pd.Series(["1.5", None, "abc", 2]))
    >>> x.tolist(), missing, invalid
    ([1.5, 2.0], 1, 1)
    """
    import pandas as pd

    s = values if isinstance(values, pd.Series) else pd.Series(values)
    invalid = 0
    if is_numeric(s):
        x = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        coerced = pd.to_numeric(s, errors="coerce")
        invalid = int((coerced.isna() & s.notna()).sum())
        x = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(x)
    if finite.all():
        return x, 0, 0
    missing = int((~finite).sum()) - invalid
    return x[finite], missing, invalid


def category_counts(values: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """``(categories as str, counts, missing count)``, most frequent first.

    >>> cats, counts, missing = category_counts(["a", "b", "a", None])
    >>> cats.tolist(), counts.tolist(), missing
    (['a', 'b'], [2, 1], 1)
    """
    import pandas as pd

    s = values if isinstance(values, pd.Series) else pd.Series(values)
    counts = s.value_counts(dropna=True)
    missing = int(len(s) - int(counts.sum()))
    cats = np.array([str(v) for v in counts.index], dtype=str)
    if len(set(cats.tolist())) != len(cats):  # e.g. 1 and "1" both present: merge them
        merged: dict[str, int] = {}
        for cat, count in zip(cats.tolist(), counts.to_numpy().tolist(), strict=True):
            merged[cat] = merged.get(cat, 0) + int(count)
        ordered = sorted(merged.items(), key=lambda kv: -kv[1])
        return (
            np.array([k for k, _ in ordered], dtype=str),
            np.array([v for _, v in ordered], dtype=np.int64),
            missing,
        )
    return cats, counts.to_numpy(dtype=np.int64), missing
