"""SQLAlchemy engines for the metadata and predictions stores (SQLite or PostgreSQL).

SQLite is tuned for one machine with several processes (WAL, a busy timeout); a
PostgreSQL URL is used as given. Engines are cached per URL within a process.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.core.errors import UnavailableError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def normalise_url(url: str) -> str:
    """Map ``postgresql://`` to the psycopg 3 driver that loopml installs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def engine_for(url: str) -> Engine:
    """A process-wide engine for ``url``, created on first use."""
    url = normalise_url(url)
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = _create(url)
            _ENGINES[url] = engine
        return engine


def _create(url: str) -> Engine:
    from sqlalchemy import create_engine, event

    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    except ModuleNotFoundError as exc:
        raise UnavailableError(
            f"cannot open {url.split('@')[-1]}: driver missing ({exc.name}); "
            "install it with `pip install 'loopml[postgres]'`"
        ) from exc


def dispose_all() -> None:
    """Close every cached engine (tests and forked workers call this)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


_CREATED: set[tuple[str, int]] = set()
_CREATED_LOCK = threading.Lock()


def ensure_tables(engine: Engine, metadata: object) -> None:
    """Create ``metadata``'s tables once per engine and process; tolerate a concurrent creator.

    Two processes may both see a table missing and race to create it; the loser's
    error is ignored when a second ``create_all`` then finds everything in place.
    """
    import sqlalchemy as sa

    key = (str(engine.url), id(metadata))
    with _CREATED_LOCK:
        if key in _CREATED:
            return
        try:
            metadata.create_all(engine)  # type: ignore[attr-defined]
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
            metadata.create_all(engine)  # type: ignore[attr-defined]
        _CREATED.add(key)
