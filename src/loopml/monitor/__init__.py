"""loopml.monitor: drift, data quality, delayed-label performance, ops metrics, alerts.

Names resolve lazily, so ``import loopml.monitor`` loads neither numpy nor SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "AlertEngine": "loopml.monitor.alerts",
    "AlertRule": "loopml.monitor.alerts",
    "DriftConfig": "loopml.monitor.drift",
    "DriftReport": "loopml.monitor.drift",
    "Monitor": "loopml.monitor.service",
    "MonitorStore": "loopml.monitor.store",
    "QualityConfig": "loopml.monitor.quality",
    "ReferenceProfile": "loopml.monitor.profile",
    "WindowSummary": "loopml.monitor.summary",
    "build_profile": "loopml.monitor.profile",
    "check_drift": "loopml.monitor.drift",
    "check_quality": "loopml.monitor.quality",
    "compare": "loopml.monitor.drift",
    "parse_metrics": "loopml.monitor.ops",
    "scrape": "loopml.monitor.ops",
    "summarise": "loopml.monitor.summary",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.monitor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
