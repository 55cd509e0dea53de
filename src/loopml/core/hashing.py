"""sha256 helpers: artifacts are verified by hash before they are loaded."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes.

    >>> sha256_bytes(b"loopml")[:12]
    '4c5c0f86a243'
    """
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a local file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_stream(chunks: Iterable[bytes]) -> str:
    """Hex sha256 of a stream of byte chunks (e.g. an fsspec file)."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def fingerprint_frame(frame: Any) -> str:
    """A stable fingerprint of a pandas DataFrame's columns, dtypes and values.

    Used to record exactly which dataset a run was trained on.
    """
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(repr(list(zip(frame.columns, map(str, frame.dtypes), strict=True))).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()[:16]
