"""loopml.registry: versioned models, verified artifacts, audited aliases (floor 2).

Names resolve lazily so ``import loopml.registry`` does not load SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "AliasMove": "loopml.registry.records",
    "ModelVersion": "loopml.registry.records",
    "Registry": "loopml.registry.registry",
    "parse_ref": "loopml.registry.records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
