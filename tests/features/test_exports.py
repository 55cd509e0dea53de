"""Pin the public names of loopml.features and loopml.logs; importing them stays light."""

from __future__ import annotations

import subprocess
import sys

import loopml.features
import loopml.logs


def test_exported_names_are_pinned_and_resolve():
    assert loopml.features.__all__ == [
        "FeatureCatalog",
        "FeatureView",
        "build_training_set",
        "default_catalog",
        "latest_values",
        "make_preprocessor",
        "point_in_time",
        "register_onnx_converters",
    ]
    assert loopml.logs.__all__ == [
        "EventLog",
        "IngestResult",
        "backfill",
        "common_fields",
        "get_schema",
        "register_backfill",
        "rows_by_schema",
    ]
    for package in (loopml.features, loopml.logs):
        for name in package.__all__:
            assert callable(getattr(package, name))


def test_importing_the_packages_and_views_does_not_load_heavy_libraries():
    code = (
        "import sys, loopml.logs, loopml.features, loopml.features.views, loopml.logs.eventlog\n"
        "heavy = [m for m in ('pandas','sklearn','duckdb','pyarrow') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
