"""Latency and throughput measured the same way for every variant and baseline.

Medians over repeated calls, after a warm-up, so one slow call (a page fault, a GC)
does not decide a trade-off.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_us(fn: Callable[[], Any], repeats: int = 200, warmup: int = 20) -> float:
    """Median wall time of ``fn()`` in microseconds.

    >>> median_us(lambda: None, repeats=5, warmup=1) < 1000
    True
    """
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def rows_per_second(fn: Callable[[], Any], rows: int, repeats: int = 5) -> float:
    """Throughput of a batch call that scores ``rows`` rows (median of ``repeats``)."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return rows / statistics.median(samples)
