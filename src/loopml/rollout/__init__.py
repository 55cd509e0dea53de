"""loopml.rollout: testing in production (floor 4): shadow, A/B/n, canary, interleaving, bandit.

An experiment is a routing policy in front of one model name, stored in the metadata
database and changed at run time (CLI or admin API) without a restart. The
:class:`ExperimentRouter` wraps the online data plane; :mod:`.stats` holds the
statistics that decide; :mod:`.manage` has what the CLI calls. Names resolve lazily
so ``import loopml.rollout`` loads neither SQLAlchemy nor the web framework.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ABPolicy": "loopml.rollout.policies",
    "BanditPolicy": "loopml.rollout.policies",
    "CanaryPolicy": "loopml.rollout.policies",
    "Experiment": "loopml.rollout.records",
    "ExperimentRouter": "loopml.rollout.router",
    "ExperimentSpec": "loopml.rollout.records",
    "ExperimentStore": "loopml.rollout.store",
    "Guardrails": "loopml.rollout.guardrails",
    "InterleavePolicy": "loopml.rollout.policies",
    "POLICIES": "loopml.rollout.policies",
    "ShadowPolicy": "loopml.rollout.policies",
    "experiment_routes": "loopml.rollout.api",
    "summarize": "loopml.rollout.analysis",
    "team_draft": "loopml.rollout.interleaving",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.rollout' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
