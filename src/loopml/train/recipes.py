"""Named estimators and one call from a table on disk to a registered model.

This is what ``loopml train`` runs: read a Parquet/CSV training table, split it by
time, fit one of the named estimators, record the run, register the model and
optionally point an alias at it. Library users call :func:`~loopml.train.train` directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.core.errors import NotFoundError, ValidationError, did_you_mean
from loopml.train.datasets import time_split
from loopml.train.trainer import TrainResult, train

if TYPE_CHECKING:
    import pandas as pd

    from loopml.registry.records import ModelVersion
    from loopml.registry.registry import Registry
    from loopml.train.tracking import RunStore

#: The estimators ``loopml train --model`` knows, cheapest first.
ESTIMATORS = ("prior", "popularity", "logistic", "hgb", "lightgbm")


def make_estimator(kind: str, *, seed: int = 0, **params: Any) -> Any:
    """An unfitted estimator by name; ``params`` override its defaults.

    >>> make_estimator("lightgbm", n_estimators=50).get_params()["n_estimators"]
    50
    """
    if kind == "prior":
        from loopml.train.baselines import PriorBaseline

        return PriorBaseline()
    if kind == "popularity":
        from loopml.train.baselines import PopularityBaseline

        return PopularityBaseline(**{"key": "item_id", "smoothing": 10.0, **params})
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(**{"max_iter": 500, **params})
    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(**{"random_state": seed, **params})
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier

        defaults = {
            "n_estimators": 200,
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_child_samples": 50,
            "random_state": seed,
            "verbose": -1,
        }
        return LGBMClassifier(**{**defaults, **params})
    raise ValidationError(
        f"unknown model kind {kind!r}; {did_you_mean(kind, list(ESTIMATORS))}", field="model"
    )


def read_table(source: str | Path) -> pd.DataFrame:
    """A training table from a Parquet file or directory, or a CSV file."""
    import pandas as pd

    path = Path(source)
    if not path.exists():
        raise NotFoundError(f"training table {str(path)!r} does not exist", path=str(path))
    if path.is_dir() or path.suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    raise ValidationError(
        f"cannot read {path.name!r}: use a .parquet file or directory, or a .csv file",
        field="source",
    )


def default_features(frame: pd.DataFrame, label: str, ts_col: str, kind: str) -> list[str]:
    """Every column except the label, the timestamp and identifiers (``*_id``)."""
    if kind == "popularity":
        return ["item_id"]
    skip = {label, ts_col, "id"}
    return [str(c) for c in frame.columns if str(c) not in skip and not str(c).endswith("_id")]


def train_table(
    source: str | Path | pd.DataFrame,
    *,
    name: str,
    kind: str = "lightgbm",
    label: str = "label",
    features: Sequence[str] | None = None,
    ts_col: str = "ts",
    valid_days: float = 1,
    test_days: float = 1,
    downsample_rate: float | None = None,
    params: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    tracker: RunStore | None = None,
    alias: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[TrainResult, ModelVersion | None]:
    """Split, fit, evaluate, track and (with a registry) register; optionally set an alias.

    >>> from loopml.train.synthetic import make_clicks
    >>> result, mv = train_table(make_clicks(3000), name="ctr", kind="prior", label="clicked",
    ...                          valid_days=2, test_days=2, progress=False)
    >>> result.metrics["test"]["roc_auc"], mv is None
    (0.5, True)
    """
    frame = source if hasattr(source, "columns") else read_table(source)
    if alias is not None and registry is None:
        raise ValidationError("alias needs a registry to register the model in", field="alias")
    estimator = make_estimator(kind, seed=seed, **dict(params or {}))
    chosen = list(features) if features else default_features(frame, label, ts_col, kind)
    splits = time_split(frame, ts_col=ts_col, valid_days=valid_days, test_days=test_days)
    result = train(
        estimator,
        splits,
        features=chosen,
        label=label,
        name=name,
        tracker=tracker,
        params={"kind": kind, **dict(params or {})},
        downsample_rate=downsample_rate,
        progress=progress,
        seed=seed,
    )
    if registry is None:
        return result, None
    mv = result.register(registry, description=f"{kind} trained by loopml train")
    if alias is not None:
        registry.set_alias(
            mv.name, alias, mv.version, reason=f"loopml train (run {result.run_id or '-'})"
        )
    return result, mv
