"""loopml.jobs: the scheduler (cron, history, retries, leases) and the retraining loop.

Names resolve lazily, so ``import loopml.jobs`` loads neither SQLAlchemy nor training code.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "JobSpec": "loopml.jobs.store",
    "JobStore": "loopml.jobs.store",
    "LoopReport": "loopml.jobs.loop",
    "RetrainResult": "loopml.jobs.retrain",
    "RetrainSpec": "loopml.jobs.retrain",
    "RunRecord": "loopml.jobs.store",
    "Scheduler": "loopml.jobs.scheduler",
    "approve": "loopml.jobs.retrain",
    "retrain": "loopml.jobs.retrain",
    "run_monitoring_loop": "loopml.jobs.loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.jobs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
