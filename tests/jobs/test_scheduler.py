"""The scheduler on a real metadata DB: cron, history, retries, leases across processes."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loopml.core.config import ProjectConfig
from loopml.core.errors import ConflictError, ValidationError
from loopml.jobs.lease import Lease
from loopml.jobs.scheduler import Scheduler
from loopml.jobs.store import JobSpec

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _call(name: str, target: str, schedule: str | None = None, **kwargs) -> JobSpec:
    retries = kwargs.pop("max_retries", 2)
    delay = kwargs.pop("retry_delay_s", 0.0)
    return JobSpec(
        name,
        "call",
        schedule,
        {"target": f"tests.jobs.targets:{target}", "kwargs": kwargs},
        max_retries=retries,
        retry_delay_s=delay,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def cfg(request, tmp_path) -> ProjectConfig:
    """The scheduler's metadata on each backend."""
    data: dict = {"project": {"name": "jobs"}}
    if request.param == "postgres":
        data["storage"] = {"metadata": request.getfixturevalue("postgres_schema")}
    return ProjectConfig.from_dict(data, root=tmp_path)


@pytest.fixture
def sqlite_cfg(tmp_path) -> ProjectConfig:
    return ProjectConfig.from_dict({"project": {"name": "jobs"}}, root=tmp_path)


@pytest.fixture
def postgres_cfg(tmp_path, postgres_schema) -> ProjectConfig:
    data = {"project": {"name": "jobs"}, "storage": {"metadata": postgres_schema}}
    return ProjectConfig.from_dict(data, root=tmp_path)


def test_cron_job_runs_once_per_due_time_and_history_records_it(cfg, tmp_path):
    clock = Clock(T0)
    sched = Scheduler(cfg, clock=clock)
    out = tmp_path / "runs.txt"
    spec = sched.add(_call("every-5", "record", "*/5 * * * *", path=str(out)))
    assert spec.next_run_at == T0 + dt.timedelta(minutes=5)
    assert sched.tick() == []  # not due yet
    clock.now = T0 + dt.timedelta(minutes=5, seconds=3)
    (run,) = sched.tick()
    assert (run.status, run.trigger, run.attempt, run.result) == (
        "succeeded",
        "schedule",
        1,
        {"executions": 1},
    )
    assert sched.tick() == []  # the same due time never runs twice
    clock.now = T0 + dt.timedelta(hours=2)  # missed slots while down: caught up once
    assert len(sched.tick()) == 1
    assert sched.store.get("every-5").next_run_at == T0 + dt.timedelta(hours=2, minutes=5)
    assert [r.status for r in sched.store.history("every-5")] == ["succeeded", "succeeded"]
    assert out.read_text().count("ran") == 2


def test_failures_retry_with_backoff_until_success(cfg, tmp_path):
    clock = Clock(T0)
    sched = Scheduler(cfg, clock=clock)
    sched.add(
        _call(
            "flaky",
            "fail_until",
            path=str(tmp_path / "f"),
            failures=2,
            retry_delay_s=60,
            max_retries=3,
        )
    )
    first = sched.run_now("flaky")
    assert first.status == "failed" and "planned failure 1 of 2" in first.error
    assert sched.tick() == []  # the retry waits 60 s
    clock.now += dt.timedelta(seconds=61)
    (second,) = sched.tick()
    assert (second.status, second.attempt, second.first_run) == ("failed", 2, first.id)
    clock.now += dt.timedelta(seconds=100)
    assert sched.tick() == []  # backoff doubled to 120 s
    clock.now += dt.timedelta(seconds=30)
    (third,) = sched.tick()
    assert (third.status, third.attempt, third.trigger) == ("succeeded", 3, "retry")


def test_retries_run_out(cfg, tmp_path):
    sched = Scheduler(cfg)
    sched.add(_call("doomed", "fail_until", path=str(tmp_path / "f"), failures=9, max_retries=1))
    sched.run_now("doomed")
    sched.tick()
    assert [(r.attempt, r.status) for r in sched.store.history("doomed")] == [
        (2, "failed"),
        (1, "failed"),
    ]
    assert sched.tick() == []


def _spawn(cfg: ProjectConfig, job: str, ttl: float) -> subprocess.Popen:
    code = (
        "import sys\n"
        "from loopml.core.config import ProjectConfig\n"
        "from loopml.jobs.scheduler import Scheduler\n"
        f"cfg = ProjectConfig.from_dict({{'storage': {{'metadata': {cfg.url('metadata')!r}}}}},"
        f" root={str(cfg.root)!r})\n"
        f"Scheduler(cfg, lease_ttl={ttl}).run_now({job!r})\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)


def test_a_job_runs_at_most_once_at_a_time_across_processes(postgres_cfg, tmp_path):
    cfg = postgres_cfg  # two processes on the real database (the lease race covers both)
    out = tmp_path / "sleep.txt"
    sched = Scheduler(cfg, lease_ttl=5)
    sched.add(_call("slow", "sleepy", path=str(out), seconds=1.5))
    child = _spawn(cfg, "slow", ttl=5)
    try:
        _wait_for(out)
        with pytest.raises(ConflictError, match="already running"):
            sched.run_now("slow")
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
    assert out.read_text().count("ran") == 1
    statuses = sorted(r.status for r in sched.store.history("slow"))
    assert statuses == ["failed", "succeeded"]  # the refused attempt is recorded, not run


def test_a_killed_process_leaves_a_crashed_run_that_is_retried(sqlite_cfg, tmp_path):
    cfg = sqlite_cfg
    out = tmp_path / "sleep.txt"
    sched = Scheduler(cfg, lease_ttl=1.0)
    sched.add(_call("long", "sleepy", path=str(out), seconds=0.2))
    # the child runs a 60 s version of the same job and is killed half-way
    sched.store.add(_call("long", "sleepy", path=str(out), seconds=60), replace=True)
    child = _spawn(cfg, "long", ttl=1.0)
    try:
        _wait_for(out)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    (running,) = sched.store.running()
    sched.store.add(_call("long", "sleepy", path=str(out), seconds=0.2), replace=True)
    assert sched.recover() == []  # its lease is still live: not presumed dead yet
    time.sleep(1.3)
    finished = sched.tick()
    history = {r.id: r for r in sched.store.history("long")}
    assert history[running.id].status == "crashed"
    assert "stopped renewing its lease" in history[running.id].error
    assert [(r.attempt, r.status, r.first_run) for r in finished] == [(2, "succeeded", running.id)]


def test_lease_race_has_exactly_one_winner(cfg):
    sched = Scheduler(cfg)
    barrier = threading.Barrier(8)
    wins = []

    def contend() -> None:
        lease = Lease(sched.store.engine, "contended", ttl=30)
        barrier.wait()
        if lease.acquire():
            wins.append(lease.owner)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_bad_definitions_are_refused_with_the_fix(cfg):
    sched = Scheduler(cfg)
    with pytest.raises(ValidationError, match="not a cron expression"):
        sched.add(JobSpec("x", "call", "every day"))
    with pytest.raises(ValidationError, match="did you mean 'retrain'"):
        sched.add(JobSpec("x", "retrian"))
    sched.add(JobSpec("x", "call", params={}))
    with pytest.raises(ConflictError, match="already exists"):
        sched.add(JobSpec("x", "call"))
    run = sched.run_now("x")
    assert run.status == "failed" and "needs parameter 'target'" in run.error
