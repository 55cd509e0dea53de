"""The scheduler: due jobs become runs, runs execute one at a time per job, failures retry.

One ``tick`` does three things, in this order:

1. **recover**: a run still marked running whose lease has expired belonged to a
   process that died; it is marked ``crashed`` and retried;
2. **enqueue**: every enabled job whose cron time has come gets one queued run (a
   conditional update makes sure only one scheduler does it, and a job that already
   has a run waiting is not queued twice);
3. **execute**: queued runs whose time has come run in this process, each under its
   job's lease, so two schedulers never run the same job at once.

A failed or crashed attempt is retried up to ``max_retries`` times, with exponential
backoff from ``retry_delay_s``. ``serve`` repeats ``tick`` until stopped.
"""

from __future__ import annotations

import datetime as dt
import threading
import traceback
from collections.abc import Callable

from loopml.core.clock import utcnow
from loopml.core.config import ProjectConfig
from loopml.core.errors import ConflictError
from loopml.jobs.kinds import KINDS, JobContext, check_kind, resolve
from loopml.jobs.lease import Lease, holder, new_owner
from loopml.jobs.store import JobSpec, JobStore, RunRecord


class Scheduler:
    """Run the project's jobs.

    Parameters
    ----------
    config: the project.
    lease_ttl: seconds without a heartbeat after which a running job is presumed dead.
    kinds: kind name -> ``"module:function"`` (defaults to :data:`loopml.jobs.kinds.KINDS`).
    progress: let jobs show progress bars.
    """

    def __init__(
        self,
        config: ProjectConfig,
        *,
        lease_ttl: float = 30.0,
        kinds: dict[str, str] | None = None,
        progress: bool = False,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.config = config
        self.store = JobStore.from_config(config, clock)
        self.lease_ttl = lease_ttl
        self.kinds = dict(KINDS if kinds is None else kinds)
        self.progress = progress
        self.clock = clock
        self.owner = new_owner()

    # -- definitions -----------------------------------------------------------------------
    def add(self, spec: JobSpec, replace: bool = False) -> JobSpec:
        """Define a job after checking its kind and schedule."""
        check_kind(spec.kind, self.kinds)
        return self.store.add(spec, replace=replace, now=self.clock())

    def trigger(self, job: str, reason: dict | None = None, trigger: str = "manual") -> RunRecord:
        """Queue a run now (alerts call this); it executes on the next tick.

        A job that already has a run waiting gets no second one: the waiting run is
        returned, so a burst of alerts retrains once.
        """
        waiting = [r for r in self.store.queued(self.clock() + dt.timedelta(days=3650), job)]
        if waiting:
            return waiting[0]
        return self.store.enqueue(job, trigger, result={"reason": reason} if reason else None)

    # -- one pass ------------------------------------------------------------------------------
    def tick(self, now: dt.datetime | None = None) -> list[RunRecord]:
        """Recover crashed runs, queue due jobs, execute what is ready; return finished runs."""
        now = now or self.clock()
        self.recover()
        self.enqueue_due(now)
        finished = []
        for run in self.store.queued(max(now, self.clock())):
            done = self.execute(run)
            if done is not None:
                finished.append(done)
        return finished

    def recover(self) -> list[RunRecord]:
        """Mark runs whose process died (lease expired or taken) as crashed; retry them."""
        crashed = []
        for run in self.store.running():
            lease = holder(self.store.engine, run.job)
            if lease is not None and lease["live"] and lease["owner"] == run.owner:
                continue
            note = (
                f"the process running it ({run.owner}) stopped renewing its lease; presumed crashed"
            )
            if self.store.finish(run.id, "crashed", error=note):
                crashed.append(self.store.run(run.id))
                self._retry(self.store.get(run.job), run)
        return crashed

    def enqueue_due(self, now: dt.datetime) -> list[RunRecord]:
        queued = []
        for spec in self.store.list():
            if not spec.enabled or spec.next_run_at is None or spec.next_run_at > now:
                continue
            if not self.store.advance(spec, now):
                continue  # another scheduler got it
            waiting = self.store.queued(now + dt.timedelta(days=3650), spec.name)
            if waiting or self._is_running(spec.name):
                continue
            queued.append(self.store.enqueue(spec.name, "schedule"))
        return queued

    def _is_running(self, job: str) -> bool:
        return any(r.job == job for r in self.store.running())

    # -- execution ------------------------------------------------------------------------------
    def run_now(self, job: str) -> RunRecord:
        """Queue and execute one run of ``job`` in this process; wait for it.

        Raises ConflictError when the job is running elsewhere (it holds the lease).
        """
        spec = self.store.get(job)
        run = self.store.enqueue(spec.name, "manual")
        done = self.execute(run)
        if done is None:
            lease = holder(self.store.engine, job) or {}
            self.store.finish(run.id, "failed", error="job was already running", expect="queued")
            raise ConflictError(
                f"job {job!r} is already running (held by {lease.get('owner', '?')} until "
                f"{lease.get('expires_at')}); wait for it or look at `loopml jobs history {job}`",
                job=job,
            )
        return done

    def execute(self, run: RunRecord) -> RunRecord | None:
        """Run one queued attempt under its job's lease; None if the job is busy."""
        lease = Lease(self.store.engine, run.job, ttl=self.lease_ttl, owner=self.owner)
        if not lease.acquire(run.id):
            return None
        try:
            if not self.store.claim(run.id, lease.owner):
                return None
            lease.start_heartbeat()
            spec = self.store.get(run.job)
            ctx = JobContext(self.config, spec, self.store.run(run.id), self.progress)
            try:
                fn = resolve(self.kinds[check_kind(spec.kind, self.kinds)])
                result = fn(ctx) or {}
            except Exception as exc:  # noqa: BLE001 - any job failure is recorded, then retried
                error = f"{type(exc).__name__}: {exc}\n{_short_traceback()}"
                self.store.finish(run.id, "failed", error=error)
                self._retry(spec, run)
            else:
                self.store.finish(run.id, "succeeded", result=result)
        finally:
            lease.release()
        return self.store.run(run.id)

    def _retry(self, spec: JobSpec, run: RunRecord) -> RunRecord | None:
        if run.attempt > spec.max_retries:
            return None
        delay = spec.retry_delay_s * (2 ** (run.attempt - 1))
        return self.store.enqueue(
            spec.name,
            "retry",
            attempt=run.attempt + 1,
            first_run=run.first_run or run.id,
            not_before=self.clock() + dt.timedelta(seconds=delay),
        )

    # -- the loop ---------------------------------------------------------------------------------
    def serve(
        self,
        poll_s: float = 5.0,
        stop: threading.Event | None = None,
        max_ticks: int | None = None,
        on_tick: Callable[[list[RunRecord]], None] | None = None,
    ) -> int:
        """Tick every ``poll_s`` seconds until ``stop`` is set; return the runs finished."""
        stop = stop or threading.Event()
        total = ticks = 0
        while not stop.is_set():
            finished = self.tick()
            total += len(finished)
            ticks += 1
            if on_tick is not None:
                on_tick(finished)
            if max_ticks is not None and ticks >= max_ticks:
                break
            stop.wait(poll_s)
        return total


def _short_traceback(limit: int = 6) -> str:
    return "".join(traceback.format_exc(limit=-limit).splitlines(keepends=True)[-2 * limit :])
