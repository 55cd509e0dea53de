"""Exact as-of lookups over sorted arrays: "how many events did this entity have strictly
before t?" for millions of (entity, t) pairs at once.

Events are sorted by (entity code, rank of ts); a query (code, t) becomes a key that sorts
after every event of that entity with ``ts < t`` and before any with ``ts >= t``, so one
``np.searchsorted`` gives the running count, and the element just before it is the latest
event. Timestamps are replaced by their rank among the distinct event timestamps, so the
combined key never overflows whatever the time span, and ties (events at exactly t) are
excluded exactly.

DuckDB's ``ASOF JOIN`` computes the same thing; measured on 1.4M impressions it took
about 1.5 s per join and a training set needs about ten, while this takes well under a
second per event type, so loopml keeps DuckDB for reading, de-duplicating and labels
and does the as-of step here.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def encode(*arrays: Any) -> list[np.ndarray]:
    """Joint integer codes for several string arrays (Arrow or pandas); null -> -1.

    >>> import pyarrow as pa
    >>> [c.tolist() for c in encode(pa.array(["u1", None]), pa.array(["u2", "u1"]))]
    [[0, -1], [1, 0]]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = []
    for arr in arrays:
        arr = pa.array(arr, pa.string()) if not isinstance(arr, pa.Array | pa.ChunkedArray) else arr
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks() if arr.num_chunks else pa.array([], pa.string())
        chunks.append(pc.cast(arr, pa.string()))
    joined = pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())
    codes = pc.fill_null(joined.dictionary_encode().indices, -1)
    flat = codes.to_numpy(zero_copy_only=False).astype(np.int64)
    out, start = [], 0
    for c in chunks:
        out.append(flat[start : start + len(c)])
        start += len(c)
    return out


class AsOfIndex:
    """Events of one type keyed by one entity, ready for strict as-of lookups.

    >>> idx = AsOfIndex(np.array([0, 0, 1]), np.array([10, 20, 10]))
    >>> q = idx.query(np.array([0, 0, 0, 1, -1]), np.array([10, 11, 99, 99, 99]))
    >>> q.count().tolist()  # events strictly before t; a null entity (-1) has none
    [0, 1, 2, 1, 0]
    >>> q.last().tolist()  # the caller's row of the latest such event, -1 for none
    [-1, 0, 1, 2, -1]
    """

    def __init__(
        self, codes: np.ndarray, ts: np.ndarray, tiebreak: np.ndarray | None = None
    ) -> None:
        keep = codes >= 0
        rows = np.flatnonzero(keep)  # positions in the caller's event arrays
        codes, ts = codes[keep], ts[keep]
        if len(ts) > 1 and bool(np.all(ts[1:] >= ts[:-1])):  # time-ordered: ranks in O(n)
            new = np.empty(len(ts), dtype=bool)
            new[0], new[1:] = True, ts[1:] != ts[:-1]
            self.times, rank = ts[new], np.cumsum(new) - 1
        else:
            self.times = np.unique(ts)
            rank = np.searchsorted(self.times, ts)
        self.base = np.int64(len(self.times) + 1)
        keys = codes * self.base + rank
        if tiebreak is None:
            order = np.argsort(keys, kind="stable")
        else:  # among events at the same instant, the largest tiebreak is "latest"
            order = np.lexsort((tiebreak[keep], keys))
        self.rows = rows[order]
        self.keys = keys[order]

    def query(
        self, codes: np.ndarray, ts: np.ndarray, order: np.ndarray | None = None
    ) -> AsOfQuery:
        """Lookups for query rows (entity ``codes``, ``ts`` in microseconds); ``order`` is
        :func:`query_order` of them, passed in when several indexes share the rows."""
        return AsOfQuery(self, codes, ts, order)


def query_order(codes: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The permutation sorting query rows by (entity code, ts)."""
    if len(ts) < 2 or bool(np.all(ts[1:] >= ts[:-1])):
        return np.argsort(codes, kind="stable")  # already in time order
    return np.lexsort((ts, codes))


class AsOfQuery:
    """One set of query rows against one index; positions are cached per time shift.

    Binary searches are far faster with sorted needles (numpy reuses the previous bound
    and stays in cache), so ranks are searched in the caller's order (usually by time)
    and keys in (entity, time) order; results are scattered back once per output.
    """

    def __init__(
        self, index: AsOfIndex, codes: np.ndarray, ts: np.ndarray, order: np.ndarray | None = None
    ) -> None:
        self.index = index
        self.order = order if order is not None else query_order(codes, ts)
        self.valid = (codes >= 0)[self.order]
        self.base_keys = (np.maximum(codes, 0) * index.base)[self.order]
        self.ts = ts
        self._start: np.ndarray | None = None
        self._positions: dict[int, np.ndarray] = {}

    def _out(self, values: np.ndarray) -> np.ndarray:
        """From (entity, time) order back to the caller's order."""
        out = np.empty_like(values)
        out[self.order] = values
        return out

    @property
    def start(self) -> np.ndarray:
        if self._start is None:
            self._start = np.searchsorted(self.index.keys, self.base_keys, side="left")
        return self._start

    def position(self, shift_us: int = 0) -> np.ndarray:
        """Positions (in query order) of (code, t - shift): before each lie the entity's
        events with ts < t - shift."""
        if shift_us not in self._positions:
            rank = np.searchsorted(self.index.times, self.ts - np.int64(shift_us), side="left")
            needles = self.base_keys + rank[self.order]
            self._positions[shift_us] = np.searchsorted(self.index.keys, needles, side="left")
        return self._positions[shift_us]

    def count(self) -> np.ndarray:
        """Events strictly before t, per query row."""
        return self._out(np.where(self.valid, self.position() - self.start, 0))

    def window_count(self, seconds: int) -> np.ndarray:
        """Events in ``[t - window, t)``."""
        then = self.position(seconds * 1_000_000)
        return self._out(np.where(self.valid, self.position() - then, 0))

    def window_sum(self, values: np.ndarray, seconds: int) -> np.ndarray:
        """Sum of ``values`` (aligned with the caller's events) over ``[t - window, t)``."""
        ordered = np.nan_to_num(np.asarray(values, dtype=np.float64)[self.index.rows])
        running = np.concatenate([[0.0], np.cumsum(ordered)])
        then = self.position(seconds * 1_000_000)
        return self._out(np.where(self.valid, running[self.position()] - running[then], 0.0))

    def last(self) -> np.ndarray:
        """The caller's row of each entity's latest event before t, or -1."""
        pos = self.position()
        if not len(self.index.rows):
            return np.full(len(pos), -1, dtype=np.int64)
        found = self.valid & (pos > self.start)
        return self._out(np.where(found, self.index.rows[np.maximum(pos - 1, 0)], -1))
