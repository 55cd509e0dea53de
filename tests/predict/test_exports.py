"""Pin the public names of loopml.predict, loopml.train and loopml.registry; keep them lazy."""

from __future__ import annotations

import subprocess
import sys

import loopml.predict
import loopml.registry
import loopml.train


def test_public_names_are_pinned_and_resolve():
    assert loopml.predict.__all__ == [
        "FLAVOURS",
        "Flavour",
        "LightGBMModel",
        "LightGBMPredictor",
        "Predictor",
        "SklearnPredictor",
        "check_predictor",
        "get_flavour",
        "load_model",
        "load_predictor",
        "predictor_for",
        "predictor_from_version",
        "save_model",
        "to_frame",
    ]
    assert loopml.registry.__all__ == ["AliasMove", "ModelVersion", "Registry", "parse_ref"]
    assert loopml.train.__all__ == [
        "FrameModel",
        "PopularityBaseline",
        "PriorBaseline",
        "Run",
        "RunRecord",
        "RunStore",
        "SchemaEnsemble",
        "Splits",
        "TrainResult",
        "by_slice",
        "calibration_curve",
        "class_weights",
        "correct_probability",
        "evaluate",
        "leaderboard",
        "make_estimator",
        "negative_downsample",
        "time_split",
        "train",
        "train_table",
    ]
    for package in (loopml.predict, loopml.registry, loopml.train):
        for name in package.__all__:
            assert getattr(package, name) is not None


def test_importing_the_packages_loads_no_heavy_library():
    code = (
        "import sys, loopml.predict, loopml.registry, loopml.train\n"
        "heavy = [m for m in ('pandas','sklearn','lightgbm','sqlalchemy') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
