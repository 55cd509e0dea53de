"""Shadow scoring in the rollout sidecar: the challenger answers mirrored requests there.

The sidecar (:mod:`loopml.rollout.sidecar`) builds the same data plane a server has, for
the project's registry, so a mirrored request meets exactly what it would meet in the
server: the challenger version loaded (and its artifact hash checked) by the repository,
the request validated against its signature, its prediction logged with its arm. Only
two things differ, on purpose: there is no prediction cache (a shadow must compute), and
no timeout (the sidecar runs at idle priority, so wall time there includes time spent
preempted by serving; the recorded latency is the call's CPU time instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loopml.rollout.routed import describe, score_of

#: Long enough that no shadow call is cut short by the sidecar being starved of CPU.
_NO_TIMEOUT_MS = 600_000.0


class ShadowScorer:
    """A data plane over the project's registry, for scoring mirrored requests."""

    def __init__(self, project: str) -> None:
        from loopml.core.config import ProjectConfig
        from loopml.logs.eventlog import EventLog
        from loopml.registry import Registry
        from loopml.serve.online.dataplane import DataPlane
        from loopml.serve.online.metrics import Metrics
        from loopml.serve.online.repository import ModelRepository, RegistrySource
        from loopml.serve.online.settings import model_settings, online_settings
        from loopml.serve.online.state import prediction_log
        from loopml.storage.online import OnlineStore

        cfg = ProjectConfig.load(project)
        models = cfg.section("models")
        online = online_settings(cfg.section("online"), cfg.serve.port)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="loopml-shadow")
        repository = ModelRepository(
            RegistrySource(Registry.from_config(cfg)),
            lambda name: model_settings(name, models),
            max_batch_size=cfg.serve.max_batch_size,
            max_wait_ms=cfg.serve.max_wait_ms,
            executor=self._executor,
        )
        repository.ready = True  # nothing to preload: mirrors name their version
        self.predlog = prediction_log(cfg, EventLog.from_config(cfg), online)
        self.dataplane = DataPlane(
            repository,
            repository.settings_for,
            metrics=Metrics(),
            predlog=self.predlog,
            timeout_ms=_NO_TIMEOUT_MS,
            online_store=OnlineStore(cfg.url("online")),
        )
        self._logging = asyncio.get_running_loop().create_task(self.predlog.run())

    async def score(self, mirrors: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """Score each mirrored request (``MIRROR_FIELDS`` order); its assignment row, in
        ``ASSIGNMENT_COLUMNS`` order. A failure of the challenger is its row's error."""
        rows: list[tuple[Any, ...]] = []
        infer = self.dataplane.infer
        clock = time.process_time
        for exp, arm, version, model, rid, unit, columns, headers, params, protocol, ts in mirrors:
            start = clock()
            try:
                result = await infer(
                    model,
                    columns,
                    version=version,
                    headers=headers,
                    params=params,
                    request_id=f"{rid}~shadow",
                    timeout_ms=_NO_TIMEOUT_MS,
                    protocol=protocol,
                    arm=arm,
                    entity_id=unit,
                )
                error: Any = result.fallback or None
            except Exception as exc:  # noqa: BLE001 - the challenger's failure is recorded
                result, error = None, exc
            latency = (clock() - start) * 1000.0
            rows.append(
                (
                    exp,
                    rid,
                    unit,
                    arm,
                    result.version if result is not None else None,
                    "shadow",
                    ts,
                    latency,
                    error is not None,
                    score_of(result),
                    describe(error),
                )
            )
        return rows

    async def aclose(self) -> None:
        """Write the logged predictions; stop the logging task."""
        self._logging.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._logging
        await self.predlog.aclose()
        self._executor.shutdown(wait=False)


class Unavailable:
    """Stands in for a scorer that could not be built: every mirror fails with why."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def score(self, mirrors: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        detail = describe(self.error)
        return [
            (m[0], m[4], m[5], m[1], None, "shadow", m[10], 0.0, True, None, detail)
            for m in mirrors
        ]

    async def aclose(self) -> None:
        return None
