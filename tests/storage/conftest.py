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


def run_until_killed(script: str) -> str:
    """Run ``script`` in a new interpreter, read the first line it prints, then SIGKILL it
    (a consumer that dies holding what it read): that line, stripped."""
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        line = proc.stdout.readline().strip()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    return line
