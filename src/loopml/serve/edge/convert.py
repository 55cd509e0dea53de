"""Convert a trained model, preprocessing included, into one self-describing ONNX graph.

Edge clients (a phone, a browser, a device) run the graph without Python, so the
preprocessing (imputers, scalers, one-hot and ordinal encoders inside a
``ColumnTransformer``) must be inside it, and the graph's interface must be the
signature's: one ``[n, 1]`` input per column, named like the column (``float`` for
numbers, ``string`` for categories, missing category = ``""``), and the outputs
``label`` + ``probabilities`` (classification) or ``variable`` (regression).

Supported: scikit-learn estimators and pipelines that skl2onnx converts, LightGBM
(``LGBMClassifier``/``LGBMRegressor`` alone or as a pipeline's last step, and a raw
``lightgbm.Booster``). Anything else is refused with the list of what works.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from loopml.core.errors import ValidationError
from loopml.core.signature import Signature
from loopml.predict.onnx import PROBABILITIES, SIGNATURE_KEY, VARIABLE

#: Opsets the bundle targets: old enough for onnxruntime-web, new enough for every converter.
OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}
_MATRIX_INPUT = "features"
_BOOSTER_OPSET = 15  # the highest onnxmltools' LightGBM converter accepts


def to_onnx(model: Any, signature: Signature, name: str = "model", version: int = 0) -> Any:
    """Convert ``model`` to an ``onnx.ModelProto`` whose inputs follow ``signature``.

    Raises
    ------
    ValidationError
        The model type has no converter, or its columns cannot be mapped to the signature.
    """
    if _is_booster(model):
        proto = _convert_booster(model, signature)
    elif hasattr(model, "fit") and hasattr(model, "get_params"):
        proto = _convert_sklearn(model, signature)
    else:
        raise ValidationError(
            f"cannot convert a {type(model).__module__}.{type(model).__name__} to ONNX; loopml "
            "exports scikit-learn estimators/pipelines and LightGBM models (LGBMClassifier, "
            "LGBMRegressor, lightgbm.Booster)",
            field="model",
        )
    _check_outputs(proto, signature)
    describe(proto, signature, name=name, version=version)
    return proto


def describe(proto: Any, signature: Signature, name: str, version: int) -> Any:
    """Stamp the signature and model identity into the graph so the file explains itself."""
    props = {p.key: p.value for p in proto.metadata_props}
    props[SIGNATURE_KEY] = json.dumps(signature.to_dict(), default=str)
    props["loopml.model"] = name
    props["loopml.version"] = str(version)
    del proto.metadata_props[:]
    for key, value in sorted(props.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "loopml"
    proto.doc_string = f"{name} v{version}: {signature.output}"
    return proto


# -- scikit-learn ----------------------------------------------------------------------
def _convert_sklearn(model: Any, signature: Signature) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    register_lightgbm_converters()
    model = _for_conversion(model)
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    options = {id(final): {"zipmap": False}} if hasattr(final, "classes_") else None
    if _takes_named_columns(model):
        types = _initial_types(signature)
        try:
            return convert_sklearn(model, initial_types=types, options=options, target_opset=OPSET)
        except Exception as exc:  # noqa: BLE001 - converter errors are many and untyped
            raise _unsupported(model, exc) from exc
    names = _matrix_columns(model, signature)
    types = [(_MATRIX_INPUT, FloatTensorType([None, len(names)]))]
    try:
        proto = convert_sklearn(model, initial_types=types, options=options, target_opset=OPSET)
    except Exception as exc:  # noqa: BLE001
        raise _unsupported(model, exc) from exc
    return _split_matrix_input(proto, names, signature)


def _for_conversion(model: Any) -> Any:
    """A copy with string imputers rewritten for ONNX, where a missing category is ``""``.

    scikit-learn marks a missing category as NaN; ONNX string tensors cannot hold NaN,
    so loopml feeds ``""`` instead and the copy's imputers look for ``""``. The parity
    check proves the rewrite kept behaviour.
    """
    import numpy as np
    from sklearn.impute import SimpleImputer

    model = copy.deepcopy(model)
    for est in _walk(model):
        if isinstance(est, SimpleImputer) and _is_nan(est.missing_values):
            stats = getattr(est, "statistics_", None)
            if stats is not None and np.asarray(stats).dtype.kind in "OUS":
                est.missing_values = ""
    return model


def _walk(est: Any) -> list[Any]:
    found = [est]
    children: list[Any] = []
    if hasattr(est, "steps"):
        children = [s for _, s in est.steps]
    elif hasattr(est, "transformers_"):
        children = [t for _, t, _ in est.transformers_ if not isinstance(t, str)]
    elif hasattr(est, "transformer_list"):
        children = [t for _, t in est.transformer_list]
    for child in children:
        found.extend(_walk(child))
    return found


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _takes_named_columns(model: Any) -> bool:
    first = model.steps[0][1] if hasattr(model, "steps") else model
    if not hasattr(first, "transformers_"):
        return False
    return all(
        isinstance(cols, list | tuple) and all(isinstance(c, str) for c in cols)
        or isinstance(cols, str)
        for _, _, cols in first.transformers_
        if not (isinstance(cols, list | tuple) and len(cols) == 0)
    )


def _initial_types(signature: Signature) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    return [
        (c.name, StringTensorType([None, 1]) if c.kind == "category" else FloatTensorType([None, 1]))
        for c in signature.inputs
    ]


def _matrix_columns(model: Any, signature: Signature) -> list[str]:
    """The column order a matrix model was fitted with (its ``feature_names_in_``)."""
    fitted = getattr(model, "feature_names_in_", None)
    names = [str(n) for n in fitted] if fitted is not None else signature.names
    unknown = [n for n in names if n not in signature.names]
    if unknown:
        raise ValidationError(
            f"the model was fitted on column(s) {unknown} that its signature "
            f"{signature.names} lacks; register it with a signature inferred from the "
            "training frame",
            field="signature",
        )
    specs = {c.name: c for c in signature.inputs}
    uncoded = [n for n in names if specs[n].kind == "category" and not specs[n].categories]
    if uncoded:
        raise ValidationError(
            f"column(s) {uncoded} are categories without recorded categories, but the model "
            "takes a numeric matrix; record the categories in the signature (their codes are "
            "what the model splits on) or put an encoder inside the model as a "
            "ColumnTransformer step",
            field="signature",
        )
    return names


def _split_matrix_input(proto: Any, names: list[str], signature: Signature) -> Any:
    """Replace the single ``[n, k]`` input by one ``[n, 1]`` input per column + a Concat.

    A category column becomes its recorded code (pandas ``category`` order, what
    LightGBM splits on); a missing or unseen category becomes NaN, as in LightGBM.
    """
    from onnx import TensorProto, helper

    specs = {c.name: c for c in signature.inputs}
    graph = proto.graph
    kept = [i for i in graph.input if i.name != _MATRIX_INPUT]
    inputs, nodes, parts = [], [], []
    for name in names:
        spec = specs[name]
        if spec.kind != "category":
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1]))
            parts.append(name)
            continue
        inputs.append(helper.make_tensor_value_info(name, TensorProto.STRING, [None, 1]))
        code = f"loopml_code_{name}"
        nodes.append(
            helper.make_node(
                "LabelEncoder", [name], [code], domain="ai.onnx.ml", name=code,
                keys_strings=[str(c) for c in spec.categories or ()],
                values_floats=[float(i) for i in range(len(spec.categories or ()))],
                default_float=float("nan"),
            )  # fmt: skip
        )
        parts.append(code)
    nodes.append(helper.make_node("Concat", parts, [_MATRIX_INPUT], axis=1, name="loopml_columns"))
    del graph.input[:]
    graph.input.extend(inputs + kept)
    for node in reversed(nodes):
        graph.node.insert(0, node)
    if nodes[:-1] and not any(o.domain == "ai.onnx.ml" for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid("ai.onnx.ml", OPSET["ai.onnx.ml"]))
    return proto


# -- LightGBM --------------------------------------------------------------------------
def _is_booster(model: Any) -> bool:
    return type(model).__module__.split(".")[0] == "lightgbm" and hasattr(model, "dump_model")


def _convert_booster(model: Any, signature: Signature) -> Any:
    """A raw ``lightgbm.Booster`` (the scikit-learn wrappers go through skl2onnx)."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    names = [str(n) for n in model.feature_name()]
    if all(n == f"Column_{i}" for i, n in enumerate(names)):  # fitted on a bare matrix
        if len(names) != len(signature.inputs):
            raise ValidationError(
                f"the LightGBM model takes {len(names)} unnamed features but its signature "
                f"has {len(signature.inputs)} columns {signature.names}; register it with the "
                "signature of the frame it was trained on",
                field="signature",
            )
        names = signature.names
    names = _matrix_columns(_Named(names), signature)
    types = [(_MATRIX_INPUT, FloatTensorType([None, len(names)]))]
    try:
        proto = convert_lightgbm(
            model, initial_types=types, zipmap=False, target_opset=_BOOSTER_OPSET
        )
    except Exception as exc:  # noqa: BLE001
        raise _unsupported(model, exc) from exc
    return _split_matrix_input(proto, names, signature)


