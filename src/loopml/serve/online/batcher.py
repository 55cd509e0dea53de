"""Adaptive micro-batching: concurrent requests for one model version, one predict call.

A tree booster predicts 32 rows in about the time it predicts one, so under load
the server coalesces the requests that are waiting into one call and hands each
caller exactly its own rows back (responses are split by position in the batch, never
by value). At low load nothing waits: a lone request is flushed on the next turn of
the event loop.

Two execution modes, chosen per model from its measured speed:

- *inline* (fast models): the batch runs on the event loop; while it runs, new
  requests pile up in the socket buffers and form the next batch by themselves. A
  batch slower than ``inline_limit_s`` moves the model to thread mode for good;
- *thread* (slow models): the batch runs in a worker thread, the loop keeps
  accepting, and -- when the last batch held several requests, i.e. under load --
  the next batch lingers up to ``max_wait_s`` to grow. A lone request never lingers.

A model whose batch call costs about as much per row as its single-row call (e.g.
LightGBM's fast single-row path) gains nothing from waiting for company, so with
``coalesce=False`` an inline model predicts each request at once, skipping the queue.

A request with more rows than ``max_batch_size`` is already a batch: it runs alone in
a thread so a big upload never blocks the loop. The queue is bounded in rows: past
``max_queue_rows`` the caller gets :class:`OverloadedError` at once (the data plane
turns it into the fallback) instead of an ever longer wait.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import numpy as np

from loopml.core.errors import UnavailableError, ValidationError

Columns = dict[str, np.ndarray]
PredictFn = Callable[[Columns], np.ndarray]


class OverloadedError(UnavailableError):
    """The model's queue is full; the request was not queued."""


