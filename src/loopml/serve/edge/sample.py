"""The inputs of an export: the fitted estimator behind a Predictor and the held-out rows.

Parity must be measured on data the model did not train on, labelled when a metric is
wanted, and rounded to float32 (what a device and the ONNX graph compute with), so a
tree threshold that falls between a float64 value and its float32 rounding is not
mistaken for a conversion error.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from loopml.core.errors import NotFoundError, ValidationError, did_you_mean

#: File names a model version may carry with a held-out sample (first found is used).
SAMPLE_FILES = ("holdout.parquet", "validation.parquet", "reference.parquet", "sample.parquet")


def estimator_of(predictor: Any) -> Any:
    """The fitted model a native Predictor serves, as :func:`~.convert.to_onnx` takes it.

    That is a scikit-learn estimator or pipeline, a ``loopml.train.FrameModel`` (kept
    whole: its downsampling correction belongs in the graph) or loopml's LightGBM model.
    """
    model = getattr(predictor, "model", None)
    if model is None:
        raise ValidationError(
            f"{type(predictor).__name__} exposes no fitted model; edge export needs a "
            "scikit-learn or LightGBM flavour (got flavour "
            f"{getattr(predictor, 'flavour', '?')!r})",
            field="flavour",
        )
    return model


def held_out(
    registry: Any, mv: Any, data: Any, label: str | None, rows: int, seed: int
) -> tuple[Any, np.ndarray | None]:
    """A DataFrame of signature columns (float32-rounded numbers) and its labels, if any."""
    import pandas as pd

    frame = _source(registry, mv, data)
    label = label or _recorded_label(mv, frame)
    if label is not None and label not in frame.columns:
        raise ValidationError(
            f"label column {label!r} is not in the held-out data; "
            f"{did_you_mean(label, [str(c) for c in frame.columns])}",
            field="label",
        )
    if label is not None:
        frame = frame[frame[label].notna()]
    if len(frame) == 0:
        raise ValidationError("the held-out data has no rows; parity needs some", field="data")
    if len(frame) > rows:
        pick = np.sort(np.random.default_rng(seed).choice(len(frame), rows, replace=False))
        frame = frame.iloc[pick]
    signature = mv.signature
    columns = signature.validate(frame)
    out: dict[str, Any] = {}
    for spec in signature.inputs:
        values = columns[spec.name]
        if spec.kind == "category":
            out[spec.name] = pd.Series(values, dtype=object)
        else:
            out[spec.name] = np.asarray(values, dtype=np.float32).astype(np.float64)
    sample = pd.DataFrame(out)
    labels = frame[label].to_numpy() if label is not None else None
    return sample, labels


def _source(registry: Any, mv: Any, data: Any) -> Any:
    import pandas as pd

    if data is None:
        for name in SAMPLE_FILES:
            if name in (mv.files or {}):
                blob = registry.fetch_file(mv.name, mv.version, name)
                return pd.read_parquet(io.BytesIO(blob))
        raise NotFoundError(
            f"model {mv.name} v{mv.version} carries no held-out sample "
            f"({', '.join(SAMPLE_FILES)}); pass --data PATH (Parquet or CSV with the "
            "signature's columns) and --label COLUMN",
            field="data",
        )
    if hasattr(data, "columns"):
        return data
    path = Path(data)
    if not path.is_file():
        raise NotFoundError(f"--data {path} does not exist", field="data")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    raise ValidationError(
        f"--data {path}: unsupported file type {path.suffix!r}; use .parquet or .csv",
        field="data",
    )


def _recorded_label(mv: Any, frame: Any) -> str | None:
    for source in (mv.lineage or {}, mv.signature.extra or {}):
        name = source.get("label")
        if isinstance(name, str) and name in frame.columns:
            return name
    return None
