"""Bandit policies and their closed loop against the simulated world, over the queue."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "BanditService": "loopml.serve.stream.bandits.service",
    "bandit_simulate": "loopml.serve.stream.bandits.simulate",
    "compare_policies": "loopml.serve.stream.bandits.simulate",
    "make_policy": "loopml.serve.stream.bandits.policies",
    "plot_regret": "loopml.serve.stream.bandits.simulate",
    "simulate_bandit": "loopml.serve.stream.bandits.simulate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.serve.stream.bandits' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