class _Named:
    def __init__(self, names: list[str]) -> None:
        self.feature_names_in_ = names


_REGISTERED = False


def register_lightgbm_converters() -> None:
    """Teach skl2onnx to convert LightGBM estimators that sit inside scikit-learn pipelines."""
    global _REGISTERED
    if _REGISTERED:
        return
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
        options={"split": None},
    )
    _REGISTERED = True


# -- checks ----------------------------------------------------------------------------
def _check_outputs(proto: Any, signature: Signature) -> None:
    outputs = [o.name for o in proto.graph.output]
    wanted = VARIABLE if signature.task == "regression" else PROBABILITIES
    if wanted not in outputs:
        raise ValidationError(
            f"the converted graph has outputs {outputs}, not {wanted!r}: the model's task does "
            f"not match its signature task {signature.task!r}; register it with the right task",
            field="task",
        )


def _unsupported(model: Any, exc: Exception) -> ValidationError:
    return ValidationError(
        f"ONNX conversion of {type(model).__name__} failed: {exc}. loopml converts what "
        "skl2onnx and onnxmltools support (linear models, trees, forests, gradient boosting, "
        "LightGBM, MLPs, with imputers, scalers, one-hot and ordinal encoders); replace the "
        "unsupported step or serve the model online instead",
        field="model",
    )
