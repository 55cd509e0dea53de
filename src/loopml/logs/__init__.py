"""loopml.logs: typed, versioned events in Parquet, validated, de-duplicated, queried with SQL.

Names are resolved lazily so that importing the package stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "EventLog": "loopml.logs.eventlog",
    "IngestResult": "loopml.logs.eventlog",
    "backfill": "loopml.logs.evolution",
    "common_fields": "loopml.logs.evolution",
    "get_schema": "loopml.logs.schemas",
    "register_backfill": "loopml.logs.evolution",
    "rows_by_schema": "loopml.logs.evolution",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.logs' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
