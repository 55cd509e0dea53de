"""Shadow scoring in the rollout sidecar: the challenger answers mirrored requests there.

The sidecar (:mod:`loopml.rollout.sidecar`) builds the same data plane a server has, for
the project's registry, so a mirrored request meets exactly what it would meet in the
server: the challenger version loaded (and its artifact hash checked) by the repository,
the request validated against its signature, its prediction logged with its arm. What
differs, on purpose:

- there is no prediction cache (a shadow must compute) and no timeout (the sidecar runs
  at idle priority, so wall time there includes time spent preempted by serving; the
  recorded latency is the call's CPU time instead);
- mirrors arrive in batches, and scoring a hundred one-row requests one call at a time
  costs several times what one call on a hundred rows does. So the first
  :data:`TIMED_PER_BATCH` single-row mirrors of each model version in a batch are called
  one by one, as the server would, and timed; the others are scored in one call, and
  their rows carry the score and no latency. A batch call that fails (one bad row fails
  it) is retried one request at a time, so every request gets its own answer or error.
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
#: Single-row mirrors per model version and batch that are called alone and timed.
TIMED_PER_BATCH = 8


def _batch_key(m: Sequence[Any]) -> tuple | None:
    """What single-row mirrors must share to be scored in one call (None: call it alone).

    Requests with parameters or with online features to look up (an entity id in the
    parameters) are always called alone, as are multi-row ones.
    """
    columns, params = m[6], m[8]
    if params or not columns or not isinstance(columns, dict):
        return None
    for values in columns.values():
        if type(values) is not list or len(values) != 1:
            return None
    return (m[0], m[1], m[2], m[3], m[9], tuple(columns))


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
        online_store = OnlineStore(cfg.url("online"))
        self.dataplane = DataPlane(
            repository,
            repository.settings_for,
            metrics=Metrics(),
            predlog=self.predlog,
            timeout_ms=_NO_TIMEOUT_MS,
            online_store=online_store,
        )
        #: the same models, for batch calls whose rows are logged one request at a time
        self._unlogged = DataPlane(
            repository,
            repository.settings_for,
            metrics=Metrics(),
            timeout_ms=_NO_TIMEOUT_MS,
            online_store=online_store,
        )
        self._logging = asyncio.get_running_loop().create_task(self.predlog.run())

    async def score(self, mirrors: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """Score each mirrored request (``MIRROR_FIELDS`` order); its assignment row, in
        ``ASSIGNMENT_COLUMNS`` order. A failure of the challenger is its row's error."""
        rows: list[tuple[Any, ...] | None] = [None] * len(mirrors)
        timed: dict[tuple, int] = {}
        groups: dict[tuple, list[int]] = {}
        for i, m in enumerate(mirrors):
            key = _batch_key(m)
            if key is None or timed.get(key, 0) < TIMED_PER_BATCH:
                if key is not None:
                    timed[key] = timed.get(key, 0) + 1
                rows[i] = await self._one(m)
            else:
                groups.setdefault(key, []).append(i)
        for members in groups.values():
            batch = [mirrors[i] for i in members]
            for i, row in zip(members, await self._batch(batch), strict=True):
                rows[i] = row
        return rows  # type: ignore[return-value]

    async def _one(self, m: Sequence[Any]) -> tuple[Any, ...]:
        """One mirrored request, called alone and timed (CPU time), as the server would."""
        exp, arm, version, model, rid, unit, columns, headers, params, protocol, ts = m
        clock = time.process_time
        start = clock()
        try:
            result = await self.dataplane.infer(
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
        version_out = result.version if result is not None else None
        return (
            exp,
            rid,
            unit,
            arm,
            version_out,
            "shadow",
            ts,
            latency,
            error is not None,
            score_of(result),
            describe(error),
        )

    async def _batch(self, batch: list[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """Single-row mirrors of one model version in one call; each row logged as its own
        request. On any failure, each request alone (its own answer or error)."""
        first = batch[0]
        exp, arm, version, model, _, _, columns, headers, _, protocol, _ = first
        names = list(columns)
        merged = {n: [m[6][n][0] for m in batch] for n in names}
        clock = time.process_time
        start = clock()
        try:
            result = await self._unlogged.infer(
                model,
                merged,
                version=version,
                headers=headers,
                request_id=f"{first[4]}~shadow",
                timeout_ms=_NO_TIMEOUT_MS,
                protocol=protocol,
            )
        except Exception:  # noqa: BLE001 - one bad row fails the call: each one alone
            result = None
        if result is None or result.fallback or result.rows != len(batch):
            return [await self._one(m) for m in batch]
        per_row_ms = (clock() - start) * 1000.0 / len(batch)
        loaded = await self.dataplane.repository.get(model, version)
        rate = loaded.settings.log_sample_rate
        record = self.predlog.record
        out: list[tuple[Any, ...]] = []
        for i, m in enumerate(batch):
            record(
                request_id=f"{m[4]}~shadow",
                model=result.model,
                version=result.version,
                columns=m[6],
                outputs={k: v[i : i + 1] for k, v in result.outputs.items()},
                n=1,
                latency_ms=per_row_ms,
                rate=rate,
                entity_id=m[5],
                arm=arm,
            )
            out.append(
                (
                    exp,
                    m[4],
                    m[5],
                    arm,
                    result.version,
                    "shadow",
                    m[10],
                    None,
                    False,
                    score_of(result, i),
                    None,
                )
            )
        return out

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
