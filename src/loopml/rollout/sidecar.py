"""The rollout sidecar: a child process that does a server's experiment bookkeeping.

Two kinds of work would otherwise run in the serving process for every routed request:

- **assignment rows.** Written from a thread of the server, the database driver's work
  (binding parameters, updating three B-trees) cost several microseconds of CPU per
  request and handed the interpreter lock back and forth with the event loop, which
  showed as lost throughput and a p99 several times the baseline's.
- **shadow scoring.** A challenger scored on the server's own event loop delays the next
  request by the challenger's compute; at one connection that was a p99 2.4 times the
  baseline's, although the champion always answered first.

In the sidecar the server pays only for encoding rows and mirrored requests (orjson, on
the event loop, no thread); the child writes the rows, scores mirrored requests with its
own data plane (the challenger loaded from the registry, hash-checked like every load,
its predictions logged like the server's) and writes the shadow rows itself. It runs
scheduled ``SCHED_IDLE``: only on a core that serving leaves idle, and a waking server
preempts it at once. A shadow request's latency is therefore the challenger's compute
time in the child (process CPU time of its data-plane call), which time spent preempted
by serving does not inflate.

The child is the server's own program, talks to it over a pipe only, and exits when the
pipe closes (also when the server is killed). Frames are a 4-byte little-endian length
and an orjson body: the parent sends ``{"url", "project"}`` first (not on the command
line, where ``ps`` would show a password), then ``{"rows": [...], "mirrors": [...]}``
batches; the child answers each with ``{"ok": rows, "mirrored": n}`` or ``{"error"}``.
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
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    """What orjson cannot encode by itself in a mirrored request (V2 BYTES, scalars)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    item = getattr(value, "item", None)
    if item is not None:
        return item()
    raise TypeError(f"cannot mirror a value of type {type(value).__name__}")


def _frame(doc: Any) -> bytes:
    body = orjson.dumps(doc, default=_default, option=_OPTIONS)
    return _LENGTH.pack(len(body)) + body


def encode_mirror(item: Sequence[Any]) -> bytes:
    """One mirrored request (:data:`MIRROR_FIELDS` order) as the sidecar receives it.

    The router encodes each mirror as it queues it (a couple of microseconds), not a
    batch at flush time: a batch's encoding would stall the event loop for one request
    in every batch, which is exactly a p99 the shadow must not move. TypeError if a value
    cannot be sent.
    """
    return orjson.dumps(item, default=_default, option=_OPTIONS)


def _send(stream: IO[bytes], doc: Any) -> None:
    stream.write(_frame(doc))
    stream.flush()


#: A mirrored request as the router queues it: experiment, arm name, version argument,
#: model name, request id, unit, input columns, headers, params, protocol, time served.
MIRROR_FIELDS = (
    "experiment",
    "arm",
    "version",
    "model",
    "request_id",
    "unit",
    "columns",
    "headers",
    "params",
    "protocol",
    "ts",
)


