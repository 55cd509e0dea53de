"""loopml.predict: the Predictor interface and its flavours (floor 3).

``load_predictor(registry, name, ref)`` is the one way serving gets a model:
it fetches hash-verified bytes from the registry and wraps them by flavour.
Names resolve lazily so importing this package loads no ML framework.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "FLAVOURS": "loopml.predict.flavours",
    "Flavour": "loopml.predict.flavours",
    "LightGBMModel": "loopml.predict.lightgbm",
    "LightGBMPredictor": "loopml.predict.lightgbm",
    "Predictor": "loopml.predict.predictor",
    "SklearnPredictor": "loopml.predict.sklearn",
    "check_predictor": "loopml.predict.checks",
    "get_flavour": "loopml.predict.flavours",
    "load_model": "loopml.predict.flavours",
    "load_predictor": "loopml.predict.flavours",
    "predictor_for": "loopml.predict.flavours",
    "predictor_from_version": "loopml.predict.flavours",
    "save_model": "loopml.predict.flavours",
    "to_frame": "loopml.predict.frames",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.predict' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
