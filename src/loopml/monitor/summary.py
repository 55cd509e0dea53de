"""Window summaries: one pass over a window's rows, on the reference profile's grid.

A summary is small (a few thousand numbers per column) and additive: the summary of
two days is the merge of the two daily summaries. Sliding and cumulative windows are
therefore merges of stored pieces, and no row is read twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.monitor.columns import category_counts, column_names, numeric_values
from loopml.monitor.columns import series as column_series
from loopml.monitor.profile import CategoricalProfile, NumericProfile, ReferenceProfile, grid

#: Above this many tail values a summary bins its tails (error <= tail range / 4096).
TAIL_CAP = 65536


@dataclass
class NumericSummary:
    """A window's numeric column on the reference grid, plus its tails and moments."""

    name: str
    n: int
    n_missing: int
    n_invalid: int
    counts: np.ndarray
    sums: np.ndarray
    tail_pos: np.ndarray
    tail_w: np.ndarray
    total: float
    total_sq: float
    min: float
    max: float
    raw: np.ndarray | None = None

    def merge(self, other: NumericSummary, exact_limit: int) -> NumericSummary:
        raw = None
        if self.raw is not None and other.raw is not None and self.n + other.n <= exact_limit:
            raw = np.concatenate([self.raw, other.raw])
        pos, w = _cap(
            np.concatenate([self.tail_pos, other.tail_pos]),
            np.concatenate([self.tail_w, other.tail_w]),
        )
        return NumericSummary(
            self.name,
            self.n + other.n,
            self.n_missing + other.n_missing,
            self.n_invalid + other.n_invalid,
            self.counts + other.counts,
            self.sums + other.sums,
            pos,
            w,
            self.total + other.total,
            self.total_sq + other.total_sq,
            _nanmin(self.min, other.min),
            _nanmax(self.max, other.max),
            raw,
        )

    def atoms(self, profile: NumericProfile) -> tuple[np.ndarray, np.ndarray]:
        full = self.counts > 0
        pos = np.concatenate([self.sums[full] / self.counts[full], self.tail_pos])
        return pos, np.concatenate([self.counts[full], self.tail_w])

    def edges(self, profile: NumericProfile) -> tuple[np.ndarray, np.ndarray]:
        width = (profile.hi - profile.lo) / profile.cells
        right = profile.lo + width * np.arange(1, profile.cells + 1)
        return np.concatenate([right, self.tail_pos]), np.concatenate([self.counts, self.tail_w])

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")


@dataclass
class CategoricalSummary:
    """A window's counts aligned to the profile's values, plus values it never saw."""

    name: str
    n: int
    n_missing: int
    n_invalid: int
    counts: np.ndarray
    other: int
    unseen: dict[Any, int] = field(default_factory=dict)

    def merge(self, other: CategoricalSummary, exact_limit: int) -> CategoricalSummary:
        unseen = dict(self.unseen)
        for key, count in other.unseen.items():
            unseen[key] = unseen.get(key, 0) + count
        return CategoricalSummary(
            self.name,
            self.n + other.n,
            self.n_missing + other.n_missing,
            self.n_invalid + other.n_invalid,
            self.counts + other.counts,
            self.other + other.other,
            unseen,
        )

    @property
    def n_unseen(self) -> int:
        return int(sum(self.unseen.values()))


ColumnSummary = NumericSummary | CategoricalSummary


@dataclass
class WindowSummary:
    """Per-column summaries of one window, plus the columns that broke the schema."""

    columns: dict[str, ColumnSummary]
    n_rows: int
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)

    def merge(self, other: WindowSummary, exact_limit: int = 5000) -> WindowSummary:
        """The summary of both windows together (their rows, not an average)."""
        merged = {
            name: col.merge(other.columns[name], exact_limit)  # type: ignore[arg-type]
            if name in other.columns
            else col
            for name, col in self.columns.items()
        }
        for name, col in other.columns.items():
            merged.setdefault(name, col)
        return WindowSummary(
            merged,
            self.n_rows + other.n_rows,
            sorted(set(self.missing_columns) | set(other.missing_columns)),
            sorted(set(self.extra_columns) | set(other.extra_columns)),
        )


