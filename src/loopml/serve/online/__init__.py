"""loopml.serve.online: pattern 2, the online prediction service (REST + gRPC, V2 protocol).

Names resolve lazily so ``import loopml.serve.online`` loads no web framework.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "DataPlane": "loopml.serve.online.dataplane",
    "InferResult": "loopml.serve.online.dataplane",
    "ModelRepository": "loopml.serve.online.repository",
    "RegistrySource": "loopml.serve.online.repository",
    "StaticSource": "loopml.serve.online.repository",
    "create_app": "loopml.serve.online.app",
    "run": "loopml.serve.online.app",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.serve.online' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
