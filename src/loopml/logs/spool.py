"""An append-only JSON-lines spool for events loopml generates while serving.

A serving worker that wrote Parquet itself would carry pyarrow (and, through
``pa.array``, pandas) in every worker: about 100 MiB each, for a log written once a
second. The worker writes plain JSON lines instead, with nothing but the standard
library and orjson, and the event log turns them into Parquet the next time anyone
reads it (:meth:`EventLog.settle`), in a process that has pyarrow loaded anyway.

Layout under the event log's root (local directories only)::

    _spool/<event_type>/<writer>.jsonl.open     the file a live writer appends to
    _spool/<event_type>/<writer>-<seq>.jsonl    sealed: complete, waiting to be settled
    _spool/<event_type>/settle-<id>/            files one settle pass took (crash-safe)

Settling holds a lock file per event type, so two readers never split a batch, and is
exactly-once across crashes: sealed files are first moved into a
``settle-<id>`` folder, then written as ``spool-<id>.parquet`` (a fixed name, so a
re-run overwrites rather than duplicates), then the folder is removed. A re-run finds
a left-over folder and finishes it. A writer that died leaves its ``.open`` file; a
reader on the same host seals it once the writer's process is gone. A torn last line
(the process died mid-write) goes to the dead-letter log with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from loopml.core.processes import pid_alive

log = logging.getLogger("loopml.logs")

SPOOL_DIR = "_spool"
_OPEN = ".jsonl.open"
_SEALED = ".jsonl"


def _now() -> float:
    return time.monotonic()


class SpoolWriter:
    """Append rows of one event type as JSON lines; seal the file every ``seal_s`` seconds.

    Not thread-safe: one writer per worker, called from one thread at a time.
    """

    def __init__(
        self, root: str | Path, event_type: str, *, seal_s: float = 60.0, seal_rows: int = 200_000
    ) -> None:
        self.folder = Path(root) / SPOOL_DIR / event_type
        self.seal_s = seal_s
        self.seal_rows = seal_rows
        self.writer = f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._seq = 0
        self._rows = 0
        self._opened_at = 0.0
        self._fh: Any = None

    @property
    def open_path(self) -> Path:
        return self.folder / f"{self.writer}{_OPEN}"

    def write(self, rows: list[dict[str, Any]]) -> int:
        """Append ``rows`` (one flush); the bytes reach the OS before this returns."""
        if not rows:
            return 0
        if self._fh is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.open_path, "ab")  # noqa: SIM115 - kept open between flushes
            self._opened_at = _now()
        data = b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in rows)
        self._fh.write(data)
        self._fh.flush()
        self._rows += len(rows)
        if self._rows >= self.seal_rows or self.due():
            self.seal()
        return len(rows)

    def due(self) -> bool:
        """Whether the open file has been open ``seal_s`` seconds (cheap: no I/O)."""
        return self._fh is not None and _now() - self._opened_at >= self.seal_s

    def seal(self) -> Path | None:
        """Close the open file and rename it so readers settle it; ``None`` if nothing is open."""
        if self._fh is None:
            return None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        self._seq += 1
        sealed = self.folder / f"{self.writer}-{self._seq:06d}{_SEALED}"
        os.replace(self.open_path, sealed)
        self._rows = 0
        return sealed


def pending(root: str | Path) -> bool:
    """Whether anything waits in the spool (one ``stat`` when nothing was ever spooled)."""
    return (Path(root) / SPOOL_DIR).is_dir()


def settle(
    root: str | Path,
    write: Callable[[str, list[dict[str, Any]], str], Any],
    dead_letter: Callable[[str, list[tuple[str, str]], str], Any],
) -> int:
    """Move every sealed spool file into the log; returns the rows settled.

    ``write(event_type, rows, name)`` stores rows (timestamps parsed) under a fixed
    file name; ``dead_letter(event_type, [(line, reason)], name)`` keeps the lines that
    do not parse or lack a required field, also under a fixed name.
    """
    base = Path(root) / SPOOL_DIR
    total = 0
    for folder in sorted(p for p in base.glob("*") if p.is_dir()):
        with _exclusive(folder):  # two readers settling at once would each see half a batch
            total += _settle_folder(folder, write, dead_letter)
    return total


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold the folder's lock file (released by the OS if this process dies)."""
    import fcntl

    with open(folder / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _settle_folder(
    folder: Path,
    write: Callable[[str, list[dict[str, Any]], str], Any],
    dead_letter: Callable[[str, list[tuple[str, str]], str], Any],
) -> int:
    event_type = folder.name
    total = 0
    _seal_orphans(folder)
    for batch in sorted(folder.glob("settle-*")):  # left by a crashed settle: finish it
        total += _settle_batch(event_type, batch, write, dead_letter)
    sealed = sorted(folder.glob(f"*{_SEALED}"))
    if sealed:
        batch = folder / f"settle-{uuid.uuid4().hex}"
        batch.mkdir()
        for path in sealed:
            os.replace(path, batch / path.name)
        total += _settle_batch(event_type, batch, write, dead_letter)
    return total


def _settle_batch(
    event_type: str,
    batch: Path,
    write: Callable[[str, list[dict[str, Any]], str], Any],
    dead_letter: Callable[[str, list[tuple[str, str]], str], Any],
) -> int:
    from loopml.logs.schemas import get_schema

    required = [f.name for f in get_schema(event_type).fields if f.required]
    rows: list[dict[str, Any]] = []
    bad: list[tuple[str, str]] = []
    for path in sorted(batch.glob(f"*{_SEALED}")):
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
                row["ts"] = datetime.fromisoformat(row["ts"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                bad.append((line.decode(errors="replace"), f"unreadable spool line: {exc}"))
                continue
            missing = [name for name in required if row.get(name) is None]
            if missing:
                reason = f"{event_type}: required field {missing[0]!r} is empty"
                bad.append((line.decode(errors="replace"), reason))
                continue
            rows.append(row)
    name = f"spool-{batch.name.removeprefix('settle-')}.parquet"
    if rows:
        write(event_type, rows, name)
    if bad:
        log.warning("%d bad %s spool lines sent to the dead-letter log", len(bad), event_type)
        dead_letter(event_type, bad, name)
    for path in batch.glob("*"):
        path.unlink(missing_ok=True)
    batch.rmdir()
    return len(rows)


def _seal_orphans(folder: Path) -> None:
    """Seal the open files of writers on this host whose process has ended."""
    host = socket.gethostname()
    for path in folder.glob(f"*{_OPEN}"):
        writer = path.name.removesuffix(_OPEN)
        writer_host, _, rest = writer.rpartition("_")[0].rpartition("_")
        pid = rest
        if writer_host != host or not pid.isdigit() or pid_alive(int(pid)):
            continue
        os.replace(path, folder / f"{writer}-orphan{_SEALED}")
