"""Shadow traffic: the challenger gets a copy of a request the champion already answered.

In a server, the copy goes to the rollout sidecar (:mod:`loopml.rollout.sidecar`), which
scores it in another process on idle CPU: the challenger costs compute, never the
champion's latency, not even the next request's wait on the event loop. Elsewhere (a
router over models that are not in the project's registry, as in tests) the mirror is a
task created after the champion's answer is in hand, so the caller never waits for it.
Either way the backlog is bounded: at most ``router.max_shadow`` in-process mirrors run
at once, and the sidecar's queue holds at most ``max_mirrors``; past that a request is
not mirrored and is counted in ``router.counts["shadow_dropped"]``. Whatever the
challenger does, its error never reaches the caller: it is recorded with its latency
and score, to be compared in the shadow summary.
"""

from __future__ import annotations

import asyncio
import time
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
    assignments = router.assignments
    if assignments.takes_mirrors:  # a server's sidecar scores it (see the module)
        version = active.versions[1]
        assignments.add_mirror(
            (
                active.name,
                active.arms[1],
                version if version is not None else active.arms[1],
                model_name,
                call["request_id"],
                unit,
                columns,
                None,  # headers only route unversioned requests; a mirror names its version
                call["params"],
                call["protocol"],
                time.time(),
            )
        )
        return
    if len(router._shadows) >= router.max_shadow:
        router._counts["shadow_dropped"] += 1
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
    router._counts["shadow"] += 1
    router._record(active, rid, unit, 1, "shadow", latency, error, score_of(result), result)
