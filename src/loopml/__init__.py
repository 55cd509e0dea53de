"""loopml: the whole life of a production ML model, on one machine or real infrastructure.

The package root stays import-light so that ``loopml --help`` is fast; the public
names below are resolved lazily on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "EventLog": "loopml.logs.eventlog",
    "FeatureView": "loopml.features.views",
    "LoopmlError": "loopml.core.errors",
    "Predictor": "loopml.predict.predictor",
    "Project": "loopml.project",
    "ProjectConfig": "loopml.core.config",
    "Registry": "loopml.registry.registry",
    "World": "loopml.sim.world",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
