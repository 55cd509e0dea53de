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

import json
from typing import Any

from loopml.core.errors import ValidationError
from loopml.core.signature import Signature
from loopml.predict.onnx import PROBABILITIES, SIGNATURE_KEY, VARIABLE
from loopml.serve.edge.boosters import (
    exact_thresholds,
    is_lightgbm,
    lightgbm_to_onnx,
    register_lightgbm_converters,
)
from loopml.serve.edge.graphs import MATRIX_INPUT, correct_downsampling, split_matrix_input
from loopml.serve.edge.missing import for_onnx
from loopml.serve.edge.scalers import register_float64_scaler

#: Opsets the bundle targets: old enough for onnxruntime-web, new enough for every converter.
OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}


def to_onnx(model: Any, signature: Signature, name: str = "model", version: int = 0) -> Any:
    """Convert ``model`` to an ``onnx.ModelProto`` whose inputs follow ``signature``.

    Raises
    ------
    ValidationError
        The model type has no converter, or its columns cannot be mapped to the signature.
    """
    model, rate = unwrap(model)
    if is_lightgbm(model):
        proto = lightgbm_to_onnx(model, signature)
    elif hasattr(model, "fit") and hasattr(model, "get_params"):
        proto = _convert_sklearn(model, signature)
    else:
        raise ValidationError(
            f"cannot convert a {type(model).__module__}.{type(model).__name__} to ONNX; loopml "
            "exports scikit-learn estimators/pipelines and LightGBM models (LGBMClassifier, "
            "LGBMRegressor, lightgbm.Booster)",
            field="model",
        )
    if rate and signature.task == "binary":
        proto = correct_downsampling(proto, rate)
    _check_outputs(proto, signature)
    describe(proto, signature, name=name, version=version)
    return proto


def unwrap(model: Any) -> tuple[Any, float | None]:
    """The estimator inside a ``loopml.train.FrameModel``, and its downsampling rate."""
    if hasattr(model, "estimator_") and hasattr(model, "signature_"):
        return model.estimator_, getattr(model, "downsample_rate", None)
    return model, None


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


def describe_preprocessing(model: Any, signature: Signature) -> list[str]:
    """What the graph does to inputs before the estimator, in words, for the manifest.

    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LogisticRegression
    >>> from loopml.core.signature import ColumnSpec
    >>> describe_preprocessing(make_pipeline(StandardScaler(), LogisticRegression()),
    ...                        Signature((ColumnSpec("x"),)))
    ["columns ['x'] as a float32 matrix", 'StandardScaler', 'LogisticRegression']
    """
    model, rate = unwrap(model)
    steps = [s for _, s in model.steps] if hasattr(model, "steps") else [model]
    lines: list[str] = []
    if not hasattr(steps[0], "transformers"):
        coded = [c.name for c in signature.inputs if c.kind == "category"]
        lines.append(f"columns {signature.names} as a float32 matrix")
        if coded:
            lines.append(
                f"categories {coded} -> recorded category codes (unseen or missing -> NaN)"
            )
    for step in steps:
        if hasattr(step, "transformers"):
            for name, trans, cols in getattr(step, "transformers_", step.transformers):
                if isinstance(trans, str):
                    lines.append(
                        f"{name}: {trans} {list(cols) if not isinstance(cols, str) else cols}"
                    )
                    continue
                inner = [s for _, s in trans.steps] if hasattr(trans, "steps") else [trans]
                chain = " -> ".join(_step_name(s) for s in inner)
                lines.append(
                    f"{name}: {chain} on {list(cols) if not isinstance(cols, str) else cols}"
                )
        else:
            lines.append(_step_name(step))
    if rate or getattr(model, "downsample_rate", None):
        lines.append("probability corrected for negative downsampling")
    return lines


def _step_name(step: Any) -> str:
    params = {}
    for key in ("strategy", "fill_value", "handle_unknown", "n_estimators", "num_leaves"):
        value = getattr(step, key, None)
        if value is not None and not callable(value):
            params[key] = value
    inner = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return f"{type(step).__name__}({inner})" if inner else type(step).__name__


# -- scikit-learn ----------------------------------------------------------------------
def _convert_sklearn(model: Any, signature: Signature) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    from loopml.features.onnx_export import register_onnx_converters

    register_lightgbm_converters()
    register_onnx_converters()  # loopml's own transformers (log scaling, missing flags, ...)
    register_float64_scaler()
    _patch_tree_ensemble()
    model = for_onnx(model)
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    options = {id(final): {"zipmap": False}} if hasattr(final, "classes_") else None
    named = _takes_named_columns(model)
    if named:
        types = _initial_types(signature)
    else:
        names = _matrix_columns(model, signature)
        types = [(MATRIX_INPUT, FloatTensorType([None, len(names)]))]
    try:
        proto = convert_sklearn(model, initial_types=types, options=options, target_opset=OPSET)
    except Exception as exc:  # noqa: BLE001 - converter errors are many and untyped
        raise _unsupported(model, exc) from exc
    if is_lightgbm(final):
        exact_thresholds(proto, final.booster_)
    return proto if named else split_matrix_input(proto, names, {}, OPSET["ai.onnx.ml"])


_PATCHED = False


def _patch_tree_ensemble() -> None:
    """Work around skl2onnx passing a Python bool into an ONNX int list (HistGradientBoosting).

    skl2onnx 1.20's tree helper sets ``missing = False`` for leaves, which current
    protobuf refuses in ``nodes_missing_value_tracks_true``; coercing it to int is
    exactly what the attribute means.
    """
    global _PATCHED
    if _PATCHED:
        return
    import skl2onnx.common.tree_ensemble as trees

    original = trees.add_node

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        flag = int(nodes_missing_value_tracks_true)
        return original(*args, nodes_missing_value_tracks_true=flag, **kwargs)

    trees.add_node = add_node
    _PATCHED = True


def _takes_named_columns(model: Any) -> bool:
    first = model.steps[0][1] if hasattr(model, "steps") else model
    if not hasattr(first, "transformers_"):
        return False
    return all(
        isinstance(cols, list | tuple)
        and all(isinstance(c, str) for c in cols)
        or isinstance(cols, str)
        for _, _, cols in first.transformers_
        if not (isinstance(cols, list | tuple) and len(cols) == 0)
    )


def _initial_types(signature: Signature) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    return [
        (
            c.name,
            StringTensorType([None, 1]) if c.kind == "category" else FloatTensorType([None, 1]),
        )
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
    text = [n for n in names if specs[n].kind == "category"]
    if text:
        raise ValidationError(
            f"column(s) {text} are categories but the model takes a numeric matrix; put the "
            "encoder inside the model (a ColumnTransformer step) so the export carries it",
            field="signature",
        )
    return names


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
