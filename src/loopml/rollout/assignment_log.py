"""The assignment log: routed requests buffered in memory, written in batches off the loop.

Recording is one tuple append on the serving path. Rows reach the database when the
buffer holds ``flush_rows`` (a background task) or at the router's next tick, in a
worker thread or through a server's sidecar process. A failed write keeps the rows for
the next attempt; the buffer is bounded, and rows beyond ``max_rows`` are counted as
lost rather than growing memory without bound.

With a sidecar that scores shadows, mirrored requests wait here too and go with the next
batch (or once ``flush_mirrors`` are waiting, so shadow results stay close to real
time). They are bounded by ``max_mirrors``: when the sidecar falls behind (it runs only
on idle CPU), the surplus is counted in ``mirrors_dropped``, never queued without bound.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from orjson import dumps

from loopml.rollout.sidecar import encode_mirror
from loopml.rollout.store import ExperimentStore

if TYPE_CHECKING:
    from loopml.rollout.sidecar import Sidecar

log = logging.getLogger("loopml.rollout")


class AssignmentLog:
    """A bounded buffer of assignment tuples (``ASSIGNMENT_COLUMNS`` order) for one store.

    ``store`` is anything with the store's ``add_assignments``: the store itself, or a
    server's :class:`~loopml.rollout.sidecar.Sidecar`.
    """

    def __init__(
        self,
        store: ExperimentStore | Sidecar,
        flush_rows: int = 2000,
        max_rows: int = 200_000,
        flush_mirrors: int = 128,
        max_mirrors: int = 4096,
    ):
        self.store = store
        self.flush_rows = flush_rows
        self.max_rows = max_rows
        self.flush_mirrors = flush_mirrors
        self.max_mirrors = max_mirrors
        self.written = 0
        self.lost = 0
        self.mirrored = 0
        self.mirrors_dropped = 0
        #: whether mirrored requests go to the store (a sidecar that scores shadows)
        self.takes_mirrors = bool(getattr(store, "scores_shadows", False))
        self._rows: list[tuple[Any, ...]] = []
        self._mirrors: list[bytes] = []
        #: below this many buffered rows an add needs no other check
        self._fast = min(flush_rows - 1, max_rows)
        self._flushing: asyncio.Task | None = None
        self._lock: asyncio.Lock | None = None
        if getattr(store, "encodes_rows", False):
            # a sidecar takes rows as JSON: each is encoded as it comes (under a
            # microsecond), so a flush only joins bytes instead of stalling the event loop
            # for one request per batch while it encodes them all
            self.add = self._add_encoded  # type: ignore[method-assign]

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

    def _add_encoded(self, row: tuple[Any, ...]) -> None:
        rows = self._rows
        if len(rows) < self._fast:
            rows.append(dumps(row))  # type: ignore[arg-type]
            return
        if len(rows) >= self.max_rows:
            self.lost += 1
            return
        rows.append(dumps(row))  # type: ignore[arg-type]
        if len(rows) >= self.flush_rows and self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self.flush())
            self._flushing.add_done_callback(self._flushed)

    def add_mirror(self, item: tuple[Any, ...]) -> None:
        """Queue one mirrored request (``MIRROR_FIELDS`` order) for the sidecar, encoded
        now (see :func:`~loopml.rollout.sidecar.encode_mirror`)."""
        mirrors = self._mirrors
        if len(mirrors) >= self.max_mirrors:
            self.mirrors_dropped += 1
            return
        try:
            mirrors.append(encode_mirror(item))
        except TypeError as exc:  # a value the pipe cannot carry: not mirrored, counted
            self.mirrors_dropped += 1
            log.warning("request %s not mirrored: %s", item[4], exc)
            return
        if len(mirrors) >= self.flush_mirrors and self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self.flush())
            self._flushing.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task) -> None:
        self._flushing = None

    async def flush(self) -> int:
        """Write what is buffered now; on failure the rows stay for the next try.

        Writes run one at a time, so when this returns every row added before the call
        is in the database (a reader that flushes first sees them all). Mirrored
        requests go along and are scored before the call returns.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._rows and not self._mirrors:
                return 0
            rows, self._rows = self._rows, []
            mirrors, self._mirrors = self._mirrors, []
            try:
                if mirrors:
                    _, scored = await self.store.send(rows, mirrors)  # type: ignore[union-attr]
                    self.mirrored += scored
                else:
                    write = self.store.add_assignments
                    if asyncio.iscoroutinefunction(write):  # a server's sidecar process
                        await write(rows)
                    else:
                        await asyncio.to_thread(write, rows)
            except asyncio.CancelledError:  # shutting down: the last flush takes them
                self._rows[:0] = rows
                self._mirrors[:0] = mirrors
                raise
            except Exception as exc:  # noqa: BLE001 - serving goes on; rows are retried
                room = self.max_rows - len(self._rows)
                self._rows[:0] = rows[:room]
                self.lost += max(0, len(rows) - room)
                self.mirrors_dropped += len(mirrors)
                log.error("writing %d experiment assignments failed: %s", len(rows), exc)
                return 0
            self.written += len(rows)
            return len(rows)
