"""Online key-value stores: the online feature store and the prediction cache.

Serving needs the latest feature values of one entity in well under a millisecond,
and a place to remember recent predictions. Both are a key-value store behind a URL:

- ``memory://name`` -- in-process (shared by every user of that URL in the process);
- ``sqlite:///path`` -- the embedded default, shared by processes on one machine;
- ``redis://host:port/db`` -- the real component, shared by every replica.

:class:`KeyValueStore` holds bytes with an optional time-to-live; :class:`OnlineStore`
stores feature rows per (view, entity id) on top of it, with per-view metadata
(entity key, feature names, as-of time) so a reader knows what it got and how fresh.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from loopml.core.errors import ClosedError, UnavailableError, ValidationError
from loopml.core.names import check_name

_MEMORY: dict[str, dict[str, tuple[bytes, float | None]]] = {}
_MEMORY_LOCK = threading.Lock()


class KeyValueStore(ABC):
    """Bytes by string key, with an optional expiry. Subclasses implement the ``_`` methods.

    >>> kv = open_kv("memory://doctest-kv")
    >>> kv.set_many({"a": b"1"})
    >>> kv.get_many(["a", "b"])
    [b'1', None]
    """

    url: str = ""

    def __init__(self) -> None:
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(
                f"key-value store {self.url!r} was closed; open it again with open_kv"
            )

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for ``keys`` in order; ``None`` where absent or expired."""
        self._check_open()
        return self._get_many(list(keys)) if keys else []

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        """Write every item; with ``ttl_s`` they expire after that many seconds."""
        self._check_open()
        if ttl_s is not None and not (ttl_s > 0 and math.isfinite(ttl_s)):
            raise ValidationError(f"ttl_s must be a positive number of seconds, got {ttl_s!r}")
        if items:
            self._set_many(dict(items), ttl_s)

    def delete(self, keys: Sequence[str]) -> None:
        self._check_open()
        if keys:
            self._delete(list(keys))

    async def aget_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Async read; local backends answer inline (they take microseconds)."""
        return self.get_many(keys)

    async def aset_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        self.set_many(items, ttl_s)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> KeyValueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # subclass hooks
    @abstractmethod
    def _get_many(self, keys: list[str]) -> list[bytes | None]:
        """Values for ``keys`` in order, None where absent or expired."""

    @abstractmethod
    def _set_many(self, items: dict[str, bytes], ttl_s: float | None) -> None:
        """Store every item, expiring after ``ttl_s`` seconds when given."""

    @abstractmethod
    def _delete(self, keys: list[str]) -> None:
        """Remove ``keys``; absent keys are ignored."""


class MemoryKV(KeyValueStore):
    """In-process store; every ``MemoryKV`` with the same URL shares one dict."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        with _MEMORY_LOCK:
            self._data = _MEMORY.setdefault(url, {})

    def _get_many(self, keys: list[str]) -> list[bytes | None]:
        now = time.time()
        out: list[bytes | None] = []
        for key in keys:
            item = self._data.get(key)
            if item is None or (item[1] is not None and item[1] < now):
                out.append(None)
            else:
                out.append(item[0])
        return out

    def _set_many(self, items: dict[str, bytes], ttl_s: float | None) -> None:
        expires = time.time() + ttl_s if ttl_s else None
        with _MEMORY_LOCK:
            for key, value in items.items():
                self._data[key] = (bytes(value), expires)

    def _delete(self, keys: list[str]) -> None:
        with _MEMORY_LOCK:
            for key in keys:
                self._data.pop(key, None)


