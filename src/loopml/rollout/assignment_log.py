"""The assignment log: routed requests buffered in memory, written in batches off the loop.

Recording is one tuple append on the serving path. Rows reach the database when the
buffer holds ``flush_rows`` (a background task) or at the router's next tick, in a
worker thread. A failed write keeps the rows for the next attempt; the buffer is
bounded, and rows beyond ``max_rows`` are counted as lost rather than growing memory
without bound.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from loopml.rollout.store import ExperimentStore

if TYPE_CHECKING:
    from loopml.rollout.assignment_writer import AssignmentWriter

log = logging.getLogger("loopml.rollout")


class AssignmentLog:
    """A bounded buffer of assignment tuples (``ASSIGNMENT_COLUMNS`` order) for one store.

    ``store`` is anything with the store's ``add_assignments``: the store itself, or a
    server's :class:`~loopml.rollout.assignment_writer.AssignmentWriter`.
    """

    def __init__(
        self,
        store: ExperimentStore | AssignmentWriter,
        flush_rows: int = 2000,
        max_rows: int = 200_000,
    ):
        self.store = store
        self.flush_rows = flush_rows
        self.max_rows = max_rows
        self.written = 0
        self.lost = 0
        self._rows: list[tuple[Any, ...]] = []
        #: below this many buffered rows an add needs no other check
        self._fast = min(flush_rows - 1, max_rows)
        self._flushing: asyncio.Task | None = None
        self._lock: asyncio.Lock | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, row: tuple[Any, ...]) -> None:
        """Buffer one row; start a background write once a batch is full."""
        rows = self._rows
        if len(rows) < self._fast:
            rows.append(row)  # the per-request case: one comparison, one append
            return
        if len(rows) >= self.max_rows:
            self.lost += 1
            return
        rows.append(row)
        if len(rows) >= self.flush_rows and self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self.flush())
            self._flushing.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task) -> None:
        self._flushing = None

    async def flush(self) -> int:
        """Write what is buffered now; on failure the rows stay for the next try.

        Writes run one at a time, so when this returns every row added before the call
        is in the database (a reader that flushes first sees them all).
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._rows:
                return 0
            rows, self._rows = self._rows, []
            try:
                write = self.store.add_assignments
                if asyncio.iscoroutinefunction(write):  # a server's writer process
                    await write(rows)
                else:
                    await asyncio.to_thread(write, rows)
            except asyncio.CancelledError:  # shutting down: the last flush takes them
                self._rows[:0] = rows
                raise
            except Exception as exc:  # noqa: BLE001 - serving goes on; rows are retried
                room = self.max_rows - len(self._rows)
                self._rows[:0] = rows[:room]
                self.lost += max(0, len(rows) - room)
                log.error("writing %d experiment assignments failed: %s", len(rows), exc)
                return 0
            self.written += len(rows)
            return len(rows)
