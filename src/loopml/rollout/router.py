"""The experiment router: sits in front of the data plane and routes a model's requests.

It has the data plane's own ``infer`` signature, so the online service plugs it in
by wrapping its :class:`~loopml.serve.online.dataplane.DataPlane` once; every
transport (REST, gRPC, async jobs) is then routed with no change of its own. A
request for a model with a running experiment (and no explicit version) is assigned
an arm by the experiment's policy, served by the data plane at that arm's version,
and the assignment is buffered and written to the metadata database in a background
thread. Everything else passes straight through. Outcomes arrive through
:meth:`ExperimentRouter.feedback` or, with no call at all, from behaviour events in the
project's event log (:mod:`loopml.rollout.eventjoin`).

Shadow mirrors run as tasks created after the champion has answered, so they never
add to the champion's latency; at most ``max_shadow`` run at once and the rest are
counted as dropped rather than queued without bound. A background tick (every
``tick_s``) writes buffered assignments, joins new outcome events, notices experiments
changed elsewhere (CLI, another worker) by their revision, steps canary ramps and
refreshes bandit posteriors from the stored totals, so several server processes agree.
Everything the tick reads is a handful of rows (per-arm totals kept at write time), so
it costs the same on the first day of an experiment and on the hundredth.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from loopml.core.errors import LoopmlError
from loopml.rollout import lifecycle
from loopml.rollout.assignment_log import AssignmentLog
from loopml.rollout.mirror import mirror
from loopml.rollout.policies import BanditPolicy, policy_for
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

_now = time.time


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
    events:
        The project's event log: behaviour events in it (clicks, conversions, feedback)
        are joined to the experiments' assignments before every status and, unless
        ``join_every_s`` is None, at a tick every ``join_every_s`` seconds (see
        :mod:`loopml.rollout.eventjoin`). While the log holds no such events this costs
        a file listing; the first real join loads DuckDB into the worker. None: outcomes
        come only through :meth:`feedback`.
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
        events: Any = None,
        join_every_s: float | None = 30.0,
        writer: Any = None,
    ) -> None:
        self.inner = dataplane
        self.events = events
        self.join_every_s = join_every_s
        self._joined_at = 0.0
        self.store = store
        self.registry = registry
        self.tick_s = tick_s
        self.max_shadow = max_shadow
        self.writer = writer
        self.assignments = AssignmentLog(writer or store, flush_rows, max_buffer)
        self._add = self.assignments.add
        self._counts = {"shadow": 0, "shadow_dropped": 0}
        self._active: dict[str, ActiveExperiment] = {}
        self._revisions: dict[str, tuple[int, str]] = {}
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
        if "events" not in kwargs:
            from loopml.logs.eventlog import EventLog

            kwargs["events"] = EventLog.from_config(cfg)
        store = ExperimentStore.from_config(cfg)
        if "writer" not in kwargs:
            from loopml.rollout.sidecar import Sidecar

            # a server writes its assignment rows, and scores its shadows when the models
            # come from the project's registry, in a child process (see the module)
            project = str(cfg.root) if registry is not None else None
            kwargs["writer"] = Sidecar(store.url, project=project)
        return cls(dataplane, store, registry=registry, **kwargs)

    @property
    def counts(self) -> dict[str, int]:
        """Shadow requests scored and not mirrored (over the limit), in process or not."""
        log = self.assignments
        return {
            "shadow": self._counts["shadow"] + log.mirrored,
            "shadow_dropped": self._counts["shadow_dropped"] + log.mirrors_dropped,
        }

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
        """Predict like the data plane; route when ``model_name`` is under experiment.

        This is every request's path, so it is written for the interpreter: everything
        about the experiment was worked out when it loaded (:class:`ActiveExperiment`),
        a returning unit's arm is a dict lookup, the assignment is one tuple appended to
        a list, and the data plane's own result is tagged in place.
        """
        if not self._started:
            await self._first_load()
        active = self._active.get(model_name)
        if active is None or version is not None:
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
        unit = headers.get(active.header) if headers else None
        if unit is None and params:
            found = params.get("unit_id")
            unit = str(found) if found is not None else None
        kind = active.kind
        if kind == "interleave":
            from loopml.rollout.interleaved import interleave

            call = _call_args(headers, params, _rid(request_id, headers), timeout_ms, protocol)
            return await interleave(self, active, model_name, columns, unit, call)
        arm = active.units.get(unit) if unit is not None else None  # a returning unit
        if arm is None:
            arm = active.arm_for(unit)
        start = time.perf_counter()
        try:
            if self._log_arm:
                result = await self.inner.infer(
                    model_name,
                    columns,
                    version=active.versions[arm],
                    headers=headers,
                    params=params,
                    request_id=request_id,
                    timeout_ms=timeout_ms,
                    protocol=protocol,
                    arm=active.arms[arm],
                    entity_id=unit,
                )
            else:
                result = await self.inner.infer(
                    model_name,
                    columns,
                    version=active.versions[arm],
                    headers=headers,
                    params=params,
                    request_id=request_id,
                    timeout_ms=timeout_ms,
                    protocol=protocol,
                )
        except LoopmlError as exc:
            if exc.status_code < 500:
                raise  # the caller's input: not the arm's failure
            latency = (time.perf_counter() - start) * 1000.0
            call = _call_args(headers, params, _rid(request_id, headers), timeout_ms, protocol)
            return await self._failed(
                active, arm, unit, latency, exc, None, model_name, columns, call
            )
        rid = result.request_id  # the caller's, or the data plane's own
        if result.fallback:
            call = _call_args(headers, params, rid, timeout_ms, protocol)
            return await self._failed(
                active,
                arm,
                unit,
                result.latency_ms,
                result.fallback,
                result,
                model_name,
                columns,
                call,
            )
        self._add(
            (
                active.name,
                rid,
                unit,
                active.arms[arm],
                result.version,
                "serve",
                _now(),
                result.latency_ms,
                False,
                score_of(result) if kind == "shadow" else None,
                None,
            )
        )
        if kind == "bandit":
            active.policy.observe(arm)  # type: ignore[union-attr]
        elif kind == "shadow" and active.policy.mirror(active.rng):  # type: ignore[union-attr]
            call = _call_args(headers, params, rid, timeout_ms, protocol)
            mirror(self, active, model_name, columns, unit, call)
        return routed(result, active.name, active.arms[arm])

    async def _failed(
        self,
        active: ActiveExperiment,
        arm: int,
        unit: str | None,
        latency: float,
        error: Any,
        result: InferResult | None,
        model_name: str,
        columns: Mapping[str, Any],
        call: dict[str, Any],
    ) -> InferResult:
        """An arm failed (a 5xx, or the data plane answered its fallback): record it, and
        for a canary let the champion answer, so a failing challenger never fails a user."""
        kind = active.kind
        score = score_of(result) if kind == "shadow" else None
        self._record(active, call["request_id"], unit, arm, "serve", latency, error, score, result)
        if kind == "canary" and arm == 1:
            result, _, _ = await self._call(
                active, 0, model_name, columns, unit, call, raising=True
            )
            return routed(result, active.name, active.arms[0])  # type: ignore[arg-type]
        if kind == "bandit":
            active.policy.observe(arm)  # type: ignore[union-attr]
        elif kind == "shadow" and active.policy.mirror(active.rng):  # type: ignore[union-attr]
            mirror(self, active, model_name, columns, unit, call)
        if result is None:
            raise error
        return routed(result, active.name, active.arms[arm])

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

        Mirrors, interleaving and the canary's fallback to the champion use it. A 4xx
        (the caller's input) is raised at once; a failure of the model (a 5xx, or an
        answer from the fallback) is returned as the arm's error.
        """
        extra = {}
        if self._log_arm:
            extra = {"arm": active.arms[arm], "entity_id": unit}
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
        # a tuple in ASSIGNMENT_COLUMNS order: the cheapest thing to build per request
        self._add(
            (
                active.name,
                rid,
                unit,
                active.arms[arm],
                result.version if result is not None else None,
                kind,
                _now(),
                latency,
                error is not None,
                score,
                detail if detail is not None else describe(error),
            )
        )

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
        if self.events is not None:
            await self._join(exp)
        return await asyncio.to_thread(summarize, self.store, exp)

    async def _join(self, exp: Experiment) -> dict[str, Any] | None:
        """Join the event log's new outcome events to ``exp`` (a failure is logged only:
        the events stay in the log and the next run reads them)."""
        from loopml.rollout.eventjoin import has_events, join_events

        try:
            if not await asyncio.to_thread(has_events, self.events):
                return None  # nothing logged yet: no DuckDB in the worker for nothing
            return await asyncio.to_thread(join_events, self.store, self.events, exp)
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the tick
            log.warning("joining the event log to experiment %s failed: %s", exp.name, exc)
            return None

    async def feedback(self, name: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Join outcomes to their assignments (see :func:`lifecycle.record_feedback`)."""
        exp = await asyncio.to_thread(self.store.get, name)
        await self.flush()  # the assignments may still be in the buffer
        out = await asyncio.to_thread(lifecycle.record_feedback, self.store, exp, rows)
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
            now = ActiveExperiment(exp, policy, versions, rng)
            if old is not None and now.sticky and now.same_routing(old):
                now.units = old.units  # the same units land in the same arms: keep them
            active[exp.spec.model] = now
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
        """Write assignments, join new events, pick up outside changes, step canaries,
        refresh bandits."""
        await self.flush()
        now = time.monotonic()
        every = self.join_every_s
        if self.events is not None and every is not None and now - self._joined_at >= every:
            self._joined_at = now
            for active in list(self._active.values()):
                if active.kind == "shadow":  # shadow traffic is compared, not judged
                    continue
                # with several workers, one of them joins per interval (the result would
                # be the same, the event log read as many times)
                name = active.experiment.name
                if await asyncio.to_thread(self.store.take_turn, name, "join-turn", every):
                    await self._join(active.experiment)
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
        if self.writer is not None:
            await self.writer.aclose()


def _rid(request_id: str | None, headers: Mapping[str, str] | None) -> str:
    """The request's id as the data plane would pick it (for paths that need it first)."""
    return request_id or (headers or {}).get("x-request-id") or next_request_id()


def _call_args(
    headers: Mapping[str, str] | None,
    params: Mapping[str, Any] | None,
    request_id: str,
    timeout_ms: float | None,
    protocol: str,
) -> dict[str, Any]:
    """A request's data-plane arguments, for the paths that call it more than once."""
    return {
        "headers": headers,
        "params": params,
        "request_id": request_id,
        "timeout_ms": timeout_ms,
        "protocol": protocol,
    }


def _rng(exp: Experiment) -> np.random.Generator:
    seed = exp.spec.seed
    return np.random.default_rng(seed)
