"""Job definitions and their run history, in the metadata database.

Every attempt is a row in ``job_runs``; a retry is a new row pointing at the first
attempt, so history shows exactly what happened (queued, running, succeeded, failed,
crashed) and when. State changes are conditional updates, so two processes never
claim the same run.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from loopml.core.clock import to_utc, utcnow
from loopml.core.config import ProjectConfig
from loopml.core.errors import ConflictError, NotFoundError, ValidationError, did_you_mean
from loopml.core.names import check_name
from loopml.jobs.schedule import check_cron, next_run
from loopml.jobs.tables import ensure_tables, jobs, runs
from loopml.storage.sql import engine_for

STATUSES = ("crashed", "failed", "queued", "running", "succeeded")


@dataclass(frozen=True)
class JobSpec:
    """A named job: what kind of work, with which parameters, on which schedule."""

    name: str
    kind: str
    schedule: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    max_retries: int = 2
    retry_delay_s: float = 60.0
    next_run_at: dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "schedule": self.schedule,
            "params": self.params,
            "enabled": self.enabled,
            "max_retries": self.max_retries,
            "retry_delay_s": self.retry_delay_s,
            "next_run_at": self.next_run_at.isoformat() if self.next_run_at else None,
        }


@dataclass(frozen=True)
class RunRecord:
    """One attempt of one job."""

    id: int
    job: str
    attempt: int
    status: str
    trigger: str
    not_before: dt.datetime
    queued_at: dt.datetime
    first_run: int | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    owner: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("not_before", "queued_at", "started_at", "finished_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


class JobStore:
    """CRUD for jobs and runs.

    >>> import tempfile
    >>> store = JobStore(f"sqlite:///{tempfile.mkdtemp()}/meta.db")
    >>> store.add(JobSpec("nightly-drift", "drift_check", "0 3 * * *", {"model": "ctr"})).kind
    'drift_check'
    >>> [j.name for j in store.list()]
    ['nightly-drift']
    """

    def __init__(self, url: str, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.engine = engine_for(url)
        self.clock = clock
        ensure_tables(self.engine)

    @classmethod
    def from_config(cls, cfg: ProjectConfig, clock: Callable[[], dt.datetime] = utcnow) -> JobStore:
        return cls(cfg.url("metadata"), clock)

    # -- jobs ------------------------------------------------------------------------------
    def add(self, spec: JobSpec, replace: bool = False, now: dt.datetime | None = None) -> JobSpec:
        """Create a job (or replace it); its first due time is computed from the schedule."""
        check_name(spec.name, "job name")
        if spec.schedule is not None:
            check_cron(spec.schedule)
        if spec.max_retries < 0 or spec.retry_delay_s < 0:
            raise ValidationError(
                f"job {spec.name}: max_retries and retry_delay_s must be >= 0, got "
                f"{spec.max_retries} and {spec.retry_delay_s}",
                field="max_retries",
            )
        now = now or self.clock()
        due = next_run(spec.schedule, now) if spec.schedule else None
        row = {
            "name": spec.name,
            "kind": spec.kind,
            "schedule": spec.schedule,
            "params": json.dumps(spec.params, sort_keys=True),
            "enabled": spec.enabled,
            "max_retries": int(spec.max_retries),
            "retry_delay_s": float(spec.retry_delay_s),
            "next_run_at": due,
            "created_at": now,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(jobs.c.name).where(jobs.c.name == spec.name)).first()
            if exists and not replace:
                raise ConflictError(
                    f"job {spec.name!r} already exists; pass replace=True (--replace) to "
                    "redefine it or choose another name",
                    job=spec.name,
                )
            if exists:
                conn.execute(sa.delete(jobs).where(jobs.c.name == spec.name))
            conn.execute(sa.insert(jobs).values(**row))
        return self.get(spec.name)

    def get(self, name: str) -> JobSpec:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.name == name)).mappings().first()
            if row is None:
                names = list(conn.execute(sa.select(jobs.c.name)).scalars())
        if row is None:
            raise NotFoundError(
                f"no job named {name!r}; {did_you_mean(name, names)} (add one with "
                "`loopml jobs add`)",
                job=name,
            )
        return _spec(row)

    def list(self) -> list[JobSpec]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(jobs).order_by(jobs.c.name)).mappings()
            return [_spec(r) for r in rows]

    def remove(self, name: str) -> None:
        self.get(name)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(jobs).where(jobs.c.name == name))

    def set_enabled(self, name: str, enabled: bool) -> JobSpec:
        self.get(name)
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.name == name)
                .values(enabled=enabled, updated_at=self.clock())
            )
        return self.get(name)

    def advance(self, spec: JobSpec, now: dt.datetime) -> bool:
        """Move a due job's next time past ``now``; True for the one process that did it."""
        if spec.schedule is None or spec.next_run_at is None:
            return False
        with self.engine.begin() as conn:
            changed = conn.execute(
                sa.update(jobs)
                .where(jobs.c.name == spec.name, jobs.c.next_run_at == spec.next_run_at)
                .values(next_run_at=next_run(spec.schedule, now), updated_at=now)
            ).rowcount
        return changed == 1

    # -- runs ------------------------------------------------------------------------------
    def enqueue(
        self,
        job: str,
        trigger: str = "manual",
        *,
        attempt: int = 1,
        first_run: int | None = None,
        not_before: dt.datetime | None = None,
        result: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Queue one attempt of ``job`` to start no earlier than ``not_before``."""
        self.get(job)
        now = self.clock()
        row = {
            "job": job,
            "attempt": attempt,
            "first_run": first_run,
            "status": "queued",
            "trigger": trigger,
            "not_before": not_before or now,
            "queued_at": now,
            "result": json.dumps(result) if result else None,
        }
        with self.engine.begin() as conn:
            run_id = conn.execute(sa.insert(runs).values(**row)).inserted_primary_key[0]
        return self.run(int(run_id))

    def run(self, run_id: int) -> RunRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no job run with id {run_id}", run=run_id)
        return _record(row)

    def queued(self, now: dt.datetime, job: str | None = None) -> list[RunRecord]:
        """Queued runs whose start time has come, oldest first."""
        query = sa.select(runs).where(runs.c.status == "queued", runs.c.not_before <= now)
        if job is not None:
            query = query.where(runs.c.job == job)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query.order_by(runs.c.id)).mappings()]

    def running(self) -> list[RunRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs).where(runs.c.status == "running")).mappings()
            return [_record(r) for r in rows]

    def claim(self, run_id: int, owner: str) -> bool:
        """Mark a queued run as running by ``owner``; False if someone else got it first."""
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    sa.update(runs)
                    .where(runs.c.id == run_id, runs.c.status == "queued")
                    .values(status="running", owner=owner, started_at=self.clock())
                ).rowcount
                == 1
            )

    def finish(
        self,
        run_id: int,
        status: str,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
        expect: str = "running",
    ) -> bool:
        """Record the outcome of a run that is still in state ``expect``."""
        if status not in STATUSES:
            raise ValidationError(f"run status {status!r} is not one of {STATUSES}")
        values: dict[str, Any] = {"status": status, "finished_at": self.clock(), "error": error}
        if result is not None:
            values["result"] = json.dumps(result, default=str)
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    sa.update(runs)
                    .where(runs.c.id == run_id, runs.c.status == expect)
                    .values(**values)
                ).rowcount
                == 1
            )

    def history(self, job: str | None = None, limit: int = 50) -> list[RunRecord]:
        """Runs, newest first."""
        query = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
        if job is not None:
            self.get(job)
            query = query.where(runs.c.job == job)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]


def _spec(row: Any) -> JobSpec:
    return JobSpec(
        row["name"],
        row["kind"],
        row["schedule"],
        json.loads(row["params"]),
        bool(row["enabled"]),
        int(row["max_retries"]),
        float(row["retry_delay_s"]),
        to_utc(row["next_run_at"]) if row["next_run_at"] is not None else None,
    )


def _record(row: Any) -> RunRecord:
    def ts(value: Any) -> dt.datetime | None:
        return to_utc(value) if value is not None else None

    return RunRecord(
        int(row["id"]),
        row["job"],
        int(row["attempt"]),
        row["status"],
        row["trigger"],
        to_utc(row["not_before"]),
        to_utc(row["queued_at"]),
        row["first_run"],
        ts(row["started_at"]),
        ts(row["finished_at"]),
        row["owner"],
        row["error"],
        json.loads(row["result"]) if row["result"] else None,
    )
