"""Prediction cache keyed on model version + input, in-process by default, Redis for real.

Repeated inputs (the same user reloading a page, a retry) are answered without
calling the model. The key includes the model version, so a hot reload never serves a
stale model's answer. Hits and misses are counted for ``/metrics``.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson


def cache_key(model: str, version: int, columns: Mapping[str, np.ndarray]) -> str:
    """A short digest of the model version and every input value, in column order.

    >>> x = {"x": np.array([1.0])}
    >>> key = cache_key("ctr", 1, x)
    >>> key == cache_key("ctr", 1, x), key == cache_key("ctr", 2, x)
    (True, False)
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{model}\x00{version}".encode())
    for name, arr in columns.items():
        h.update(b"\x00" + name.encode() + b"\x00")
        if arr.dtype.kind == "O":
            h.update(orjson.dumps(arr.tolist()))
        else:
            h.update(arr.dtype.str.encode())
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


class PredictionCache:
    """Output arrays by key. ``memory://`` keeps arrays in an LRU; other URLs use the KV store."""

    def __init__(
        self,
        url: str = "memory://",
        max_entries: int = 10_000,
        ttl_s: float = 300.0,
        prefix: str = "loopml:pcache",
    ) -> None:
        self.url = url
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.hits = 0
        self.misses = 0
        self._lru: OrderedDict[str, tuple[float, dict[str, np.ndarray]]] = OrderedDict()
        self._kv: Any = None
        if not url.startswith("memory://"):
            from loopml.storage.online import open_kv

            self._kv = open_kv(url)

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    async def get(self, key: str) -> dict[str, np.ndarray] | None:
        if self._kv is None:
            item = self._lru.get(key)
            if item is not None and item[0] >= time.monotonic():
                self._lru.move_to_end(key)
                self.hits += 1
                return item[1]
            if item is not None:
                del self._lru[key]
            self.misses += 1
            return None
        raw = (await self._kv.aget_many([f"{self.prefix}:{key}"]))[0]
        if raw is None:
            self.misses += 1
            return None
        self.hits += 1
        return _decode(raw)

    async def put(self, key: str, outputs: dict[str, np.ndarray]) -> None:
        if self._kv is None:
            self._lru[key] = (time.monotonic() + self.ttl_s, outputs)
            self._lru.move_to_end(key)
            while len(self._lru) > self.max_entries:
                self._lru.popitem(last=False)
            return
        await self._kv.aset_many({f"{self.prefix}:{key}": _encode(outputs)}, ttl_s=self.ttl_s)

    async def aclose(self) -> None:
        if self._kv is not None:
            closer = getattr(self._kv, "aclose", None)
            if closer is not None:
                await closer()
            self._kv.close()


def _encode(outputs: dict[str, np.ndarray]) -> bytes:
    doc = {
        name: {
            "dtype": arr.dtype.str if arr.dtype.kind != "O" else "O",
            "shape": list(arr.shape),
            "data": arr.reshape(-1).tolist(),
        }
        for name, arr in outputs.items()
    }
    return orjson.dumps(doc)


def _decode(raw: bytes) -> dict[str, np.ndarray]:
    doc = orjson.loads(raw)
    out = {}
    for name, item in doc.items():
        dtype = object if item["dtype"] == "O" else np.dtype(item["dtype"])
        out[name] = np.asarray(item["data"], dtype=dtype).reshape(item["shape"])
    return out
