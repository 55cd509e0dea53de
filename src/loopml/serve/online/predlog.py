"""The prediction log: sampled inputs, outputs, model version, latency and request id.

Monitoring (drift, delayed-label performance) reads these ``prediction`` events from
the event log. Recording is cheap on the request path (a list append of references);
rows are built and written in a worker thread every ``flush_s`` seconds, and once
more at shutdown. On a local event log they go to its JSON-lines spool
(:mod:`loopml.logs.spool`), which keeps pyarrow and pandas out of the serving worker.
The buffer is bounded: past ``max_rows`` new rows are counted as dropped in
``/metrics`` rather than growing memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

log = logging.getLogger("loopml.serve.online")

_MAX_ROWS_PER_REQUEST = 100


class PredictionLog:
    """Buffer sampled predictions and append them to the event log in the background."""

    def __init__(
        self,
        write: Callable[[list[dict[str, Any]]], Any],
        *,
        close: Callable[[], Any] | None = None,
        due: Callable[[], bool] | None = None,
        sample_rate: float = 1.0,
        flush_s: float = 1.0,
        max_rows: int = 100_000,
        on_count: Callable[[str, int], None] | None = None,
    ) -> None:
        self.write = write
        self.close = close
        self.due = due
        self.sample_rate = sample_rate
        self.flush_s = flush_s
        self.max_rows = max_rows
        self.on_count = on_count
        self._buffer: list[tuple[Any, ...]] = []
        self._rows = 0
        self._task: asyncio.Task | None = None
        self.written = 0
        self.failed = 0

    def record(
        self,
        *,
        request_id: str,
        model: str,
        version: int,
        columns: dict[str, np.ndarray],
        outputs: dict[str, np.ndarray],
        n: int,
        latency_ms: float,
        rate: float | None = None,
        entity_id: str | None = None,
        arm: str | None = None,
    ) -> None:
        """Keep this request with probability ``rate`` (default: the log's sample rate)."""
        p = self.sample_rate if rate is None else rate
        if n == 0 or p <= 0.0 or (p < 1.0 and random.random() >= p):
            return
        take = min(n, _MAX_ROWS_PER_REQUEST)
        if self._rows + take > self.max_rows:
            if self.on_count:
                self.on_count("dropped", take)
            return
        self._rows += take
        self._buffer.append(
            (
                datetime.now(UTC),
                request_id,
                model,
                version,
                columns,
                outputs,
                take,
                latency_ms,
                entity_id,
                arm,
            )
        )

    async def run(self) -> None:
        """Flush every ``flush_s`` seconds until cancelled, then flush what is left."""
        try:
            while True:
                await asyncio.sleep(self.flush_s)
                await self.flush()
                if self.close is not None and self.due is not None and self.due():
                    await asyncio.to_thread(self.close)
        except asyncio.CancelledError:
            await self.flush()
            raise

    async def aclose(self) -> None:
        """Flush what is left and seal the spool, so readers see every row."""
        await self.flush()
        if self.close is not None:
            await asyncio.to_thread(self.close)

    async def flush(self) -> int:
        if not self._buffer:
            return 0
        batch, self._buffer, self._rows = self._buffer, [], 0
        rows: list[dict[str, Any]] = []

        def write() -> None:
            rows.extend(_rows(batch))  # built off the event loop
            self.write(rows)

        try:
            await asyncio.to_thread(write)
        except Exception as exc:  # noqa: BLE001 - logging must never take serving down
            lost = len(rows) or sum(item[6] for item in batch)
            self.failed += lost
            if self.on_count:
                self.on_count("failed", lost)
            log.error("writing %d prediction log rows failed: %s", lost, exc)
            return 0
        self.written += len(rows)
        if self.on_count:
            self.on_count("written", len(rows))
        return len(rows)


def _rows(batch: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for ts, request_id, model, version, columns, outputs, take, latency, entity, arm in batch:
        inputs = {k: v[:take] if type(v) is list else v[:take].tolist() for k, v in columns.items()}
        main_name = next(iter(outputs))
        main = outputs[main_name][:take]
        for i in range(take):
            row_inputs = {k: v[i] for k, v in inputs.items()}
            value = main[i]
            scalar = np.ndim(value) == 0 and np.asarray(value).dtype.kind in "fiub"
            out.append(
                {
                    "event_id": uuid.uuid4().hex,
                    "ts": ts,
                    "request_id": request_id if take == 1 else f"{request_id}:{i}",
                    "model": model,
                    "version": int(version),
                    "inputs": orjson.dumps(row_inputs).decode(),
                    "output": float(value) if scalar else None,
                    "outputs": None
                    if scalar
                    else orjson.dumps(
                        {k: np.asarray(v[i]).tolist() for k, v in outputs.items()}
                    ).decode(),
                    "latency_ms": float(latency),
                    "arm": arm,
                    "entity_id": entity,
                }
            )
    return out
