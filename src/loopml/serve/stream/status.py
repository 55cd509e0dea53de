"""`loopml stream status`: where a learner stands, read without disturbing it."""

from __future__ import annotations

from typing import Any

from loopml.serve.stream.checkpoint import CheckpointStore
from loopml.serve.stream.settings import StreamSettings


def stream_status(cfg: Any, name: str | None = None) -> dict[str, Any]:
    """Checkpoint (counts, metrics, positions), queue lag and pending, newest snapshot."""
    from loopml.storage.queues import open_queue

    settings = StreamSettings.from_config(cfg, name=name)
    out: dict[str, Any] = {"name": settings.name, "queue": cfg.url("queue").split("@")[-1]}
    state = CheckpointStore(cfg.path("artifacts"), settings.name).load()
    if state is None:
        out["learner"] = None
    else:
        out["learner"] = state.learner.status()
        out["snapshots"] = state.snapshots
        out["latest_snapshot_version"] = state.parent_version
        out["checkpoint_saved_at"] = state.saved_at
    with open_queue(cfg.url("queue"), namespace=cfg.name) as queue:
        out["topics"] = {
            topic: {
                "length": queue.length(topic),
                "lag": queue.lag(topic, settings.consumer_group),
                "pending": queue.pending(topic, settings.consumer_group),
            }
            for topic in (settings.events_topic, settings.requests_topic)
        }
        out["dead_letters"] = queue.length(f"{settings.events_topic}.dead")
    return out


def plot_stream(cfg: Any, path: str, name: str | None = None) -> str:
    """`loopml stream status --plot PATH`: the learner's progressive log loss curve (PNG)."""
    from loopml.core.errors import NotFoundError
    from loopml.serve.stream.comparison import plot_progressive_curve

    settings = StreamSettings.from_config(cfg, name=name)
    state = CheckpointStore(cfg.path("artifacts"), settings.name).load()
    if state is None:
        raise NotFoundError(
            f"learner {settings.name!r} has no checkpoint yet; run `loopml stream run` first",
            name=settings.name,
        )
    return plot_progressive_curve(
        state.learner,
        path,
        title=f"{settings.name}: progressive validation ({state.learner.model})",
    )
