"""Queue fixtures shared by the queue contract tests: one fresh queue per test, on the
embedded SQLite queue or the real Redis (parametrize ``queue_spec`` indirectly)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from loopml.storage.queues import Queue, open_queue


@pytest.fixture
def queue_spec(request, tmp_path: Path):
    """(url, namespace) of a fresh queue on the requested backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.db'}", "loopml"
        return
    url = request.getfixturevalue("redis_url")
    namespace = f"test-{uuid.uuid4().hex[:10]}"
    yield url, namespace
    q = open_queue(url, namespace=namespace)
    q.purge()
    q.close()


@pytest.fixture
def queue(queue_spec) -> Queue:
    url, namespace = queue_spec
    q = open_queue(url, namespace=namespace)
    yield q
    q.close()
