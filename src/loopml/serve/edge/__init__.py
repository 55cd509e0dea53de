"""loopml.serve.edge: pattern 3, models exported to run on the end client (floor 4).

``export_edge`` turns a registered model into a verified bundle (ONNX + manifest +
parity report, optionally compressed and with a browser page); ``load_bundle`` is the
device-side loader that refuses tampered files; ``edge_routes`` are the update routes
edge clients poll. Names resolve lazily so importing this package loads nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "EdgeBundle": "loopml.serve.edge.loader",
    "ExportResult": "loopml.serve.edge.export",
    "ParityReport": "loopml.serve.edge.parity",
    "TradeoffRow": "loopml.serve.edge.tradeoff",
    "edge_routes": "loopml.serve.edge.updates",
    "export_edge": "loopml.serve.edge.export",
    "load_bundle": "loopml.serve.edge.loader",
    "to_onnx": "loopml.serve.edge.convert",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.serve.edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
