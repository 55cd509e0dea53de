"""Asynchronous predictions for slow models: submit, get a job id (202), poll for the result.

Seed 000 §4.2's answer to predictions that take longer than a client will hold a
connection open. Job state lives in a key-value store (SQLite under ``.loopml`` by
default, the cache's Redis when configured), so any worker or replica sharing it can
answer a poll. At most ``max_jobs`` run at once; beyond that a submit is refused with
503 instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from loopml.core.errors import LoopmlError, NotFoundError, UnavailableError, ValidationError
from loopml.storage.online import KeyValueStore

log = logging.getLogger("loopml.serve.online")


class JobStore:
    """Run coroutines as jobs and keep their status and result for ``ttl_s`` seconds."""

    def __init__(
        self,
        kv: KeyValueStore,
        *,
        max_jobs: int = 64,
        ttl_s: float = 3600.0,
        prefix: str = "loopml:jobs",
    ) -> None:
        self.kv = kv
        self.max_jobs = max_jobs
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._tasks: dict[str, asyncio.Task] = {}

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}:{job_id}"

    async def _put(self, job_id: str, doc: dict[str, Any]) -> None:
        await self.kv.aset_many(
            {self._key(job_id): orjson.dumps(doc, default=str)}, ttl_s=self.ttl_s
        )

    async def submit(self, work: Callable[[], Awaitable[dict[str, Any]]], **info: Any) -> str:
        """Start ``work`` in the background; return its job id at once."""
        if len(self._tasks) >= self.max_jobs:
            raise UnavailableError(
                f"{len(self._tasks)} asynchronous jobs are running (limit {self.max_jobs}); "
                "retry later",
                reason="jobs-full",
            )
        job_id = uuid.uuid4().hex
        await self._put(
            job_id, {"job_id": job_id, "status": "running", "submitted_at": time.time(), **info}
        )
        task = asyncio.get_running_loop().create_task(self._run(job_id, work, info))
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))
        return job_id

    async def _run(
        self, job_id: str, work: Callable[[], Awaitable[dict[str, Any]]], info: dict[str, Any]
    ) -> None:
        doc: dict[str, Any] = {"job_id": job_id, **info}
        try:
            result = await work()
            doc.update(status="succeeded", result=result)
        except LoopmlError as exc:
            doc.update(status="failed", error=exc.message, status_code=exc.status_code)
        except Exception as exc:  # noqa: BLE001 - reported to the poller, never lost
            log.exception("job %s failed", job_id)
            doc.update(status="failed", error=f"{type(exc).__name__}: {exc}", status_code=500)
        doc["finished_at"] = time.time()
        try:
            await self._put(job_id, doc)
        except Exception as exc:  # noqa: BLE001
            log.error("storing the result of job %s failed: %s", job_id, exc)

    async def get(self, job_id: str) -> dict[str, Any]:
        """The job's status document; 404 when unknown or expired."""
        if not (job_id.isalnum() and len(job_id) == 32):
            raise ValidationError(
                f"job id {job_id!r} is not a job id (32 hex characters)", field="job_id"
            )
        raw = (await self.kv.aget_many([self._key(job_id)]))[0]
        if raw is None:
            raise NotFoundError(
                f"job {job_id} not found: it never existed or its result expired after "
                f"{self.ttl_s:.0f} s",
                field="job_id",
            )
        return orjson.loads(raw)

    async def aclose(self) -> None:
        """Wait briefly for running jobs so their results are stored."""
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=5.0)
