"""LightGBM to ONNX: raw Boosters, the scikit-learn wrappers and loopml's LightGBM flavour.

onnxmltools converts the trees; loopml adds what the native Predictor does around
them: category strings to the codes the trees split on (from the booster's recorded
pandas categories), missing/unseen categories to NaN, and the correction for
negative downsampling.
"""

from __future__ import annotations

from typing import Any

from loopml.core.errors import ValidationError
from loopml.core.signature import Signature
from loopml.serve.edge.graphs import MATRIX_INPUT, correct_downsampling, split_matrix_input

#: The highest opset onnxmltools' LightGBM converter accepts.
BOOSTER_OPSET = 15
ML_OPSET = 3


def is_lightgbm(model: Any) -> bool:
    """A LightGBM Booster / LGBMModel, or loopml's ``LightGBMModel`` (booster + header)."""
    if type(model).__module__.split(".")[0] == "lightgbm":
        return True
    return hasattr(model, "booster") and isinstance(getattr(model, "header", None), dict)


def lightgbm_to_onnx(model: Any, signature: Signature) -> Any:
    """Convert any LightGBM form to a per-column ONNX graph."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster, names, categories, rate = _parts(model, signature)
    unknown = [n for n in names if n not in signature.names]
    if unknown:
        raise ValidationError(
            f"the LightGBM model reads feature(s) {unknown} that its signature "
            f"{signature.names} lacks; register it with the signature of its training frame",
            field="signature",
        )
    types = [(MATRIX_INPUT, FloatTensorType([None, len(names)]))]
    try:
        proto = convert_lightgbm(
            booster, initial_types=types, zipmap=False, target_opset=BOOSTER_OPSET
        )
    except Exception as exc:  # noqa: BLE001 - the converter raises many untyped errors
        raise ValidationError(
            f"ONNX conversion of the LightGBM model failed: {exc}; custom objectives and "
            "linear trees are not supported by onnxmltools",
            field="model",
        ) from exc
    exact_thresholds(proto, booster)
    proto = split_matrix_input(proto, names, categories, ML_OPSET)
    if rate and signature.task == "binary":
        proto = correct_downsampling(proto, rate)
    return proto


def _parts(model: Any, signature: Signature) -> tuple[Any, list[str], dict[str, list], float]:
    """(booster, feature order, {column: categories}, downsample rate) of any LightGBM form."""
    if hasattr(model, "header"):  # loopml.predict.lightgbm.LightGBMModel
        cats = {k: list(v) for k, v in model.categorical.items()}
        return model.booster, list(model.features), cats, model.downsample_rate or 0.0
    booster = model if hasattr(model, "dump_model") else model.booster_
    names = [str(n) for n in booster.feature_name()]
    if all(n == f"Column_{i}" for i, n in enumerate(names)):  # fitted on a bare matrix
        if len(names) != len(signature.inputs):
            raise ValidationError(
                f"the LightGBM model takes {len(names)} unnamed features but its signature "
                f"has {len(signature.inputs)} columns {signature.names}; register it with the "
                "signature of the frame it was trained on",
                field="signature",
            )
        names = signature.names
    cats = booster_categories(booster, names)
    specs = {c.name: c for c in signature.inputs}
    for name in names:
        spec = specs.get(name)
        if spec is not None and spec.kind == "category" and name not in cats:
            if not spec.categories:
                raise ValidationError(
                    f"column {name!r} is a category but neither the booster nor the signature "
                    "records its categories, so its codes are unknown; train on a pandas "
                    "'category' column or record the categories in the signature",
                    field="signature",
                )
            cats[name] = list(spec.categories)
    return booster, names, cats, 0.0


def exact_thresholds(proto: Any, booster: Any) -> int:
    """Make float32 tree comparisons agree with LightGBM's float64 ones; return nodes changed.

    LightGBM tests ``x <= t`` with ``t`` a float64; the ONNX graph stores ``t`` rounded
    to the nearest float32, so when it rounds *up*, a float32 input equal to the
    rounded value goes left in ONNX and right in LightGBM (an age of 58.4 against a
    threshold of 58.400000000000006 does). Storing the largest float32 not above ``t``
    makes ``x32 <= t32`` equivalent to ``x <= t`` for every float32 input.
    """
    import numpy as np
    from onnx import helper

    up: dict[tuple[int, float], bool] = {}
    for tree in booster.dump_model()["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" not in node:
                continue
            stack += [node["left_child"], node["right_child"]]
            if node.get("decision_type") != "<=":
                continue
            t = float(node["threshold"])
            key = (int(node["split_feature"]), float(np.float32(t)))
            up[key] = up.get(key, True) and float(np.float32(t)) > t
    changed = 0
    for node in proto.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: a for a in node.attribute}
        feats, modes = attrs["nodes_featureids"].ints, attrs["nodes_modes"].strings
        values = list(attrs["nodes_values"].floats)
        for i, (f, mode) in enumerate(zip(feats, modes, strict=True)):
            if mode == b"BRANCH_LEQ" and up.get((int(f), float(np.float32(values[i]))), False):
                values[i] = float(np.nextafter(np.float32(values[i]), np.float32(-np.inf)))
                changed += 1
        node.attribute.remove(attrs["nodes_values"])
        node.attribute.append(helper.make_attribute("nodes_values", values))
    return changed


def booster_categories(booster: Any, names: list[str]) -> dict[str, list[Any]]:
    """``{column: categories}`` LightGBM recorded for pandas ``category`` columns."""
    index = sorted(int(i) for i in (booster.params.get("categorical_feature") or []))
    recorded = booster.pandas_categorical or []
    if len(recorded) != len(index):
        return {}
    return {names[i]: list(c) for i, c in zip(index, recorded, strict=True)}


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
