"""skl2onnx converters for the helper transformers of :mod:`loopml.features.transforms`.

skl2onnx converts scikit-learn's own transformers, but not ``FunctionTransformer(np.log1p)``,
not ``MissingIndicator`` and not a string imputer for NaN. Call
:func:`register_onnx_converters` once before ``skl2onnx.to_onnx`` on a pipeline built by
``make_preprocessor``; it is idempotent. In the ONNX graph, categorical inputs are string
tensors and a missing category is the empty string ``""``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_REGISTERED = False


def register_onnx_converters() -> None:
    """Teach skl2onnx the helper transformers of ``make_preprocessor`` (safe to call again)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.operator_converters.feature_hasher import convert_sklearn_feature_hasher
    from skl2onnx.shape_calculators.feature_hasher import calculate_sklearn_feature_hasher

    from loopml.features.transforms import CategoryImputer, HashEncoder, Log1pScaler, MissingFlags

    update_registered_converter(
        HashEncoder,
        "LoopmlHashEncoder",
        calculate_sklearn_feature_hasher,
        convert_sklearn_feature_hasher,
        options={"separator": None},
    )

    update_registered_converter(
        Log1pScaler,
        "LoopmlLog1pScaler",
        _same_shape,
        _convert_log1p,
    )
    update_registered_converter(
        MissingFlags,
        "LoopmlMissingFlags",
        _same_shape,
        _convert_missing_flags,
    )
    update_registered_converter(
        CategoryImputer,
        "LoopmlCategoryImputer",
        _same_shape,
        _convert_category_imputer,
    )
    _REGISTERED = True


def _same_shape(operator: Any) -> None:
    """Element-wise transformers: as many columns out as in, of the input's type."""
    first = operator.inputs[0]
    width = sum(v.get_second_dimension() or 0 for v in operator.inputs) or None
    operator.outputs[0].type = first.type.__class__([first.get_first_dimension(), width])


def _dtype(variable: Any) -> Any:
    from skl2onnx.common.data_types import guess_numpy_type

    return guess_numpy_type(variable.type)


def _convert_log1p(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.algebra.onnx_ops import OnnxAdd, OnnxLog

    opv = container.target_opset
    x = operator.inputs[0]
    one = np.array([1], dtype=_dtype(x))
    node = OnnxLog(
        OnnxAdd(x, one, op_version=opv), op_version=opv, output_names=operator.outputs[:1]
    )
    node.add_to(scope, container)


def _convert_missing_flags(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto
    from skl2onnx.algebra.onnx_ops import OnnxCast, OnnxIsNaN

    opv = container.target_opset
    x = operator.inputs[0]
    to = TensorProto.DOUBLE if _dtype(x) == np.float64 else TensorProto.FLOAT
    node = OnnxCast(
        OnnxIsNaN(x, op_version=opv), to=to, op_version=opv, output_names=operator.outputs[:1]
    )
    node.add_to(scope, container)


def _convert_category_imputer(scope: Any, operator: Any, container: Any) -> None:
    """The fitted imputer, seen by skl2onnx's string imputer with ``""`` as the missing value."""
    import copy

    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    proxy = copy.copy(operator.raw_operator)
    proxy.missing_values = ""
    original = operator.raw_operator
    operator.raw_operator = proxy
    try:
        convert_sklearn_imputer(scope, operator, container)
    finally:
        operator.raw_operator = original