class SQLiteKV(KeyValueStore):
    """One SQLite table in WAL mode; one connection per thread (sqlite3 objects are not shared)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        path = url.removeprefix("sqlite:///")
        if not path or path == ":memory:":
            raise ValidationError(
                f"online store {url!r}: an SQLite store needs a file path, e.g. "
                "sqlite:///.loopml/online.db; use memory:// for an in-process store"
            )
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        conn = self._conn()
        conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL, expires REAL)"
        )
        conn.commit()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _get_many(self, keys: list[str]) -> list[bytes | None]:
        now = time.time()
        found: dict[str, bytes] = {}
        conn = self._conn()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT k, v, expires FROM kv WHERE k IN ({marks})", chunk
            ).fetchall()
            for k, v, expires in rows:
                if expires is None or expires >= now:
                    found[k] = v
        return [found.get(k) for k in keys]

    def _set_many(self, items: dict[str, bytes], ttl_s: float | None) -> None:
        expires = time.time() + ttl_s if ttl_s else None
        conn = self._conn()
        with conn:
            conn.executemany(
                "INSERT INTO kv (k, v, expires) VALUES (?, ?, ?) "
                "ON CONFLICT(k) DO UPDATE SET v = excluded.v, expires = excluded.expires",
                [(k, bytes(v), expires) for k, v in items.items()],
            )

    def _delete(self, keys: list[str]) -> None:
        conn = self._conn()
        with conn:
            conn.executemany("DELETE FROM kv WHERE k = ?", [(k,) for k in keys])

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()
        super().close()


class RedisKV(KeyValueStore):
    """Redis strings; ``aget_many``/``aset_many`` use redis' asyncio client on the caller's loop."""

    def __init__(self, url: str) -> None:
        super().__init__()
        try:
            import redis
        except ModuleNotFoundError as exc:  # pragma: no cover - redis-py is a declared extra
            raise UnavailableError(
                "the Redis store needs redis-py: pip install 'loopml[redis]'"
            ) from exc
        self.url = url
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._async: Any = None
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise UnavailableError(
                f"cannot reach Redis at {_safe(url)} ({exc}); start Redis or change the URL in "
                "loopml.toml"
            ) from exc

    def _get_many(self, keys: list[str]) -> list[bytes | None]:
        return list(self._client.mget(keys))

    def _set_many(self, items: dict[str, bytes], ttl_s: float | None) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key, value in items.items():
            pipe.set(key, value, px=int(ttl_s * 1000) if ttl_s else None)
        pipe.execute()

    def _delete(self, keys: list[str]) -> None:
        self._client.delete(*keys)

    def _aclient(self) -> Any:
        if self._async is None:
            import redis.asyncio

            self._async = redis.asyncio.Redis.from_url(self.url, socket_timeout=5)
        return self._async

    async def aget_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self._check_open()
        return list(await self._aclient().mget(list(keys))) if keys else []

    async def aset_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        self._check_open()
        if not items:
            return
        pipe = self._aclient().pipeline(transaction=False)
        for key, value in items.items():
            pipe.set(key, value, px=int(ttl_s * 1000) if ttl_s else None)
        await pipe.execute()

    async def aclose(self) -> None:
        """Close the asyncio client on the loop that used it."""
        if self._async is not None:
            await self._async.aclose()
            self._async = None

    def close(self) -> None:
        self._client.close()
        super().close()


def open_kv(url: str) -> KeyValueStore:
    """Open the key-value store a URL names (``memory://``, ``sqlite:///``, ``redis://``)."""
    if url.startswith("memory://"):
        return MemoryKV(url)
    if url.startswith("sqlite:///"):
        return SQLiteKV(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisKV(url)
    raise ValidationError(
        f"online/cache store URL {url!r} is not supported; use memory://, sqlite:///path or "
        "redis://host:port/db",
        field="url",
    )


def _safe(url: str) -> str:
    return url.split("@")[-1]


class OnlineStore:
    """Latest feature values per (feature view, entity id), for lookups at serving time.

    >>> store = OnlineStore("memory://doctest-online")
    >>> store.write("user_ctr", "user_id", {"u1": {"ctr_7d": 0.12}}, as_of="2024-05-01T00:00:00")
    1
    >>> store.read("user_ctr", ["u1", "u2"])
    [{'ctr_7d': 0.12}, None]
    >>> store.view_info("user_ctr")["entity_key"]
    'user_id'
    """

    def __init__(self, url: str, prefix: str = "loopml:features") -> None:
        self.url = url
        self.prefix = prefix
        self.kv = open_kv(url)

    def _key(self, view: str, entity_id: Any) -> str:
        return f"{self.prefix}:{view}:{entity_id}"

    def _meta_key(self, view: str) -> str:
        return f"{self.prefix}:__view__:{view}"

    def _index_key(self) -> str:
        return f"{self.prefix}:__views__"

    def write(
        self,
        view: str,
        entity_key: str,
        rows: Mapping[Any, Mapping[str, Any]],
        *,
        as_of: Any = None,
        ttl_s: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> int:
        """Store ``{entity_id: {feature: value}}`` for ``view``; return the rows written.

        ``extra`` (e.g. the view version) is kept in the view's metadata.
        """
        check_name(view, "feature view")
        encoded: dict[str, bytes] = {}
        features: set[str] = set()
        for entity_id, values in rows.items():
            clean = {str(k): _plain(v) for k, v in values.items()}
            features.update(clean)
            encoded[self._key(view, entity_id)] = orjson.dumps(clean)
        for start in range(0, len(encoded), 5000):
            chunk = dict(list(encoded.items())[start : start + 5000])
            self.kv.set_many(chunk, ttl_s)
        info = self.view_info(view) or {}
        meta = {
            "view": view,
            "entity_key": entity_key,
            "features": sorted(features | set(info.get("features", []))),
            "as_of": str(as_of) if as_of is not None else None,
            "written_at": time.time(),
            "entities": max(len(encoded), int(info.get("entities", 0))),
            **{str(k): _plain(v) for k, v in (extra or {}).items()},
        }
        known = self.views()
        index = sorted(set(known) | {view})
        self.kv.set_many(
            {self._meta_key(view): orjson.dumps(meta), self._index_key(): orjson.dumps(index)}
        )
        return len(encoded)

    def views(self) -> list[str]:
        """Every feature view materialised into this store."""
        raw = self.kv.get_many([self._index_key()])[0]
        return list(orjson.loads(raw)) if raw is not None else []

    def read(self, view: str, entity_ids: Iterable[Any]) -> list[dict[str, Any] | None]:
        """Feature dicts in the order of ``entity_ids``; ``None`` for unknown entities."""
        raw = self.kv.get_many([self._key(view, e) for e in entity_ids])
        return [orjson.loads(v) if v is not None else None for v in raw]

    async def aread(self, view: str, entity_ids: Iterable[Any]) -> list[dict[str, Any] | None]:
        raw = await self.kv.aget_many([self._key(view, e) for e in entity_ids])
        return [orjson.loads(v) if v is not None else None for v in raw]

    def view_info(self, view: str) -> dict[str, Any] | None:
        """What was materialised for ``view``: entity key, features, as-of, count."""
        raw = self.kv.get_many([self._meta_key(view)])[0]
        return orjson.loads(raw) if raw is not None else None

    def close(self) -> None:
        self.kv.close()

    def __repr__(self) -> str:
        return f"OnlineStore({self.url!r})"


def _plain(value: Any) -> Any:
    """JSON-safe scalars: numpy numbers to Python, NaN to None, timestamps to ISO text."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        with contextlib.suppress(ValueError, AttributeError):
            value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        try:
            import pandas as pd

            if value is pd.NaT:
                return None
        except ModuleNotFoundError:  # pragma: no cover
            pass
        return value.isoformat()
    return str(value)
