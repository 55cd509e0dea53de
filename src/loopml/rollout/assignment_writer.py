"""A child process that writes a server's assignment rows to the metadata database.

Every routed request leaves an assignment row. Written from a thread of the serving
process, the database driver's work (binding parameters, updating three B-trees) costs
that process several microseconds of CPU per request and hands the interpreter lock
back and forth with the event loop, which showed as lost throughput and a p99 several
times the baseline's. In a child process the server pays only for encoding the rows
(orjson, well under a microsecond each) and the driver runs on the machine's other
core. The child is the server's own program, talks to it over a pipe only, and exits
when the pipe closes (also when the server is killed).

Frames on the pipe are a 4-byte little-endian length and an orjson body: the parent
sends the database URL first (not on the command line, where ``ps`` would show a
password), then batches of row lists; the child answers each batch with
``{"ok": rows}`` or ``{"error": "..."}``.
"""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

import orjson

log = logging.getLogger("loopml.rollout")

_LENGTH = struct.Struct("<I")


def _send(stream: IO[bytes], doc: Any) -> None:
    body = orjson.dumps(doc)
    stream.write(_LENGTH.pack(len(body)) + body)
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
    """Write assignment rows through a child process; restarted if it dies.

    ``add_assignments`` blocks until the child has committed the batch (call it from a
    worker thread: the wait releases the interpreter lock).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loopml.rollout.assignment_writer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        _send(proc.stdin, self.url)
        return proc

    def add_assignments(self, rows: Sequence[Sequence[Any]]) -> int:
        """Commit ``rows`` (tuples in ``ASSIGNMENT_COLUMNS`` order); raise if the write failed."""
        if not rows:
            return 0
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            try:
                _send(proc.stdin, rows)
                answer = _receive(proc.stdout)
            except (OSError, EOFError, ValueError) as exc:
                proc.kill()
                self._proc = None
                raise OSError(f"the assignment writer process failed: {exc}") from exc
        if "error" in answer:
            raise OSError(f"the assignment writer could not write: {answer['error']}")
        return int(answer["ok"])

    def close(self) -> None:
        """Let the child finish and exit (closing its input is the signal)."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()


def main() -> None:
    """The child: read the URL, then write every batch until the pipe closes."""
    import os

    from loopml.rollout.store import ExperimentStore

    # bookkeeping yields to serving: the scheduler runs this child when a core is idle
    # rather than preempting the server (or its clients) in the middle of a request
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
