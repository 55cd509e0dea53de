"""Fixtures for the streaming learner: a project whose queue is SQLite or real Redis."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from loopml.core.config import ProjectConfig, init_project


@pytest.fixture
def stream_project(request, tmp_path: Path) -> ProjectConfig:
    """A fresh project; ``request.param`` picks the queue: "sqlite" (default) or "redis"."""
    backend = getattr(request, "param", "sqlite")
    name = f"t{uuid.uuid4().hex[:10]}"
    root = tmp_path / "proj"
    init_project(root, name=name)
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        text = (root / "loopml.toml").read_text()
        text = text.replace('queue = "sqlite:///.loopml/queue.db"', f'queue = "{url}"')
        (root / "loopml.toml").write_text(text)
    cfg = ProjectConfig.load(root)
    yield cfg
    if backend == "redis":
        from loopml.storage.queues import open_queue

        q = open_queue(cfg.url("queue"), namespace=cfg.name)
        q.purge()
        q.close()


def phishing_events(delay_labels: bool = False) -> list[dict]:
    """River's bundled Phishing data set as example events at ts = index.

    With ``delay_labels`` each label is a separate ``label`` event right after its example,
    so the learner's join path is exercised; otherwise the example carries ``y``.
    """
    from river import datasets

    out = []
    for i, (x, y) in enumerate(datasets.Phishing()):
        if delay_labels:
            out.append({"type": "example", "event_id": f"x{i}", "ts": i, "x": x})
            out.append(
                {"type": "label", "event_id": f"y{i}", "ts": i, "example_id": f"x{i}", "y": y}
            )
        else:
            out.append({"type": "example", "event_id": f"x{i}", "ts": i, "x": x, "y": y})
    return out
