"""The package's public names, and that importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import loopml.serve.edge as edge


def test_exported_names_are_pinned_and_resolve():
    assert edge.__all__ == [
        "EdgeBundle",
        "ExportResult",
        "ParityReport",
        "TradeoffRow",
        "edge_routes",
        "export_edge",
        "load_bundle",
        "to_onnx",
    ]
    for name in edge.__all__:
        assert getattr(edge, name) is not None


def test_importing_the_package_and_the_loader_loads_no_training_library():
    code = (
        "import sys, loopml.serve.edge, loopml.serve.edge.loader\n"
        "print(','.join(m for m in ('sklearn', 'lightgbm', 'skl2onnx', 'onnxmltools',"
        " 'matplotlib', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
