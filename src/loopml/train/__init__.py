"""loopml.train: datasets, baselines, training, evaluation and run tracking (floor 3).

Names resolve lazily so importing this package loads no ML framework.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "FrameModel": "loopml.train.frame_model",
    "PopularityBaseline": "loopml.train.baselines",
    "PriorBaseline": "loopml.train.baselines",
    "Run": "loopml.train.tracking",
    "RunRecord": "loopml.train.tracking",
    "RunStore": "loopml.train.tracking",
    "SchemaEnsemble": "loopml.train.ensemble",
    "Splits": "loopml.train.datasets",
    "TrainResult": "loopml.train.trainer",
    "by_slice": "loopml.train.metrics",
    "calibration_curve": "loopml.train.metrics",
    "class_weights": "loopml.train.datasets",
    "correct_probability": "loopml.train.datasets",
    "evaluate": "loopml.train.metrics",
    "leaderboard": "loopml.train.trainer",
    "make_estimator": "loopml.train.recipes",
    "negative_downsample": "loopml.train.datasets",
    "time_split": "loopml.train.datasets",
    "train": "loopml.train.trainer",
    "train_table": "loopml.train.recipes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
