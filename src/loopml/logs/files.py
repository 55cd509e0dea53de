"""Parquet files of the event log on a local directory or any fsspec URL.

One class owns the file operations so that the rest of the log never cares where
the bytes live. Writes are atomic: locally a temp file is fsynced and renamed into
place; on object storage a PUT is atomic by itself. A crash therefore never leaves a
half-written ``part-*.parquet`` visible to readers; stray ``*.tmp`` files are ignored.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

#: Rows per Parquet row group: small enough that time filters skip most of a file.
ROW_GROUP_SIZE = 131_072
_UNIQUE_COLUMNS = ("event_id", "request_id", "impression_id", "ts", "row")


class LogFiles:
    """Glob, write, read and delete Parquet files under one root.

    >>> import tempfile, pyarrow as pa
    >>> files = LogFiles(tempfile.mkdtemp())
    >>> path = files.write("click/date=2026-01-01", pa.table({"x": [1, 2]}))
    >>> [p.rsplit("/", 2)[-2] for p in files.glob("click/*/*.parquet")]
    ['date=2026-01-01']
    """

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self.local = "://" not in root or root.startswith("file://")
        self._fs: Any = None

    # -- locations ---------------------------------------------------------------------
    @property
    def fs(self) -> Any:
        """The fsspec filesystem (only used for non-local roots)."""
        if self._fs is None:
            import fsspec

            self._fs, _ = fsspec.core.url_to_fs(self.root)
        return self._fs

    @property
    def base(self) -> str:
        """The root as a path (local) or as the URL DuckDB reads through fsspec."""
        if self.local:
            return str(Path(self.root.removeprefix("file://")).resolve())
        return self.root

    def path(self, relative: str) -> str:
        return f"{self.base}/{relative}"

    def _strip(self, path: str) -> str:
        """An fsspec path (no protocol) for a URL under the root."""
        return self.fs._strip_protocol(path)

    # -- operations --------------------------------------------------------------------
    def glob(self, pattern: str) -> list[str]:
        """Sorted full paths/URLs matching ``pattern`` under the root."""
        if self.local:
            return sorted(str(p) for p in Path(self.base).glob(pattern))
        hits = self.fs.glob(self._strip(self.path(pattern)))
        protocol = self.root.split("://", 1)[0]
        return sorted(f"{protocol}://{h.lstrip('/')}" for h in hits)

    def exists(self, path: str) -> bool:
        if self.local:
            return Path(path).exists()
        return self.fs.exists(self._strip(path))

    def write(self, directory: str, table: pa.Table, name: str | None = None) -> str:
        """Write ``table`` as ``<directory>/<name or part-<uuid>.parquet>`` atomically."""
        import pyarrow.parquet as pq

        name = name or f"part-{uuid.uuid4().hex}.parquet"
        target = self.path(f"{directory}/{name}")
        kwargs = {
            "compression": "zstd",
            "row_group_size": ROW_GROUP_SIZE,
            # dictionary-encode repeated values only: unique ids make it slow and no smaller
            "use_dictionary": [c for c in table.column_names if c not in _UNIQUE_COLUMNS],
        }
        if not self.local:
            self.fs.makedirs(self._strip(self.path(directory)), exist_ok=True)
            with self.fs.open(self._strip(target), "wb") as fh:
                pq.write_table(table, fh, **kwargs)
            return target
        folder = Path(self.path(directory))
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(tmp, "wb") as fh:
                pq.write_table(table, fh, **kwargs)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def read(self, path: str, columns: list[str] | None = None) -> pa.Table:
        import pyarrow.parquet as pq

        if self.local:
            return pq.read_table(path, columns=columns)
        with self.fs.open(self._strip(path), "rb") as fh:
            return pq.read_table(fh, columns=columns)

    def columns(self, path: str) -> list[str]:
        """Column names from a file's footer, without reading its data."""
        import pyarrow.parquet as pq

        if self.local:
            return list(pq.read_schema(path).names)
        with self.fs.open(self._strip(path), "rb") as fh:
            return list(pq.read_schema(fh).names)

    def remove(self, path: str) -> None:
        if self.local:
            Path(path).unlink(missing_ok=True)
        elif self.fs.exists(self._strip(path)):
            self.fs.rm(self._strip(path))
