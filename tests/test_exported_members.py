"""Pin the public names of the package root, and keep `import loopml` light."""

from __future__ import annotations

import subprocess
import sys

import loopml


def test_exported_names_are_pinned():
    assert loopml.__all__ == [
        "EventLog",
        "FeatureView",
        "LoopmlError",
        "Predictor",
        "Project",
        "ProjectConfig",
        "Registry",
        "World",
        "__version__",
    ]
    for name in loopml.__all__:
        assert getattr(loopml, name) is not None


def test_import_and_cli_help_do_not_load_heavy_libraries():
    code = (
        "import sys, loopml, loopml.cli.main\n"
        "heavy = [m for m in ('pandas','sklearn','lightgbm','duckdb','onnxruntime','river',"
        "'fastapi','matplotlib','sqlalchemy') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
