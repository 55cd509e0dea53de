"""Materialise feature views into the online store (``loopml features materialize``).

The online store must serve exactly what a model was trained on. So the values are
computed by the same code as training sets -- :func:`latest_values`, the point-in-time
query as of one moment -- and written per entity under the same column names
(``<view>__<feature>``) that the model's signature uses. Online and offline values for
an entity at the same time are therefore equal by construction, and a test checks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopml.core.clock import utcnow
from loopml.core.progress import progress_bar

if TYPE_CHECKING:
    from loopml.core.config import ProjectConfig
    from loopml.features.views import FeatureCatalog
    from loopml.logs.eventlog import EventLog
    from loopml.storage.online import OnlineStore


@dataclass
class MaterializeResult:
    """Entities written per view, and the time the values are as of."""

    as_of: datetime
    written: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = ", ".join(f"{v}: {n} entities" for v, n in self.written.items()) or "nothing"
        return f"materialised as of {self.as_of.isoformat()}: {parts}"


def materialize(
    log: EventLog,
    store: OnlineStore,
    views: Sequence[str] | None = None,
    *,
    as_of: Any = None,
    catalog: FeatureCatalog | None = None,
    entity_ids: Sequence[str] | None = None,
    ttl_s: float | None = None,
    progress: bool = False,
) -> MaterializeResult:
    """Write the latest values of ``views`` (default: every view in the catalog).

    Parameters
    ----------
    as_of:
        The moment the values are for (now when None); only events strictly before it count.
    entity_ids:
        Limit to these entities (default: every entity with events before ``as_of``).
    """
    from loopml.features.training import latest_values
    from loopml.features.views import default_catalog
    from loopml.logs.evolution import utc

    catalog = catalog or default_catalog()
    chosen = [catalog.get(v) for v in views] if views else list(catalog)
    at = utc(as_of if as_of is not None else utcnow())
    result = MaterializeResult(as_of=at)
    with progress_bar(len(chosen), "materialising feature views", progress) as advance:
        for view in chosen:
            frame = latest_values(log, view, as_of=at, entity_ids=entity_ids)
            rows = _rows(frame, view.entity, view.columns)
            result.written[view.name] = store.write(
                view.name,
                view.entity,
                rows,
                as_of=at.isoformat(),
                ttl_s=ttl_s,
                extra={"version": view.version},
            )
            advance(1)
    return result


def materialize_project(
    cfg: ProjectConfig,
    views: Sequence[str] | None = None,
    *,
    as_of: Any = None,
    progress: bool = True,
) -> MaterializeResult:
    """The CLI entry: the project's event log into its ``[storage] online`` store."""
    from loopml.logs.eventlog import EventLog
    from loopml.storage.online import OnlineStore

    store = OnlineStore(cfg.url("online"))
    try:
        return materialize(EventLog.from_config(cfg), store, views, as_of=as_of, progress=progress)
    finally:
        store.close()


def _rows(frame: Any, entity: str, columns: list[str]) -> dict[str, dict[str, Any]]:
    """``{entity_id: {column: value}}`` from the latest-values frame."""
    ids = frame[entity].astype("str").tolist()
    values = {c: frame[c].tolist() for c in columns}
    return {eid: {c: values[c][i] for c in columns} for i, eid in enumerate(ids)}
