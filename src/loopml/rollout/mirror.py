"""Shadow traffic: the challenger gets a copy of a request the champion already answered.

The mirror is a task created after the champion's answer is in hand, so the caller
never waits for it: the challenger costs compute, not the champion's latency. At most
``router.max_shadow`` mirrors run at once; past that a request is not mirrored and is
counted in ``router.counts["shadow_dropped"]``, so a slow challenger cannot pile up
work without bound. Whatever the challenger does, its error never reaches the caller:
it is recorded with its latency and score, to be compared in the shadow summary.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loopml.rollout.routed import ActiveExperiment, score_of

if TYPE_CHECKING:
    from loopml.rollout.router import ExperimentRouter


def mirror(
    router: ExperimentRouter,
    active: ActiveExperiment,
    model_name: str,
    columns: Mapping[str, Any],
    unit: str | None,
    call: dict[str, Any],
) -> None:
    """Send a copy of this request to the challenger (arm 1) in the background."""
    if len(router._shadows) >= router.max_shadow:
        router.counts["shadow_dropped"] += 1
        return
    task = asyncio.get_running_loop().create_task(
        _shadow(router, active, model_name, columns, unit, dict(call))
    )
    router._shadows.add(task)
    task.add_done_callback(router._shadows.discard)


async def _shadow(
    router: ExperimentRouter,
    active: ActiveExperiment,
    model_name: str,
    columns: Mapping[str, Any],
    unit: str | None,
    call: dict[str, Any],
) -> None:
    rid = call["request_id"]
    call["request_id"] = f"{rid}~shadow"
    try:
        result, latency, error = await router._call(active, 1, model_name, columns, unit, call)
    except Exception as exc:  # noqa: BLE001 - a mirror must never surface an error
        result, latency, error = None, 0.0, exc
    router.counts["shadow"] += 1
    router._record(active, rid, unit, 1, "shadow", latency, error, score_of(result), result)
