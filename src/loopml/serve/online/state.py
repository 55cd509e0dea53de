"""Everything one server process holds, built from ``loopml.toml``, with its lifecycle.

``startup`` returns at once (the server is live); models load in the background and
``/v2/health/ready`` turns 200 when they are in. ``shutdown`` stops gRPC, the reload
poller and flushes the prediction log, so nothing recorded is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loopml.core.config import ProjectConfig
from loopml.core.processes import freeze_long_lived
from loopml.serve.online.cache import PredictionCache
from loopml.serve.online.dataplane import DataPlane
from loopml.serve.online.jobs import JobStore
from loopml.serve.online.metrics import Metrics
from loopml.serve.online.predlog import PredictionLog
from loopml.serve.online.repository import ModelRepository, ModelSource, RegistrySource
from loopml.serve.online.settings import ModelSettings, model_settings, online_settings

log = logging.getLogger("loopml.serve.online")


class ServerState:
    """The data plane and its stores, for one process (one uvicorn worker)."""

    def __init__(
        self,
        cfg: ProjectConfig,
        source: ModelSource | None = None,
        grpc: bool = True,
        load_before_serving: bool = False,
    ) -> None:
        self.cfg = cfg
        #: one of several workers: accept no connection before the models are loaded, so
        #: that the kernel never hands a request to a worker that would answer 503
        self.load_before_serving = load_before_serving
        serve = cfg.serve
        self.online = online_settings(cfg.section("online"), serve.port)
        self._models_section = cfg.section("models")
        self._settings: dict[str, ModelSettings] = {}
        for name in self._models_section:  # fail at start on a bad [models.x] table
            self.settings_for(name)
        self.max_body_bytes = serve.max_body_bytes
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(self.online.threads, thread_name_prefix="loopml-model")
        if source is None:
            from loopml.registry import Registry

            source = RegistrySource(Registry.from_config(cfg))
        self.repository = ModelRepository(
            source,
            self.settings_for,
            max_batch_size=serve.max_batch_size,
            max_wait_ms=serve.max_wait_ms,
            executor=self.executor,
            only=self.online.models,
            on_batch=self._batch_observer,
            on_reload=self._on_reload,
        )
        self.cache = PredictionCache(
            cfg.url("cache"), self.online.cache_max_entries, self.online.cache_ttl_s
        )
        from loopml.logs.eventlog import EventLog
        from loopml.storage.online import OnlineStore, open_kv

        self.eventlog = EventLog.from_config(cfg)
        self.predlog = prediction_log(
            cfg,
            self.eventlog,
            self.online,
            on_count=lambda result, n: self.metrics.child(self.metrics.predlog, result).inc(n),
        )
        self.online_store = OnlineStore(cfg.url("online"))
        cache_url = cfg.url("cache")
        jobs_url = (
            cache_url
            if not cache_url.startswith("memory://")
            else f"sqlite:///{cfg.state_dir.resolve() / 'jobs.db'}"
        )
        self.jobs = JobStore(
            open_kv(jobs_url), max_jobs=self.online.max_jobs, ttl_s=self.online.job_ttl_s
        )
        self.dataplane = DataPlane(
            self.repository,
            self.settings_for,
            metrics=self.metrics,
            cache=self.cache,
            predlog=self.predlog,
            timeout_ms=serve.timeout_ms,
            online_store=self.online_store,
        )
        from loopml.rollout.router import ExperimentRouter

        # Experiments (shadow, A/B, canary, interleaving, bandit) sit in front of the data
        # plane; requests for models without a running experiment pass straight through.
        self.dataplane = ExperimentRouter.from_config(cfg, self.dataplane)
        self.grpc_enabled = grpc and bool(self.online.grpc_port)
        self.grpc: Any = None
        self.grpc_port: int | None = None
        self.started_at = time.time()
        self.ready_at: float | None = None
        self._tasks: list[asyncio.Task] = []
        self._froze = False

    def settings_for(self, name: str) -> ModelSettings:
        """A model's settings, remembered for configured and served names only.

        Requests can name any model, so remembering every name asked for would let a
        client grow this table without bound.
        """
        found = self._settings.get(name)
        if found is None:
            found = model_settings(name, self._models_section)
            if name in self._models_section or name in self.repository.default:
                self._settings[name] = found
        return found

    def _batch_observer(self, name: str) -> Any:
        child = self.metrics.child(self.metrics.batch_size, name)
        return child.observe

    def _on_reload(self, model: Any) -> None:
        m = self.metrics
        m.child(m.loaded, model.name).set(model.version)
        m.child(m.reloads, model.name).inc()

    # -- lifecycle ---------------------------------------------------------------------------
    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        self.started_at = time.time()
        await self.dataplane.open()
        if self.grpc_enabled:
            from loopml.serve.online.grpc_server import GrpcServer

            self.grpc = GrpcServer(self, self.online.grpc_port or 0, self.cfg.serve.host)
            self.grpc_port = await asyncio.to_thread(self.grpc.start, loop)
        if self.load_before_serving:
            await self._load()
        self._tasks.append(loop.create_task(self._load_then_poll()))
        self._tasks.append(loop.create_task(self.predlog.run()))

    async def _load(self) -> None:
        await self.repository.start()
        self._froze = freeze_long_lived()  # libraries and models live as long as we do
        self.ready_at = time.time()
        log.info(
            "ready in %.2f s with models %s",
            self.ready_at - self.started_at,
            sorted(self.repository.default),
        )

    async def _load_then_poll(self) -> None:
        if self.ready_at is None:
            await self._load()
        await self.repository.poll_forever(self.online.reload_interval_s)

    async def shutdown(self) -> None:
        if self.grpc is not None:
            await asyncio.to_thread(self.grpc.stop)
        await self.jobs.aclose()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.dataplane.aclose()
        await self.predlog.aclose()
        await self.cache.aclose()
        if self._froze:  # an app embedded in a longer-lived process leaves nothing frozen
            gc.unfreeze()
            self._froze = False
        self.executor.shutdown(wait=False)


def prediction_log(
    cfg: ProjectConfig,
    eventlog: Any,
    online: Any,
    on_count: Any = None,
) -> PredictionLog:
    """The project's prediction log for one serving process: JSON lines into the event
    log's spool on local disk (no pyarrow in the process), Parquet appends elsewhere."""
    spool = eventlog.spool_writer("prediction", seal_s=online.log_seal_s)
    return PredictionLog(
        spool.write if spool else functools.partial(eventlog.append_generated, "prediction"),
        close=spool.seal if spool else None,
        due=spool.due if spool else None,
        sample_rate=cfg.serve.log_sample_rate,
        flush_s=online.log_flush_s,
        on_count=on_count,
    )