def summarise(profile: ReferenceProfile, frame: Any, exact_limit: int = 5000) -> WindowSummary:
    """Summarise a window's rows on ``profile``'s grid and categories (one pass each).

    >>> import numpy as np
    >>> from loopml.monitor.profile import build_profile
    >>> profile = build_profile({"x": np.arange(100.0), "c": ["a", "b"] * 50})
    >>> s = summarise(profile, {"x": [1.0, 500.0, None], "c": ["a", "z", "z"]})
    >>> s.columns["x"].n, s.columns["x"].n_missing, s.columns["c"].unseen
    (2, 1, {'z': 2})
    """
    names = column_names(frame)
    present = set(names)
    columns: dict[str, ColumnSummary] = {}
    n_rows = 0
    for name, col in profile.columns.items():
        if name not in present:
            continue
        values = column_series(frame, name)
        n_rows = max(n_rows, len(values))
        if isinstance(col, NumericProfile):
            columns[name] = _numeric(col, values, exact_limit)
        else:
            columns[name] = _categorical(col, values)
    if not columns and names:
        n_rows = len(column_series(frame, names[0]))
    missing = [c for c in profile.columns if c not in present]
    extra = [c for c in names if c not in profile.columns]
    return WindowSummary(columns, n_rows, missing, extra)


def _numeric(col: NumericProfile, values: Any, exact_limit: int) -> NumericSummary:
    x, missing, invalid = numeric_values(values)
    counts, sums, low, high = grid(x, col.lo, col.hi, col.cells)
    outside = np.concatenate([low, high])
    pos, w = _cap(outside, np.ones(len(outside)))
    n = len(x)
    return NumericSummary(
        col.name,
        n,
        missing,
        invalid,
        counts,
        sums,
        pos,
        w,
        float(x.sum()),
        float(np.dot(x, x)),
        float(x.min()) if n else float("nan"),
        float(x.max()) if n else float("nan"),
        x.copy() if col.raw is not None and n <= exact_limit else None,
    )


def _categorical(col: CategoricalProfile, values: Any) -> CategoricalSummary:
    index = col.index()
    counts = np.zeros(len(col.values), dtype=np.int64)
    unseen: dict[Any, int] = {}
    if col.kind == "discrete":
        x, missing, invalid = numeric_values(values)
        if len(x):
            cats, cat_counts = np.unique(x, return_counts=True)
        else:
            cats, cat_counts = np.array([]), np.array([], dtype=np.int64)
    else:
        cats, cat_counts, missing = category_counts(values)
        invalid = 0
    other = 0
    for cat, count in zip(cats.tolist(), cat_counts.tolist(), strict=True):
        i = index.get(cat)
        if i is not None:
            counts[i] += count
        elif col.other:  # the profile bucketed its rare categories: so do we
            other += count
        else:
            unseen[cat] = unseen.get(cat, 0) + count
    n = int(counts.sum()) + other + sum(unseen.values())
    return CategoricalSummary(col.name, n, missing, invalid, counts, other, unseen)


def _cap(pos: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep tail values exact up to ``TAIL_CAP``; beyond, bin them at their cell means."""
    if len(pos) <= TAIL_CAP:
        return pos, w
    lo, hi = float(pos.min()), float(pos.max())
    if hi <= lo:
        return np.array([lo]), np.array([float(w.sum())])
    cells = 4096
    cell = np.minimum(((pos - lo) * (cells / (hi - lo))).astype(np.int64), cells - 1)
    counts = np.bincount(cell, weights=w, minlength=cells)
    sums = np.bincount(cell, weights=pos * w, minlength=cells)
    full = counts > 0
    return sums[full] / counts[full], counts[full]


def _nanmin(a: float, b: float) -> float:
    return float(np.nanmin([a, b])) if not (np.isnan(a) and np.isnan(b)) else float("nan")


def _nanmax(a: float, b: float) -> float:
    return float(np.nanmax([a, b])) if not (np.isnan(a) and np.isnan(b)) else float("nan")
