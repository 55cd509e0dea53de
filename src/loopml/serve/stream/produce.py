"""`loopml stream produce`: put behaviour events on the events topic in event-time order.

The simulated world's logs (or any event frames) become queue payloads: ``type``,
``event_id``, ``ts`` as epoch seconds, and the schema's fields. Users and items come
first at equal times, impressions before their clicks, so the learner sees profiles
before the impressions that need them. Keys are user ids (one user's events stay in
order on a partitioned topic). Each chunk is published with ``pack`` (``[stream] pack``):
up to that many consecutive events of a partition share one queue entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from loopml.storage.queues.base import Queue

#: Tie-break at equal timestamps: profiles, then impressions, then outcomes.
_ORDER = {"user": 0, "item": 1, "impression": 2, "click": 3, "conversion": 4}


def event_payloads(
    frames: Mapping[str, pd.DataFrame],
    types: tuple[str, ...] = ("user", "item", "impression", "click"),
) -> Iterator[tuple[dict[str, Any], str | None]]:
    """``(payload, key)`` for every row of ``frames``, merged in event-time order."""
    import numpy as np
    import pandas as pd

    parts = []
    for event_type in types:
        frame = frames.get(event_type)
        if frame is None or frame.empty:
            continue
        part = frame.drop(columns=["schema_version"], errors="ignore").copy()
        for col in part.columns:
            if pd.api.types.is_datetime64_any_dtype(part[col]):
                part[col] = pd.DatetimeIndex(part[col]).as_unit("us").asi8 / 1e6
        # object columns keep ints as ints once frames with other columns are merged
        part = part.astype(object)
        part.insert(0, "type", event_type)
        part["_rank"] = _ORDER.get(event_type, 9)
        parts.append(part)
    if not parts:
        return
    merged = pd.concat(parts, ignore_index=True, sort=False)
    order = np.lexsort(
        (merged["_rank"].to_numpy(dtype=np.int64), merged["ts"].to_numpy(dtype=np.float64))
    )
    merged = merged.iloc[order].drop(columns=["_rank"])
    columns = list(merged.columns)
    for row in merged.itertuples(index=False, name=None):
        payload = {c: v for c, v in zip(columns, row, strict=True) if not _missing(v)}
        yield payload, payload.get("user_id")


def publish_events(
    queue: Queue,
    frames: Mapping[str, pd.DataFrame],
    topic: str = "events",
    chunk: int = 5000,
    limit: int | None = None,
    progress: bool = False,
    pack: int = 1,
) -> int:
    """Publish ``frames`` to ``topic`` in event-time order; return how many were sent.

    ``pack`` > 1 stores up to that many events of one partition per queue entry (see
    :meth:`~loopml.storage.queues.base.Queue.publish_many`).
    """
    total = sum(len(f) for k, f in frames.items() if k in _ORDER and k != "conversion")
    if limit is not None:
        total = min(total, limit)
    sent = 0
    batch: list[dict[str, Any]] = []
    keys: list[str | None] = []
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress()
        bar.start()
        task = bar.add_task("publishing events", total=total)
    try:
        for payload, key in event_payloads(frames):
            if limit is not None and sent + len(batch) >= limit:
                break
            batch.append(payload)
            keys.append(key)
            if len(batch) >= chunk:
                queue.publish_many(topic, batch, keys, pack=pack)
                sent += len(batch)
                if bar is not None:
                    bar.update(task, advance=len(batch))
                batch, keys = [], []
        if batch:
            queue.publish_many(topic, batch, keys, pack=pack)
            sent += len(batch)
            if bar is not None:
                bar.update(task, advance=len(batch))
    finally:
        if bar is not None:
            bar.stop()
    return sent


def produce_sim(
    cfg: Any,
    days: int = 3,
    seed: int = 0,
    impressions_per_day: int = 20_000,
    topic: str = "events",
    limit: int | None = None,
    progress: bool = False,
    **world: Any,
) -> int:
    """`loopml stream produce`: simulate ``days`` of the world and publish them, packed
    as ``[stream] pack`` says."""
    from loopml.serve.stream.settings import StreamSettings
    from loopml.sim.config import WorldConfig
    from loopml.sim.world import World
    from loopml.storage.queues import open_queue

    w = World(WorldConfig(seed=seed, days=days, impressions_per_day=impressions_per_day, **world))
    frames = w.generate(progress=progress)
    with open_queue(cfg.url("queue"), namespace=cfg.name) as queue:
        return publish_events(
            queue,
            frames,
            topic=topic,
            limit=limit,
            progress=progress,
            pack=StreamSettings.from_config(cfg).pack,
        )


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return value != value  # NaN / NaT / pd.NA-safe
    except TypeError:
        return True
