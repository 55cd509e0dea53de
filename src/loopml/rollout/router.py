"""The experiment router: sits in front of the data plane and routes a model's requests.

It has the data plane's own ``infer`` signature, so the online service plugs it in
by wrapping its :class:`~loopml.serve.online.dataplane.DataPlane` once; every
transport (REST, gRPC, async jobs) is then routed with no change of its own. A
request for a model with a running experiment (and no explicit version) is assigned
an arm by the experiment's policy, served by the data plane at that arm's version,
and the assignment is buffered and written to the metadata database in a background
thread. Everything else passes straight through.

Shadow mirrors run as tasks created after the champion has answered, so they never
add to the champion's latency; at most ``max_shadow`` run at once and the rest are
counted as dropped rather than queued without bound. A background tick (every
``tick_s``) writes buffered assignments, notices experiments changed elsewhere (CLI,
another worker) by their revision, steps canary ramps and refreshes bandit
posteriors from the stored totals, so several server processes agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from loopml.core.errors import LoopmlError
from loopml.rollout import lifecycle
from loopml.rollout.assignment import bucket
from loopml.rollout.assignment_log import AssignmentLog
from loopml.rollout.mirror import mirror
from loopml.rollout.policies import BanditPolicy, ShadowPolicy, policy_for
from loopml.rollout.records import Experiment, ExperimentSpec
from loopml.rollout.routed import (
    ActiveExperiment,
    describe,
    next_request_id,
    routed,
    score_of,
)
from loopml.rollout.store import ExperimentStore
from loopml.serve.online.dataplane import InferResult

log = logging.getLogger("loopml.rollout")

_RECENT = 100_000


class ExperimentRouter:
    """Route requests of models under experiment; pass every other call through.

    Parameters
    ----------
    dataplane:
        The online service's data plane (anything with its ``infer`` signature).
    store:
        Where experiments, assignments and outcomes live.
    registry:
        For ``promote`` (moving the serving alias); None disables promotion here.
    tick_s:
        Seconds between background ticks; None means only explicit :meth:`tick` calls.
    """

    def __init__(
        self,
        dataplane: Any,
        store: ExperimentStore,
        *,
        registry: Any = None,
        tick_s: float | None = 1.0,
        flush_rows: int = 2000,
        max_buffer: int = 200_000,
        max_shadow: int = 32,
    ) -> None:
        self.inner = dataplane
        self.store = store
        self.registry = registry
        self.tick_s = tick_s
        self.max_shadow = max_shadow
        self.assignments = AssignmentLog(store, flush_rows, max_buffer)
        self.counts = {"routed": 0, "shadow": 0, "shadow_dropped": 0}
        self._active: dict[str, ActiveExperiment] = {}
        self._revisions: dict[str, tuple[int, str]] = {}
        self._recent: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self._shadows: set[asyncio.Task] = set()
        self._ticker: asyncio.Task | None = None
        self._loaded = False
        self._started = False
        self._load_lock: asyncio.Lock | None = None
        self._closed = False
        params = inspect.signature(dataplane.infer).parameters
        self._log_arm = "arm" in params and "entity_id" in params

    @classmethod
    def from_config(cls, cfg: Any, dataplane: Any, **kwargs: Any) -> ExperimentRouter:
        """The router for a project: its metadata database and its registry."""
        registry = getattr(getattr(dataplane, "repository", None), "source", None)
        registry = getattr(registry, "registry", None)
        return cls(dataplane, ExperimentStore.from_config(cfg), registry=registry, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # everything that is not routing (lookup, repository, metrics...) is the data plane's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- the serving path --------------------------------------------------------------------
    async def infer(
        self,
        model_name: str,
        columns: Mapping[str, Any],
        *,
        version: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        timeout_ms: float | None = None,
        protocol: str = "v2",
    ) -> InferResult:
        """Predict like the data plane; route when ``model_name`` is under experiment."""
        if not self._started:
            await self._first_load()
        active = self._active.get(model_name) if version is None else None
        if active is None:
            return await self.inner.infer(
                model_name,
                columns,
                version=version,
                headers=headers,
                params=params,
                request_id=request_id,
                timeout_ms=timeout_ms,
                protocol=protocol,
            )
        spec = active.experiment.spec
        unit = (headers or {}).get(spec.unit_header)
        if unit is None and params:
            found = params.get("unit_id")
            unit = str(found) if found is not None else None
        position = bucket(spec.name, unit) if unit else float(active.rng.random())
        rid = request_id or (headers or {}).get("x-request-id") or next_request_id()
        call = dict(
            headers=headers, params=params, request_id=rid, timeout_ms=timeout_ms, protocol=protocol
        )
        self.counts["routed"] += 1
        policy = active.policy
        if policy.kind == "interleave":
            from loopml.rollout.interleaved import interleave

            return await interleave(self, active, model_name, columns, unit, call)
        arm = policy.choose(position, active.rng)
        result, latency, error = await self._call(active, arm, model_name, columns, unit, call)
        if error is not None and policy.kind == "canary" and arm == 1:
            # a failing challenger must not fail the user: the champion answers instead
            self._record(active, rid, unit, arm, "serve", latency, error, None, result)
            result, _, _ = await self._call(
                active, 0, model_name, columns, unit, call, raising=True
            )
            return routed(result, spec.name, spec.arms[0])
        self._record(active, rid, unit, arm, "serve", latency, error, score_of(result), result)
        if isinstance(policy, BanditPolicy):
            policy.observe(arm)
        elif isinstance(policy, ShadowPolicy) and policy.mirror(active.rng):
            mirror(self, active, model_name, columns, unit, call)
        if result is None:
            raise error  # type: ignore[misc]
        self._remember(rid, spec.name, spec.arms[arm])
        return routed(result, spec.name, spec.arms[arm])

    async def _call(
        self,
        active: ActiveExperiment,
        arm: int,
        model_name: str,
        columns: Mapping[str, Any],
        unit: str | None,
        call: dict[str, Any],
        raising: bool = False,
    ) -> tuple[InferResult | None, float, Any]:
        """One data-plane call for ``arm``: (result or None, latency ms, error or None).

        A 4xx (the caller's input) is raised at once; a failure of the model (a 5xx, or
        an answer from the fallback) is returned as the arm's error.
        """
        extra = {}
        if self._log_arm:
            extra = {"arm": active.experiment.spec.arms[arm], "entity_id": unit}
        start = time.perf_counter()
        try:
            result = await self.inner.infer(
                model_name, columns, version=active.versions[arm], **call, **extra
            )
        except LoopmlError as exc:
            if exc.status_code < 500 or raising:
                raise
            return None, (time.perf_counter() - start) * 1000.0, exc
        latency = (time.perf_counter() - start) * 1000.0
        error = result.fallback if result.fallback else None
        return result, latency, error

    def _record(
        self,
        active: ActiveExperiment,
        rid: str,
        unit: str | None,
        arm: int,
        kind: str,
        latency: float,
        error: Any,
        score: float | None,
        result: InferResult | None,
        detail: str | None = None,
    ) -> None:
        spec = active.experiment.spec
        # a tuple in ASSIGNMENT_COLUMNS order: the cheapest thing to build per request
        self.assignments.add(
            (
                spec.name,
                rid,
                unit,
                spec.arms[arm],
                result.version if result is not None else None,
                kind,
                time.time(),
                latency,
                error is not None,
                score,
                detail if detail is not None else describe(error),
            )
        )

    def _remember(self, rid: str, experiment: str, target: Any) -> None:
        self._recent[rid] = (experiment, target)
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    # -- control -----------------------------------------------------------------------------
    async def start(self, spec: ExperimentSpec, actor: str = "admin-api") -> Experiment:
        source = getattr(getattr(self.inner, "repository", None), "source", None)
        resolve = getattr(source, "resolve", None)
        exp = await asyncio.to_thread(
            lifecycle.start, self.store, spec, resolve=resolve, actor=actor
        )
        await self.reload()
        return exp

    async def stop(self, name: str, reason: str = "", actor: str = "admin-api") -> Experiment:
        exp = await asyncio.to_thread(lifecycle.stop, self.store, name, reason, actor)
        await self.reload()
        return exp

    async def promote(
        self, name: str, arm: str | None = None, reason: str = "", actor: str = "admin-api"
    ) -> dict[str, Any]:
        from loopml.rollout.analysis import winner

        await self.flush()
        out = await asyncio.to_thread(
            lifecycle.promote,
            self.store,
            name,
            self.registry,
            arm,
            reason=reason,
            actor=actor,
            winner=lambda exp: winner(self.store, exp),
        )
        await self.reload()
        refresh = getattr(getattr(self.inner, "repository", None), "refresh", None)
        if refresh is not None:
            await refresh(out["model"])
        return out

    async def status(self, name: str) -> dict[str, Any]:
        from loopml.rollout.analysis import summarize

        await self.flush()
        exp = await asyncio.to_thread(self.store.get, name)
        return await asyncio.to_thread(summarize, self.store, exp)

    async def feedback(self, name: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Join outcomes to their assignments (see :func:`lifecycle.record_feedback`)."""
        exp = await asyncio.to_thread(self.store.get, name)
        known = {}
        for row in rows:
            rid = row.get("request_id") if isinstance(row, Mapping) else None
            hit = self._recent.get(rid) if isinstance(rid, str) else None
            if hit is not None and hit[0] == name:
                known[rid] = hit[1]
        if len(known) < len(rows):
            await self.flush()  # the assignment may still be in the buffer
        out = await asyncio.to_thread(lifecycle.record_feedback, self.store, exp, rows, known)
        active = self._active.get(exp.spec.model)
        if active is not None and isinstance(active.policy, BanditPolicy):
            index = {a: i for i, a in enumerate(exp.spec.arms)}
            for arm in out["arms"]:
                active.policy.reward(index[arm], 1.0)
        return out

    def experiment_for(self, model_name: str) -> Experiment | None:
        """The running experiment in front of ``model_name`` in this process, if any."""
        active = self._active.get(model_name)
        return active.experiment if active is not None else None

    # -- background work ---------------------------------------------------------------------
    async def open(self) -> None:
        """Load running experiments and start the tick now (servers call this at start-up),
        so the first burst of requests is not held behind the first load."""
        await self._first_load()

    async def _first_load(self) -> None:
        if self._load_lock is None:
            self._load_lock = asyncio.Lock()
        async with self._load_lock:
            if not self._loaded:
                await self.reload()
            if self.tick_s is not None and self._ticker is None and not self._closed:
                self._ticker = asyncio.get_running_loop().create_task(self.run())
            self._started = True

    async def reload(self) -> None:
        """Load every running experiment afresh (after a change here or elsewhere)."""
        running = await asyncio.to_thread(self.store.list, "running")
        active: dict[str, ActiveExperiment] = {}
        for exp in running:
            old = self._active.get(exp.spec.model)
            policy = policy_for(exp)
            if isinstance(policy, BanditPolicy):
                wins, trials = await asyncio.to_thread(lifecycle.bandit_counts, self.store, exp)
                policy.set_counts(wins, trials)
            rng = old.rng if old is not None and old.experiment.name == exp.name else _rng(exp)
            versions = await self._versions(exp.spec)
            active[exp.spec.model] = ActiveExperiment(exp, policy, versions, rng)
        self._active = active
        self._revisions = await asyncio.to_thread(self.store.revisions)
        self._loaded = True

    async def _versions(self, spec: ExperimentSpec) -> list[str | None]:
        """What to pass as ``version`` for each arm: None for the alias unversioned
        requests already follow (no lookup on the hot path), else the version number."""
        settings_for = getattr(self.inner, "settings_for", None)
        default_alias = settings_for(spec.model).alias if settings_for is not None else None
        source = getattr(getattr(self.inner, "repository", None), "source", None)
        out: list[str | None] = []
        for arm in spec.arms:
            if arm == default_alias:
                out.append(None)
                continue
            try:
                number = await asyncio.to_thread(source.resolve, spec.model, arm)
                out.append(str(number))
            except Exception:  # noqa: BLE001 - the data plane reports a bad ref per request
                out.append(arm)
        return out

    async def tick(self) -> None:
        """Write assignments, pick up outside changes, step canaries, refresh bandits."""
        await self.flush()
        revisions = await asyncio.to_thread(self.store.revisions)
        if revisions != self._revisions:
            await self.reload()
        changed = False
        for active in list(self._active.values()):
            exp = active.experiment
            if exp.spec.policy == "canary":
                after = await asyncio.to_thread(lifecycle.evaluate_canary, self.store, exp)
                changed = changed or after.revision != exp.revision
                continue
            if isinstance(active.policy, BanditPolicy):
                wins, trials = await asyncio.to_thread(lifecycle.bandit_counts, self.store, exp)
                active.policy.set_counts(wins, trials)
            after = await asyncio.to_thread(lifecycle.record_look, self.store, exp)
            changed = changed or after.revision != exp.revision
        if changed:
            await self.reload()

    async def run(self) -> None:
        """Tick every ``tick_s`` seconds until cancelled; one failed tick is logged only."""
        while True:
            await asyncio.sleep(self.tick_s or 1.0)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the store may be briefly unreachable
                log.warning("experiment tick failed: %s", exc)

    async def flush(self) -> int:
        """Write buffered assignments now (see :class:`AssignmentLog`)."""
        return await self.assignments.flush()

    async def aclose(self) -> None:
        """Let mirrors finish (briefly), stop ticking and write what is buffered."""
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ticker
            self._ticker = None
        if self._shadows:
            await asyncio.wait(list(self._shadows), timeout=5.0)
        await self.flush()


def _rng(exp: Experiment) -> np.random.Generator:
    seed = exp.spec.seed
    return np.random.default_rng(seed)
