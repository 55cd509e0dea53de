"""What the ``loopml experiment`` commands call: one function per command, project in.

They work on the metadata database and the registry directly, so no server needs to
be running; servers notice the change on their next tick (about a second) because
every change bumps the experiment's revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loopml.core.config import ProjectConfig
from loopml.rollout import lifecycle
from loopml.rollout.guardrails import Guardrails
from loopml.rollout.records import DEFAULT_RAMP, ExperimentSpec
from loopml.rollout.store import ExperimentStore


def _registry(cfg: ProjectConfig) -> Any:
    from loopml.registry import Registry

    return Registry.from_config(cfg)


def start_experiment(
    cfg: ProjectConfig,
    name: str,
    *,
    model: str,
    policy: str,
    arms: Sequence[str] | str,
    weights: Sequence[float] | str | None = None,
    ramp: Sequence[float] | str | None = None,
    metric: str = "click",
    alpha: float = 0.05,
    mde: float | None = None,
    guardrails: dict[str, float] | None = None,
    unit_header: str = "x-unit-id",
    seed: int | None = None,
    attribution_window_s: float = 86_400.0,
    actor: str = "cli",
) -> dict[str, Any]:
    """``loopml experiment start NAME --model M --policy P --arms a,b [...]``."""
    spec = ExperimentSpec.from_dict(
        {
            "name": name,
            "model": model,
            "policy": policy,
            "arms": arms,
            "weights": weights,
            "ramp": ramp if ramp is not None else list(DEFAULT_RAMP),
            "metric": metric,
            "alpha": alpha,
            "mde": mde,
            "guardrails": Guardrails.from_dict(guardrails).to_dict(),
            "unit_header": unit_header,
            "seed": seed,
            "attribution_window_s": attribution_window_s,
        }
    )
    registry = _registry(cfg)
    exp = lifecycle.start(
        ExperimentStore.from_config(cfg), spec, resolve=registry.resolve, actor=actor
    )
    return exp.to_dict()


def experiment_status(cfg: ProjectConfig, name: str | None = None) -> dict[str, Any]:
    """``loopml experiment status [NAME]``: one experiment in full, or a list of all.

    The project's event log is joined first, so outcomes logged as events count.
    """
    from loopml.rollout.analysis import summarize

    store = ExperimentStore.from_config(cfg)
    if name is None:
        return {"experiments": [e.to_dict() for e in store.list()]}
    exp = store.get(name)
    _join(cfg, store, exp)
    return summarize(store, exp)


def join_experiment_events(cfg: ProjectConfig, name: str, full: bool = False) -> dict[str, Any]:
    """``loopml experiment join NAME [--full]``: attribute the event log's clicks,
    conversions and feedback to the experiment's arms now (``full``: from its start)."""
    store = ExperimentStore.from_config(cfg)
    return _join(cfg, store, store.get(name), full=full)


def _join(cfg: ProjectConfig, store: ExperimentStore, exp: Any, full: bool = False) -> dict:
    from loopml.logs.eventlog import EventLog
    from loopml.rollout.eventjoin import join_events

    log = EventLog.from_config(cfg)
    settle = getattr(log, "settle", None)
    if settle is not None:
        settle()  # events still in a serving worker's spool count too
    return join_events(store, log, exp, full=full)


def stop_experiment(
    cfg: ProjectConfig, name: str, reason: str = "", actor: str = "cli"
) -> dict[str, Any]:
    """``loopml experiment stop NAME [--reason TEXT]``."""
    return lifecycle.stop(ExperimentStore.from_config(cfg), name, reason, actor).to_dict()


def promote_experiment(
    cfg: ProjectConfig,
    name: str,
    arm: str | None = None,
    reason: str = "",
    actor: str = "cli",
) -> dict[str, Any]:
    """``loopml experiment promote NAME [--arm ARM] [--reason TEXT]``: move the alias."""
    from loopml.rollout.analysis import winner

    store = ExperimentStore.from_config(cfg)
    return lifecycle.promote(
        store,
        name,
        _registry(cfg),
        arm,
        reason=reason,
        actor=actor,
        winner=lambda exp: winner(store, exp),
    )


def report_experiment(cfg: ProjectConfig, name: str, out: str | Path) -> Path:
    """``loopml experiment report NAME --out FILE``: the HTML report with plots."""
    from loopml.rollout.report import write_report

    store = ExperimentStore.from_config(cfg)
    exp = store.get(name)
    _join(cfg, store, exp)
    return write_report(store, exp, out)
