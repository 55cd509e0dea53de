"""Artifact store: immutable files addressed by safe relative keys, on any fsspec URL.

The local directory is the embedded default; ``s3://bucket/prefix`` (or any other
fsspec protocol) is the real one. Every write returns the sha256 so callers record it,
and every read can verify it, so a tampered artifact is never loaded.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from loopml.core.errors import IntegrityError, NotFoundError, ValidationError
from loopml.core.hashing import sha256_bytes, sha256_file


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("..", ".", "") for p in parts) or "\\" in key:
        raise ValidationError(
            f"artifact key {key!r} is not allowed: use a relative path without '..'",
            field="key",
        )
    return key


class ArtifactStore:
    """Put and get immutable artifacts under one root URL.

    >>> import tempfile
    >>> store = ArtifactStore(tempfile.mkdtemp())
    >>> digest = store.put_bytes("m/1/model.bin", b"weights")
    >>> store.get_bytes("m/1/model.bin", sha256=digest)
    b'weights'
    """

    def __init__(self, root: str) -> None:
        self.root = root

    @property
    def _local(self) -> bool:
        return "://" not in self.root or self.root.startswith("file://")

    def _fs(self):  # noqa: ANN202
        import fsspec

        fs, path = fsspec.core.url_to_fs(self.root)
        return fs, path

    def local_path(self, key: str) -> Path:
        """The file path of a key on the local default store."""
        if not self._local:
            raise ValidationError(f"artifact store {self.root!r} is not local", field="artifacts")
        return Path(self.root.removeprefix("file://")) / _check_key(key)

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write ``data`` atomically; return its sha256."""
        _check_key(key)
        if self._local:
            target = self.local_path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        else:
            fs, root = self._fs()
            with fs.open(f"{root}/{key}", "wb") as fh:
                fh.write(data)
        return sha256_bytes(data)

    def put_file(self, key: str, source: str | Path) -> str:
        """Copy a local file in; return its sha256."""
        return self.put_bytes(key, Path(source).read_bytes())

    def exists(self, key: str) -> bool:
        _check_key(key)
        if self._local:
            return self.local_path(key).exists()
        fs, root = self._fs()
        return fs.exists(f"{root}/{key}")

    def get_bytes(self, key: str, sha256: str | None = None) -> bytes:
        """Read an artifact; if ``sha256`` is given, refuse it unless it matches."""
        _check_key(key)
        try:
            if self._local:
                data = self.local_path(key).read_bytes()
            else:
                fs, root = self._fs()
                with fs.open(f"{root}/{key}", "rb") as fh:
                    data = fh.read()
        except FileNotFoundError:
            raise NotFoundError(f"artifact {key!r} is missing from {self.root}", key=key) from None
        if sha256 is not None:
            actual = sha256_bytes(data)
            if actual != sha256:
                raise IntegrityError(
                    f"artifact {key!r} has sha256 {actual[:12]}... but the registry recorded "
                    f"{sha256[:12]}...: the file was modified after registration; refusing to "
                    "load it. Re-register the model from its training run.",
                    key=key,
                )
        return data

    def verify(self, key: str, sha256: str) -> None:
        """Raise :class:`IntegrityError` unless the stored file hashes to ``sha256``."""
        if self._local:
            path = self.local_path(key)
            if not path.exists():
                raise NotFoundError(f"artifact {key!r} is missing from {self.root}", key=key)
            actual = sha256_file(path)
            if actual != sha256:
                raise IntegrityError(
                    f"artifact {key!r} has sha256 {actual[:12]}... but the registry recorded "
                    f"{sha256[:12]}...: the file was modified after registration; refusing to "
                    "load it.",
                    key=key,
                )
        else:
            self.get_bytes(key, sha256=sha256)