class Sidecar:
    """Send assignment rows and mirrored requests to the child, from the event loop;
    the child is restarted if it dies.

    ``project`` (the project's root directory) enables shadow scoring in the child; a
    server whose models do not come from the project's registry passes None and scores
    its shadows in process.
    """

    def __init__(self, url: str, project: str | None = None) -> None:
        self.url = url
        self.project = project
        self._proc: asyncio.subprocess.Process | None = None
        self._lock: asyncio.Lock | None = None

    #: :class:`~loopml.rollout.assignment_log.AssignmentLog` hands rows over as JSON
    encodes_rows = True

    @property
    def scores_shadows(self) -> bool:
        return self.project is not None

    async def _start(self) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "loopml.rollout.sidecar",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        proc.stdin.write(_frame({"url": self.url, "project": self.project}))
        return proc

    async def add_assignments(self, rows: Sequence[Sequence[Any]]) -> int:
        """Commit ``rows`` (tuples in ``ASSIGNMENT_COLUMNS`` order); raise if the write failed."""
        written, _ = await self.send(rows, ())
        return written

    async def send(
        self, rows: Sequence[Sequence[Any]], mirrors: Sequence[bytes]
    ) -> tuple[int, int]:
        """Write ``rows`` and score ``mirrors`` (each from :func:`encode_mirror`):
        ``(rows written, mirrors scored)``. Raises OSError when the rows were not written;
        the mirrors of a failed call are lost (a shadow is a sample, not a record)."""
        if not rows and not mirrors:
            return 0, 0
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one batch in flight: answers match batches in order
            if rows and type(rows[0]) is bytes:  # encoded one by one as they came
                encoded = b"[" + b",".join(rows) + b"]"  # type: ignore[arg-type]
            else:
                encoded = orjson.dumps(rows)
            body = b"".join((b'{"rows":', encoded, b',"mirrors":[', b",".join(mirrors), b"]}"))
            frame = _LENGTH.pack(len(body)) + body
            if self._proc is None or self._proc.returncode is not None:
                self._proc = await self._start()
            proc = self._proc
            try:
                proc.stdin.write(frame)
                await proc.stdin.drain()
                head = await proc.stdout.readexactly(_LENGTH.size)
                (size,) = _LENGTH.unpack(head)
                answer = orjson.loads(await proc.stdout.readexactly(size))
            except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as exc:
                self._abandon(proc)
                raise OSError(f"the rollout sidecar failed: {exc}") from exc
            except asyncio.CancelledError:  # the answer would be read by the next batch
                self._abandon(proc)
                raise
        if "error" in answer:
            raise OSError(f"the rollout sidecar could not write: {answer['error']}")
        return int(answer["ok"]), int(answer.get("mirrored", 0))

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


# -- the child ----------------------------------------------------------------------------------
async def _receive(reader: asyncio.StreamReader) -> Any:
    try:
        head = await reader.readexactly(_LENGTH.size)
        (size,) = _LENGTH.unpack(head)
        return orjson.loads(await reader.readexactly(size))
    except asyncio.IncompleteReadError as exc:
        raise EOFError("the server closed the sidecar's pipe") from exc


async def _serve(stdout: IO[bytes]) -> None:
    from loopml.rollout.store import ExperimentStore

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        hello = await _receive(reader)
    except EOFError:
        return
    store = ExperimentStore(hello["url"])
    scorer = None
    #: shadow rows scored but not yet written (a failed write keeps them for the next)
    unsaved: list[tuple[Any, ...]] = []
    try:
        while True:
            try:
                batch = await _receive(reader)
            except EOFError:
                return
            mirrors = batch.get("mirrors") or []
            if mirrors and hello.get("project"):
                if scorer is None:
                    scorer = _scorer(hello["project"])
                unsaved.extend(await scorer.score(mirrors))
                del unsaved[:-100_000]  # bounded, should the database stay away for long
            rows = [tuple(r) for r in batch.get("rows") or []]
            try:
                await asyncio.to_thread(store.add_assignments, rows + unsaved)
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which keeps its rows
                _send(stdout, {"error": f"{type(exc).__name__}: {exc}"})
                continue
            unsaved.clear()
            _send(stdout, {"ok": len(rows), "mirrored": len(mirrors)})
    finally:
        if scorer is not None:
            await scorer.aclose()


def _scorer(project: str) -> Any:
    """The shadow scorer, or one that records why there is none (a project that no longer
    loads fails every mirror with the reason, where the shadow summary shows it)."""
    from loopml.rollout.shadow_scoring import ShadowScorer, Unavailable

    try:
        return ShadowScorer(project)
    except Exception as exc:  # noqa: BLE001 - reported per mirrored request
        log.error("the sidecar cannot score shadows: %s", exc)
        return Unavailable(exc)


def main() -> None:
    """The child: read the hello, then handle every batch until the pipe closes."""
    import os

    # bookkeeping yields to serving: the scheduler runs this child only on an idle core,
    # and a waking server (or client) preempts it at once (SCHED_IDLE; on systems
    # without it, the lowest nice level)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)
    asyncio.run(_serve(sys.stdout.buffer))


if __name__ == "__main__":
    main()
