"""loopml.features: feature views, point-in-time training sets, latest values, transforms.

Names are resolved lazily so that importing the package stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "FeatureCatalog": "loopml.features.views",
    "FeatureView": "loopml.features.views",
    "build_training_set": "loopml.features.training",
    "default_catalog": "loopml.features.views",
    "latest_values": "loopml.features.training",
    "make_preprocessor": "loopml.features.transforms",
    "point_in_time": "loopml.features.pointintime",
    "register_onnx_converters": "loopml.features.onnx_export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.features' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
