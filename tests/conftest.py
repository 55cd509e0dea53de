"""Shared fixtures: a fresh project per test, and the real services.

A test that needs PostgreSQL or Redis asks for ``postgres_url`` / ``redis_url``. When
the service is not reachable the test skips with the reason, unless
``LOOPML_REQUIRE_SERVICES=1`` (set by ``.ci/run``), in which case it fails.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _need(service: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    reason = f"{service} is not reachable on {host}:{port}"
    if os.environ.get("LOOPML_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and LOOPML_REQUIRE_SERVICES=1 requires it")
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> str:
    """A PostgreSQL URL with a fresh schema-isolated database name space (test db)."""
    _need("PostgreSQL", PG_HOST, PG_PORT)
    return f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"


@pytest.fixture
def postgres_schema(postgres_url: str):
    """A PostgreSQL URL whose connections use a fresh schema, dropped afterwards."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{postgres_url}?options=-csearch_path%3D{schema}"
    yield url
    from loopml.storage.sql import dispose_all

    dispose_all()
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def redis_url() -> str:
    """A Redis URL on a database number tests may flush."""
    _need("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/15"


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A fresh loopml project with embedded defaults."""
    from loopml.core.config import init_project

    init_project(tmp_path / "proj", name="testproj")
    return tmp_path / "proj"
