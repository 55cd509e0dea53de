"""Standard scaling computed in float64 inside a float32 graph, as scikit-learn computes it.

skl2onnx turns ``StandardScaler`` into one float32 ``Scaler`` node (a multiplication by
``1/std``). scikit-learn divides in float64 and trees then round to float32, so on a
feature with repeated values (an age, an hour) the two can land one float32 step
apart exactly where a tree threshold sits, and the prediction flips. This converter
casts to double, subtracts and divides with the fitted float64 statistics, and casts
back: the same IEEE operations as scikit-learn, so the float32 results agree bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_REGISTERED = False


def register_float64_scaler() -> None:
    """Make skl2onnx convert every ``StandardScaler`` with :func:`convert_standard_scaler`."""
    global _REGISTERED
    if _REGISTERED:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.shape_calculators.scaler import calculate_sklearn_scaler_output_shapes
    from sklearn.preprocessing import StandardScaler

    update_registered_converter(
        StandardScaler,
        "SklearnScaler",
        calculate_sklearn_scaler_output_shapes,
        convert_standard_scaler,
        overwrite=True,
    )
    _REGISTERED = True


def convert_standard_scaler(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx converter: Cast(double) -> Sub(mean) -> Div(scale) -> Cast(float)."""
    from onnx import TensorProto
    from skl2onnx.operator_converters.common import concatenate_variables

    op = operator.raw_operator
    if len(operator.inputs) > 1:
        source = concatenate_variables(scope, operator.inputs, container)
    else:
        source = operator.inputs[0].full_name
    out = operator.outputs[0].full_name
    current = scope.get_unique_variable_name("loopml_x64")
    container.add_node(
        "Cast", source, current, to=TensorProto.DOUBLE, name=scope.get_unique_operator_name("Cast")
    )
    steps = []
    if op.with_mean and getattr(op, "mean_", None) is not None:
        steps.append(("Sub", np.asarray(op.mean_, dtype=np.float64)))
    if op.with_std and getattr(op, "scale_", None) is not None:
        steps.append(("Div", np.asarray(op.scale_, dtype=np.float64)))
    for kind, values in steps:
        const = scope.get_unique_variable_name(f"loopml_{kind.lower()}")
        container.add_initializer(const, TensorProto.DOUBLE, [len(values)], values.tolist())
        result = scope.get_unique_variable_name("loopml_x64")
        container.add_node(
            kind, [current, const], result, name=scope.get_unique_operator_name(kind)
        )
        current = result
    container.add_node(
        "Cast", current, out, to=TensorProto.FLOAT, name=scope.get_unique_operator_name("Cast")
    )
