"""What ``loopml jobs ...`` and ``loopml retrain ...`` do, as plain functions.

The CLI parses arguments and prints what these return.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from loopml.core.config import ProjectConfig
from loopml.core.errors import ValidationError
from loopml.jobs.retrain import RetrainResult, RetrainSpec, approve, retrain
from loopml.jobs.scheduler import Scheduler
from loopml.jobs.store import JobSpec, RunRecord


def parse_params(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["model=ctr", "stateful=true", "train_days=3"]`` -> typed params.

    >>> parse_params(["model=ctr", "stateful=true", "train_days=3", "min_improvement=0.01"])
    {'model': 'ctr', 'stateful': True, 'train_days': 3, 'min_improvement': 0.01}
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError(
                f"--param {pair!r} must look like KEY=VALUE, e.g. --param model=ctr",
                field="param",
            )
        out[key.strip()] = _typed(value.strip())
    return out


def _typed(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    return value


def add_job(
    config: ProjectConfig,
    name: str,
    kind: str,
    *,
    schedule: str | None = None,
    params: dict[str, Any] | None = None,
    max_retries: int = 2,
    retry_delay_s: float = 60.0,
    replace: bool = False,
) -> JobSpec:
    """``loopml jobs add NAME KIND [--schedule CRON] [--param K=V ...]``."""
    spec = JobSpec(name, kind, schedule, dict(params or {}), True, max_retries, retry_delay_s)
    return Scheduler(config).add(spec, replace=replace)


def list_jobs(config: ProjectConfig) -> list[JobSpec]:
    """``loopml jobs ls``: every job with its schedule and next due time."""
    return Scheduler(config).store.list()


def run_job(config: ProjectConfig, name: str, progress: bool = True) -> RunRecord:
    """``loopml jobs run NAME``: run it now in this process (refused while it runs elsewhere)."""
    return Scheduler(config, progress=progress).run_now(name)


def history(config: ProjectConfig, name: str | None = None, limit: int = 20) -> list[RunRecord]:
    """``loopml jobs history [NAME]``: runs, newest first (status, attempt, error, result)."""
    return Scheduler(config).store.history(name, limit)


def start(
    config: ProjectConfig,
    *,
    poll_s: float = 5.0,
    stop: threading.Event | None = None,
    on_tick: Callable[[list[RunRecord]], None] | None = None,
    max_ticks: int | None = None,
) -> int:
    """``loopml jobs start``: the scheduler loop (Ctrl-C stops it between runs)."""
    scheduler = Scheduler(config, progress=True)
    try:
        return scheduler.serve(poll_s, stop=stop, on_tick=on_tick, max_ticks=max_ticks)
    except KeyboardInterrupt:
        return 0


def retrain_now(
    config: ProjectConfig,
    model: str,
    *,
    stateful: bool = False,
    approve_now: bool = False,
    progress: bool = True,
    **settings: Any,
) -> RetrainResult:
    """``loopml retrain MODEL [--stateful] [--approve]``: retrain, gate, and promote.

    Without ``--approve`` the promotion mode comes from ``[retrain] promotion`` in
    ``loopml.toml`` (``manual`` unless set: the candidate is pointed at ``challenger``
    and waits for ``loopml retrain approve MODEL``); with it, a candidate that passes
    the gate is promoted at once.
    """
    section = dict(config.section("retrain"))
    section.update(settings)
    section.update(model=model, stateful=stateful)
    if approve_now:
        section["promotion"] = "auto"
    else:
        section.setdefault("promotion", "manual")
    return retrain(config, RetrainSpec.from_dict(section), progress=progress)


def approve_candidate(
    config: ProjectConfig, model: str, version: int | None = None, actor: str | None = None
) -> Any:
    """``loopml retrain approve MODEL [VERSION]``: promote the gated candidate."""
    return approve(config, model, version, actor=actor)
