"""A child process that writes a server's assignment rows to the metadata database.

Every routed request leaves an assignment row. Written from a thread of the serving
process, the database driver's work (binding parameters, updating three B-trees) costs
that process several microseconds of CPU per request and hands the interpreter lock
back and forth with the event loop, which showed as lost throughput and a p99 several
times the baseline's. In a child process the server pays only for encoding the rows
(orjson, well under a microsecond each, on the event loop: no thread) and the driver
runs on an otherwise idle core, scheduled below everything else. The child is the
server's own program, talks to it over a pipe only, and exits when the pipe closes
(also when the server is killed).

Frames on the pipe are a 4-byte little-endian length and an orjson body: the parent
sends the database URL first (not on the command line, where ``ps`` would show a
password), then batches of row lists; the child answers each batch with
``{"ok": rows}`` or ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import sys
from collections.abc import Sequence
from typing import IO, Any

import orjson

log = logging.getLogger("loopml.rollout")

_LENGTH = struct.Struct("<I")


def _frame(doc: Any) -> bytes:
    body = orjson.dumps(doc)
    return _LENGTH.pack(len(body)) + body


def _send(stream: IO[bytes], doc: Any) -> None:
    stream.write(_frame(doc))
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the assignment writer's pipe closed")
    (size,) = _LENGTH.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError("the assignment writer's pipe closed mid-frame")
    return orjson.loads(body)


class AssignmentWriter:
    """Write assignment rows through a child process, from the event loop; restarted if
    it dies.

    The pipe is an asyncio subprocess pipe, so the serving process spends no thread on
    it: the loop encodes a batch (a fraction of a millisecond per thousand rows), the
    transport writes it as the pipe drains, and the child's answer arrives as a read.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._proc: asyncio.subprocess.Process | None = None
        self._lock: asyncio.Lock | None = None

    async def _start(self) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "loopml.rollout.assignment_writer",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        proc.stdin.write(_frame(self.url))
        return proc

    async def add_assignments(self, rows: Sequence[Sequence[Any]]) -> int:
        """Commit ``rows`` (tuples in ``ASSIGNMENT_COLUMNS`` order); raise if the write failed."""
        if not rows:
            return 0
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one batch in flight: answers match batches in order
            if self._proc is None or self._proc.returncode is not None:
                self._proc = await self._start()
            proc = self._proc
            try:
                proc.stdin.write(_frame(rows))
                await proc.stdin.drain()
                head = await proc.stdout.readexactly(_LENGTH.size)
                (size,) = _LENGTH.unpack(head)
                answer = orjson.loads(await proc.stdout.readexactly(size))
            except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as exc:
                self._abandon(proc)
                raise OSError(f"the assignment writer process failed: {exc}") from exc
            except asyncio.CancelledError:  # the answer would be read by the next batch
                self._abandon(proc)
                raise
        if "error" in answer:
            raise OSError(f"the assignment writer could not write: {answer['error']}")
        return int(answer["ok"])

    def _abandon(self, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        self._proc = None

    async def aclose(self) -> None:
        """Let the child finish and exit (closing its input is the signal)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        try:
            proc.stdin.close()
            await asyncio.wait_for(proc.wait(), timeout=10)
        except (OSError, TimeoutError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


def main() -> None:
    """The child: read the URL, then write every batch until the pipe closes."""
    import os

    from loopml.rollout.store import ExperimentStore

    # bookkeeping yields to serving: the scheduler runs this child only on an idle core,
    # and a waking server (or client) preempts it at once (SCHED_IDLE; on systems
    # without it, the lowest nice level)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        store = ExperimentStore(_receive(stdin))
    except EOFError:
        return
    while True:
        try:
            rows = _receive(stdin)
        except EOFError:
            return
        try:
            done = store.add_assignments([tuple(r) for r in rows])
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which keeps the rows
            _send(stdout, {"error": f"{type(exc).__name__}: {exc}"})
        else:
            _send(stdout, {"ok": done})


if __name__ == "__main__":
    main()