class Batcher:
    """Queue and coalesce predict calls for one loaded model version.

    Parameters
    ----------
    predict:
        Columns (signature order, already validated) -> output array, first axis = rows.
    inline:
        Run batches on the event loop (for models that answer in well under a millisecond).
    """

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int = 64,
        max_wait_s: float = 0.002,
        max_queue_rows: int = 4096,
        inline: bool = True,
        executor: Executor | None = None,
        on_batch: Callable[[int], None] | None = None,
        inline_limit_s: float = 0.05,
        coalesce: bool = True,
    ) -> None:
        self.predict = predict
        self.inline_limit_s = inline_limit_s
        self.coalesce = coalesce
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self.max_queue_rows = max(self.max_batch_size, int(max_queue_rows))
        self.inline = inline
        self.executor = executor
        self.on_batch = on_batch
        self._pending: deque[tuple[Columns, int, asyncio.Future]] = deque()
        self._rows = 0
        self._scheduled: Any = None
        self._running = False
        self._last_requests = 0
        self.batches = 0

    @property
    def queued_rows(self) -> int:
        return self._rows

    async def submit(self, columns: Columns, n: int, timeout_s: float | None = None) -> np.ndarray:
        """Predict ``n`` rows; resolves with exactly this caller's rows."""
        if self.inline and not self.coalesce and not self._pending:
            return self._now(columns, n)
        loop = asyncio.get_running_loop()
        if n > self.max_batch_size:
            fut = loop.run_in_executor(self.executor, self.predict, columns)
            return await (asyncio.wait_for(fut, timeout_s) if timeout_s else fut)
        if self._rows + n > self.max_queue_rows:
            raise OverloadedError(
                f"model queue is full ({self._rows} rows waiting, limit {self.max_queue_rows})",
                reason="overloaded",
            )
        fut = loop.create_future()
        self._pending.append((columns, n, fut))
        self._rows += n
        if not self._running:
            if self._rows >= self.max_batch_size:
                self._flush_now(loop)
            elif self._scheduled is None:
                if self.inline or self.max_wait_s == 0.0 or self._last_requests < 2:
                    # idle or inline: flush on the next turn of the loop, no added wait
                    self._scheduled = loop.call_soon(self._flush, loop)
                else:
                    # under load: linger so the next batch can grow
                    self._scheduled = loop.call_later(self.max_wait_s, self._flush, loop)
        if timeout_s and not self.inline:
            return await asyncio.wait_for(fut, timeout_s)
        return await fut

    def _now(self, columns: Columns, n: int) -> np.ndarray:
        """Predict at once on the loop (models that gain nothing from batching)."""
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(n)
        start = time.perf_counter()
        try:
            return _checked(self.predict(columns), n)
        finally:
            if time.perf_counter() - start > self.inline_limit_s:
                self.inline = False

    # -- flushing --------------------------------------------------------------------------
    def _flush_now(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
        self._scheduled = loop.call_soon(self._flush, loop)

    def _take(self) -> list[tuple[Columns, int, asyncio.Future]]:
        taken: list[tuple[Columns, int, asyncio.Future]] = []
        rows = 0
        while self._pending and rows + self._pending[0][1] <= self.max_batch_size:
            item = self._pending.popleft()
            if item[2].done():  # caller timed out or went away
                self._rows -= item[1]
                continue
            taken.append(item)
            rows += item[1]
        self._rows -= rows
        return taken

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = None
        items = self._take()
        if not items:
            self._reschedule(loop)
            return
        self.batches += 1
        self._last_requests = len(items)
        if self.on_batch is not None:
            self.on_batch(sum(n for _, n, _ in items))
        if self.inline:
            start = time.perf_counter()
            results = run_batch(self.predict, [(c, n) for c, n, _ in items])
            if time.perf_counter() - start > self.inline_limit_s:
                # the model got slow: stop blocking the loop; later batches use a thread
                # (where timeouts and the breaker apply)
                self.inline = False
            _deliver(items, results)
            self._reschedule(loop)
            return
        self._running = True
        job = loop.run_in_executor(
            self.executor, run_batch, self.predict, [(c, n) for c, n, _ in items]
        )

        def done(task: asyncio.Future) -> None:
            self._running = False
            if task.cancelled():
                results: list[Any] = [UnavailableError("batch was cancelled")] * len(items)
            elif task.exception() is not None:
                results = [task.exception()] * len(items)
            else:
                results = task.result()
            _deliver(items, results)
            self._reschedule(loop)

        job.add_done_callback(done)

    def _reschedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pending and self._scheduled is None and not self._running:
            self._scheduled = loop.call_soon(self._flush, loop)


def run_batch(predict: PredictFn, items: list[tuple[Columns, int]]) -> list[Any]:
    """Predict the concatenated rows once; split the output back by row counts.

    If the batch fails, each request is retried alone so one bad request cannot fail
    the others; each result is then an array or the exception for that request.

    >>> double = lambda cols: cols["x"] * 2
    >>> run_batch(double, [({"x": np.array([1.0])}, 1), ({"x": np.array([2.0, 3.0])}, 2)])
    [array([2.]), array([4., 6.])]
    """
    if len(items) == 1:
        try:
            return [_checked(predict(items[0][0]), items[0][1])]
        except Exception as exc:  # noqa: BLE001 - handed to the one caller
            return [exc]
    names = list(items[0][0])
    try:
        if any(list(c) != names for c, _ in items):
            raise ValidationError("requests in one batch have different columns")
        batch = {name: np.concatenate([c[name] for c, _ in items]) for name in names}
        out = _checked(predict(batch), sum(n for _, n in items))
    except Exception:  # noqa: BLE001 - isolate the failing request below
        results: list[Any] = []
        for cols, n in items:
            try:
                results.append(_checked(predict(cols), n))
            except Exception as exc:  # noqa: BLE001
                results.append(exc)
        return results
    results = []
    start = 0
    for _, n in items:
        results.append(out[start : start + n])
        start += n
    return results


def _checked(out: Any, n: int) -> np.ndarray:
    arr = np.asarray(out)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise UnavailableError(
            f"model returned {arr.shape[0] if arr.ndim else 'a scalar'} rows for {n} inputs"
        )
    return arr


def _deliver(items: list[tuple[Columns, int, asyncio.Future]], results: list[Any]) -> None:
    for (_, _, fut), result in zip(items, results, strict=True):
        if fut.done():
            continue
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)
