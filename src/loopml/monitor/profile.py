"""Reference profiles: the reference window summarised once per model version.

A profile keeps, per column, just enough to test any later window without the
reference rows: for a continuous numeric column a fine uniform grid over the bulk of
the values (count and sum per cell) plus the exact values of the thin tails; for a
discrete numeric or categorical column the exact count of every value. Windows are
summarised on the same grid (:mod:`loopml.monitor.summary`), so a new window costs only
its own rows, and tests run on a few thousand numbers.

Accuracy: cumulative distributions are exact at every cell edge and tail value, so the
KS statistic is off by at most one cell's share and the Wasserstein distance by at most
one cell's width (1/8192 of the central 99.9% range by default). References of up to
``exact_limit`` rows also keep their raw values, and small windows are then tested
exactly.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.core.clock import utcnow
from loopml.core.errors import NotFoundError, ValidationError, did_you_mean
from loopml.monitor.columns import category_counts, column_names, is_numeric, numeric_values
from loopml.monitor.columns import series as column_series

#: Numeric columns with at most this many distinct values are profiled value by value.
DISCRETE_MAX = 32


@dataclass
class NumericProfile:
    """A continuous numeric column: grid counts and sums, exact tails, moments."""

    name: str
    n: int
    n_missing: int
    mean: float
    std: float
    min: float
    max: float
    lo: float
    hi: float
    counts: np.ndarray
    sums: np.ndarray
    low: np.ndarray
    high: np.ndarray
    raw: np.ndarray | None = None
    kind: str = "numeric"

    @property
    def cells(self) -> int:
        return len(self.counts)

    def atoms(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and weights: tail values, then each non-empty cell at its mean."""
        full = self.counts > 0
        pos = np.concatenate([self.low, self.sums[full] / self.counts[full], self.high])
        w = np.concatenate([np.ones(len(self.low)), self.counts[full], np.ones(len(self.high))])
        return pos, w

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and weights for cumulative checks: cells at their right edges."""
        width = (self.hi - self.lo) / self.cells
        right = self.lo + width * np.arange(1, self.cells + 1)
        pos = np.concatenate([self.low, right, self.high])
        w = np.concatenate([np.ones(len(self.low)), self.counts, np.ones(len(self.high))])
        return pos, w


@dataclass
class CategoricalProfile:
    """A categorical column, or a numeric one with few distinct values (``discrete``).

    ``other`` counts rows in categories beyond ``max_categories`` (kept as one bucket).
    """

    name: str
    n: int
    n_missing: int
    values: np.ndarray
    counts: np.ndarray
    other: int = 0
    kind: str = "categorical"
    mean: float = float("nan")
    std: float = float("nan")
    min: float = float("nan")
    max: float = float("nan")

    def index(self) -> dict[Any, int]:
        return {v: i for i, v in enumerate(self.values.tolist())}


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass
class ReferenceProfile:
    """Every monitored column of a reference window, plus where it came from.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = {"age": rng.normal(40, 5, 5000), "country": rng.choice(["kr", "us"], 5000)}
    >>> profile = build_profile(ref)
    >>> profile["age"].kind, profile["country"].kind, profile.n_rows
    ('numeric', 'categorical', 5000)
    >>> ReferenceProfile.from_bytes(profile.to_bytes())["age"].n
    5000
    """

    columns: dict[str, ColumnProfile]
    n_rows: int
    output: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ColumnProfile:
        try:
            return self.columns[name]
        except KeyError:
            raise NotFoundError(
                f"the reference profile has no column {name!r}; "
                f"{did_you_mean(name, list(self.columns))}",
                field=name,
            ) from None

    @property
    def features(self) -> list[str]:
        """Monitored input columns (the output column excluded)."""
        return [c for c in self.columns if c != self.output]

    # -- persistence --------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """A compressed, pickle-free ``.npz`` blob (arrays plus a JSON header)."""
        arrays: dict[str, np.ndarray] = {}
        header: dict[str, Any] = {"n_rows": self.n_rows, "output": self.output, "meta": self.meta}
        cols = []
        for i, col in enumerate(self.columns.values()):
            scalars = {
                k: v
                for k, v in col.__dict__.items()
                if not isinstance(v, np.ndarray) and v is not None
            }
            for key, value in col.__dict__.items():
                if isinstance(value, np.ndarray):
                    arrays[f"c{i}_{key}"] = value
            cols.append(scalars)
        header["columns"] = cols
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            header = json.loads(npz["header"].tobytes().decode())
            columns: dict[str, ColumnProfile] = {}
            for i, scalars in enumerate(header["columns"]):
                arrays = {
                    key.split("_", 1)[1]: npz[key] for key in npz.files if key.startswith(f"c{i}_")
                }
                kind_cls = NumericProfile if scalars["kind"] == "numeric" else CategoricalProfile
                columns[scalars["name"]] = kind_cls(**scalars, **arrays)
        return cls(columns, header["n_rows"], header.get("output"), header.get("meta", {}))


def build_profile(
    frame: Any,
    columns: list[str] | None = None,
    *,
    categorical: list[str] | tuple[str, ...] = (),
    output: str | None = None,
    cells: int = 8192,
    tail: float = 0.0005,
    exact_limit: int = 5000,
    max_categories: int = 5000,
    meta: dict[str, Any] | None = None,
) -> ReferenceProfile:
    """Summarise the reference window once (e.g. a model version's training data).

    Parameters
    ----------
    frame: pandas DataFrame, Arrow table or mapping of column name to values.
    columns: the columns to monitor (default: all).
    categorical: numeric columns to treat as categories anyway (e.g. ids).
    output: the model's output column, tested as prediction drift.
    cells: grid resolution for continuous columns.
    tail: share of values kept exactly on each side, outside the grid.
    exact_limit: references with at most this many rows also keep raw values.
    """
    if cells < 16:
        raise ValidationError(f"cells must be >= 16, got {cells}", field="cells")
    if not 0 <= tail < 0.5:
        raise ValidationError(f"tail must be in [0, 0.5), got {tail}", field="tail")
    names = columns if columns is not None else column_names(frame)
    if output is not None and output not in names:
        names = [*names, output]
    profiles: dict[str, ColumnProfile] = {}
    n_rows = 0
    for name in names:
        values = column_series(frame, name)
        n_rows = max(n_rows, len(values))
        if is_numeric(values) and name not in categorical:
            x, missing, _ = numeric_values(values)
            profiles[name] = _numeric(name, x, missing, cells, tail, exact_limit)
        else:
            cats, counts, missing = category_counts(values)
            other = int(counts[max_categories:].sum())
            profiles[name] = CategoricalProfile(
                name,
                int(counts.sum()),
                missing,
                cats[:max_categories],
                counts[:max_categories],
                other,
            )
    info = {"created_at": utcnow().isoformat(), **(meta or {})}
    return ReferenceProfile(profiles, n_rows, output, info)


def _numeric(
    name: str, x: np.ndarray, missing: int, cells: int, tail: float, exact_limit: int
) -> ColumnProfile:
    n = len(x)
    moments = {
        "mean": float(x.mean()) if n else float("nan"),
        "std": float(x.std()) if n else float("nan"),
        "min": float(x.min()) if n else float("nan"),
        "max": float(x.max()) if n else float("nan"),
    }
    discrete = _discrete_values(x)
    if discrete is not None:
        values, counts = discrete
        return CategoricalProfile(name, n, missing, values, counts, 0, "discrete", **moments)
    k_lo, k_hi = int(tail * n), n - 1 - int(tail * n)
    lo, hi = (float(v) for v in np.partition(x, [k_lo, k_hi])[[k_lo, k_hi]])
    if hi <= lo:  # a spike holds the whole centre: let the grid span everything
        lo, hi = moments["min"], moments["max"]
    counts, sums, low, high = grid(x, lo, hi, cells)
    low, high = np.sort(low), np.sort(high)
    raw = np.sort(x) if n <= exact_limit else None
    return NumericProfile(
        name,
        n,
        missing,
        **moments,
        lo=lo,
        hi=hi,
        counts=counts,
        sums=sums,
        low=low,
        high=high,
        raw=raw,
    )


def grid(
    x: np.ndarray, lo: float, hi: float, cells: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Count and sum per uniform cell of ``[lo, hi)``, and the values below and above.

    One cell index decides both, so every value is in exactly one place even where
    floating-point rounding meets a boundary.

    >>> counts, sums, low, high = grid(np.array([-1.0, 0.0, 0.1, 0.9, 1.0, 5.0]), 0.0, 1.0, 2)
    >>> counts.tolist(), sums.tolist(), low.tolist(), high.tolist()
    ([2, 1], [0.1, 0.9], [-1.0], [1.0, 5.0])
    """
    idx = x - lo
    idx *= cells / (hi - lo)
    np.floor(idx, out=idx)
    np.clip(idx, -1.0, float(cells), out=idx)
    cell = idx.astype(np.intp)
    cell += 1  # 0: below lo, 1..cells: the grid, cells + 1: at or above hi
    counts = np.bincount(cell, minlength=cells + 2)
    sums = np.bincount(cell, weights=x, minlength=cells + 2)
    low = x[cell == 0] if counts[0] else x[:0]
    high = x[cell == cells + 1] if counts[cells + 1] else x[:0]
    return counts[1 : cells + 1].astype(np.int64), sums[1 : cells + 1], low, high


def _discrete_values(x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact value counts when the column has at most ``DISCRETE_MAX`` distinct values."""
    if len(x) == 0:
        return np.array([], dtype=np.float64), np.array([], dtype=np.int64)
    candidates = np.unique(x[:4096])
    if len(candidates) > DISCRETE_MAX:
        return None
    counts = np.array([np.count_nonzero(x == v) for v in candidates], dtype=np.int64)
    if counts.sum() != len(x):
        values, counts = np.unique(x, return_counts=True)
        if len(values) > DISCRETE_MAX:
            return None
        return values, counts.astype(np.int64)
    return candidates, counts
