"""Edits to converted ONNX graphs that give every export the same interface.

Converters take one ``[n, k]`` float matrix; loopml bundles take one ``[n, 1]`` input
per signature column, so a device or a browser form feeds columns by name. Category
columns become the integer codes the model was trained on, and a model trained on
negatively downsampled data gets its probabilities corrected inside the graph, just
as the native Predictor corrects them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The converters' single matrix input that :func:`split_matrix_input` replaces.
MATRIX_INPUT = "features"


def split_matrix_input(
    proto: Any, names: Sequence[str], categories: Mapping[str, Sequence[Any]], ml_opset: int
) -> Any:
    """Replace the ``[n, k]`` input by one ``[n, 1]`` input per column plus a Concat.

    A column in ``categories`` is a string input mapped to its code (position in the
    list, the order LightGBM splits on); a missing (``""``) or unseen value becomes
    NaN, which LightGBM treats as missing too.
    """
    from onnx import TensorProto, helper

    graph = proto.graph
    kept = [i for i in graph.input if i.name != MATRIX_INPUT]
    inputs, nodes, parts = [], [], []
    for name in names:
        cats = categories.get(name)
        if cats is None:
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1]))
            parts.append(name)
            continue
        inputs.append(helper.make_tensor_value_info(name, TensorProto.STRING, [None, 1]))
        code = f"loopml_code_{name}"
        nodes.append(
            helper.make_node(
                "LabelEncoder",
                [name],
                [code],
                domain="ai.onnx.ml",
                name=code,
                keys_strings=[str(c) for c in cats],
                values_floats=[float(i) for i in range(len(cats))],
                default_float=float("nan"),
            )
        )
        parts.append(code)
    nodes.append(helper.make_node("Concat", parts, [MATRIX_INPUT], axis=1, name="loopml_columns"))
    del graph.input[:]
    graph.input.extend(inputs + kept)
    for node in reversed(nodes):
        graph.node.insert(0, node)
    if categories:  # LabelEncoder maps strings to floats from ai.onnx.ml version 2 on
        ensure_opset(proto, "ai.onnx.ml", ml_opset)
    return proto


def ensure_opset(proto: Any, domain: str, version: int) -> None:
    """Import ``domain`` at ``version`` or later (the nodes loopml adds need it)."""
    from onnx import helper

    found = [o for o in proto.opset_import if o.domain == domain]
    if not found:
        proto.opset_import.append(helper.make_opsetid(domain, version))
    elif found[0].version < version:
        found[0].version = version


def correct_downsampling(proto: Any, rate: float, output: str = "probabilities") -> Any:
    """Undo negative downsampling at ``rate`` on a binary ``[n, 2]`` probability output.

    ``p' = p r / (p r + 1 - p)``; the converter's ``label`` output is dropped because it
    was decided on the uncorrected probability.
    """
    from onnx import TensorProto, helper

    graph = proto.graph
    ensure_opset(proto, "", 13)  # Slice with tensor inputs
    raw = "loopml_raw_probabilities"
    rename_tensor(graph, output, raw)
    consts = {
        "loopml_rate": [float(rate)],
        "loopml_one": [1.0],
    }
    for const, value in consts.items():
        graph.initializer.append(helper.make_tensor(const, TensorProto.FLOAT, [], value))
    slicing = {"loopml_s1": [1], "loopml_s2": [2], "loopml_axis1": [1]}
    for const, value in slicing.items():
        graph.initializer.append(helper.make_tensor(const, TensorProto.INT64, [1], value))
    graph.node.extend(
        [
            helper.make_node(
                "Slice", [raw, "loopml_s1", "loopml_s2", "loopml_axis1"], ["loopml_p"]
            ),
            helper.make_node("Mul", ["loopml_p", "loopml_rate"], ["loopml_pr"]),
            helper.make_node("Sub", ["loopml_one", "loopml_p"], ["loopml_q"]),
            helper.make_node("Add", ["loopml_pr", "loopml_q"], ["loopml_den"]),
            helper.make_node("Div", ["loopml_pr", "loopml_den"], ["loopml_pc"]),
            helper.make_node("Sub", ["loopml_one", "loopml_pc"], ["loopml_pc0"]),
            helper.make_node("Concat", ["loopml_pc0", "loopml_pc"], [output], axis=1),
        ]
    )
    kept = [o for o in graph.output if o.name not in (raw, "label")]
    del graph.output[:]
    graph.output.extend(
        [*kept, helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, 2])]
    )
    return proto


def rename_tensor(graph: Any, old: str, new: str) -> None:
    """Rename a tensor everywhere it is produced or consumed."""
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for out in graph.output:
        if out.name == old:
            out.name = new
