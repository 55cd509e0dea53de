"""``train``: fit on the train split, evaluate on valid and test, record the run.

One function for LightGBM, any scikit-learn estimator or pipeline, and the
baselines, so every candidate is measured the same way and lands in the same table.
The fitted model is a :class:`~loopml.train.frame_model.FrameModel`: it includes its
preprocessing and downsampling correction, so what is registered is what was
evaluated.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.errors import ValidationError
from loopml.core.hashing import fingerprint_frame
from loopml.core.names import check_name
from loopml.core.signature import Signature
from loopml.train.datasets import Splits, negative_downsample
from loopml.train.frame_model import FrameModel, infer_signature
from loopml.train.metrics import evaluate
from loopml.train.tracking import RunStore, code_revision

if TYPE_CHECKING:
    import pandas as pd

    from loopml.predict.predictor import Predictor
    from loopml.registry.records import ModelVersion
    from loopml.registry.registry import Registry

TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class TrainResult:
    """What training produced: the model, its signature and flavour, metrics and lineage."""

    run_id: str | None
    model: FrameModel
    signature: Signature
    metrics: dict[str, dict[str, Any]]
    flavour: str
    name: str = "model"
    params: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def predictor(self) -> Predictor:
        """A loaded Predictor around the in-memory model (before registration)."""
        from loopml.predict.flavours import predictor_for

        return predictor_for(self.model, self.signature, self.flavour, name=self.name)

    def to_bytes(self) -> bytes:
        from loopml.predict.flavours import save_model

        return save_model(self.model, self.flavour)

    def register(
        self,
        registry: Registry,
        *,
        name: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        parent_version: int | None = None,
    ) -> ModelVersion:
        """Register the model with its signature, metrics, lineage and run id."""
        lineage = dict(self.lineage)
        if parent_version is not None:
            lineage["parent_version"] = parent_version
        return registry.register(
            name or self.name,
            self.to_bytes(),
            flavour=self.flavour,
            signature=self.signature,
            metrics=self.metrics,
            lineage=lineage,
            run_id=self.run_id,
            description=description,
            tags=tags,
        )


def train(
    estimator: Any,
    splits: Splits,
    *,
    features: Sequence[str],
    label: str,
    task: str = "binary",
    name: str,
    tracker: RunStore | None = None,
    params: Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    downsample_rate: float | None = None,
    progress: bool = False,
    seed: int = 0,
) -> TrainResult:
    """Fit ``estimator`` on ``splits.train`` and score it on ``valid`` and ``test``.

    ``lineage`` may carry ``feature_views`` (``{view: version}``) and ``parent_version``;
    data time ranges, the dataset fingerprint and the code revision are added here.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from loopml.train.baselines import PriorBaseline
    >>> from loopml.train.datasets import time_split
    >>> rng = np.random.default_rng(0)
    >>> ts = pd.date_range("2026-01-01", periods=3000, freq="h", tz="UTC")
    >>> x = rng.normal(size=3000)
    >>> frame = pd.DataFrame({"ts": ts, "x": x, "y": (x + rng.normal(size=3000) > 1).astype(int)})
    >>> splits = time_split(frame, valid_days=14, test_days=14)
    >>> from sklearn.linear_model import LogisticRegression
    >>> result = train(LogisticRegression(), splits, features=["x"], label="y", name="ctr")
    >>> round(result.metrics["test"]["roc_auc"], 3), result.flavour
    (0.845, 'sklearn')
    >>> prior = train(PriorBaseline(), splits, features=["x"], label="y", name="prior")
    >>> round(prior.metrics["test"]["normalized_entropy"], 2)
    1.0
    """
    started = time.perf_counter()
    check_name(name, "model name")
    if task not in TASKS:
        raise ValidationError(f"unknown task {task!r}; use one of {TASKS}", field="task")
    features = _check_columns(splits, features, label)
    user_lineage = dict(lineage or {})
    if "feature_views" not in user_lineage and splits.source.get("views"):
        user_lineage["feature_views"] = dict(splits.source["views"])
    with ExitStack() as stack:
        run = None
        if tracker is not None:
            run = stack.enter_context(tracker.start(name, lineage=user_lineage))
        steps = stack.enter_context(_Steps(progress, name))
        steps.advance("preparing data")
        train_frame = splits.train
        if downsample_rate is not None:
            train_frame = negative_downsample(train_frame, label, downsample_rate, seed)
        signature = infer_signature(splits.train[features], task)
        record_params = _params(estimator, params, splits, train_frame, downsample_rate)
        lineage_out = {
            **user_lineage,
            "code_revision": code_revision(),
            "data": splits.ranges(),
            "dataset_fingerprint": fingerprint_frame(splits.train[[*features, label]]),
            "features": list(features),
            "label": label,
            "task": task,
            "params": record_params,
            "feature_views": user_lineage.get("feature_views", {}),
            "parent_version": user_lineage.get("parent_version"),
            "source": splits.source,
        }
        if run is not None:
            run.log_params(record_params)
            run.log_lineage(lineage_out)
        steps.advance(f"fitting {type(estimator).__name__} on {len(train_frame):,} rows")
        model = FrameModel(estimator, signature=signature, downsample_rate=downsample_rate)
        model.fit(train_frame[features], _labels(train_frame[label], task))
        signature = model.signature_
        metrics: dict[str, dict[str, Any]] = {}
        for part in ("valid", "test"):
            steps.advance(f"evaluating on {part}")
            metrics[part] = _evaluate(model, getattr(splits, part), features, label, task)
        flavour = _flavour(model)
        if run is not None:
            steps.advance("recording the run")
            run.log_metrics(metrics)
            from loopml.predict.flavours import save_model

            run.log_artifact("model.bin", save_model(model, flavour))
        steps.advance("done")
    return TrainResult(
        run_id=None if run is None else run.run_id,
        model=model,
        signature=signature,
        metrics=metrics,
        flavour=flavour,
        name=name,
        params=record_params,
        lineage={**lineage_out, **({"run_id": run.run_id} if run is not None else {})},
        seconds=time.perf_counter() - started,
    )


def leaderboard(results: Sequence[TrainResult], split: str = "test") -> pd.DataFrame:
    """One row per result with its metrics on ``split``: baselines and models side by side."""
    import pandas as pd

    rows = [{"name": r.name, "flavour": r.flavour, **r.metrics.get(split, {})} for r in results]
    frame = pd.DataFrame(rows).set_index("name")
    for key, ascending in (("roc_auc", False), ("accuracy", False), ("rmse", True)):
        if key in frame.columns:
            return frame.sort_values(key, ascending=ascending)
    return frame


# -- helpers -------------------------------------------------------------------------------
def _check_columns(splits: Splits, features: Sequence[str], label: str) -> list[str]:
    if isinstance(features, str) or not features:
        raise ValidationError(
            f"features must be a non-empty list of column names, got {features!r}",
            field="features",
        )
    features = [str(f) for f in features]
    duplicated = sorted({f for f in features if features.count(f) > 1})
    if duplicated:
        raise ValidationError(f"features lists {duplicated} more than once", field="features")
    if label in features:
        raise ValidationError(
            f"label {label!r} is also listed as a feature: that leaks the answer; remove it",
            field="features",
        )
    for part in ("train", "valid", "test"):
        frame = getattr(splits, part)
        missing = [c for c in [*features, label] if c not in frame.columns]
        if missing:
            raise ValidationError(
                f"{part} split is missing column(s) {missing}; it has {list(frame.columns)[:30]}",
                field="features",
            )
    if len(splits.train) == 0:
        raise ValidationError("the train split is empty", field="splits")
    return features


def _labels(y: pd.Series, task: str) -> np.ndarray:
    values = y.to_numpy()
    if y.isna().any():
        raise ValidationError(
            f"label column {y.name!r} has {int(y.isna().sum())} missing values; drop those "
            "rows or wait for their labels to arrive",
            field="label",
        )
    if task == "regression":
        return values.astype(np.float64)
    return values


def _evaluate(
    model: FrameModel, frame: pd.DataFrame, features: list[str], label: str, task: str
) -> dict[str, Any]:
    if len(frame) == 0:
        return {"n": 0.0, "error": "empty split"}
    sig = model.signature_
    score = model.predict_columns(sig.validate(frame[features]))
    y = frame[label].to_numpy()
    if task == "multiclass":
        index = {c: i for i, c in enumerate(sig.classes or ())}
        unseen = sorted({str(v) for v in y if v not in index})
        if unseen:
            return {"n": float(len(y)), "error": f"classes {unseen} never seen in training"}
        y = np.array([index[v] for v in y])
    try:
        return evaluate(task, y, score)
    except ValidationError as exc:
        return {"n": float(len(y)), "error": exc.message}


def _flavour(model: FrameModel) -> str:
    import lightgbm as lgb

    return "lightgbm" if isinstance(model.estimator_, lgb.LGBMModel) else "sklearn"


def _params(
    estimator: Any,
    params: Mapping[str, Any] | None,
    splits: Splits,
    train_frame: pd.DataFrame,
    downsample_rate: float | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"estimator": type(estimator).__name__}
    try:
        own = estimator.get_params(deep=False)
    except (AttributeError, TypeError):
        own = {}
    for key, value in own.items():
        if value is None or isinstance(value, bool | int | float | str):
            out[key] = value
        else:
            out[key] = repr(value)[:200]
    out.update(dict(params or {}))
    out.update(
        n_train=len(train_frame),
        n_valid=len(splits.valid),
        n_test=len(splits.test),
        downsample_rate=downsample_rate,
    )
    return out


class _Steps:
    """A rich progress bar over training's few coarse steps; silent when disabled."""

    TOTAL = 6

    def __init__(self, enabled: bool, name: str) -> None:
        self.enabled = enabled
        self.name = name
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Steps:
        if self.enabled:
            from rich.progress import Progress

            self._progress = Progress(transient=True)
            self._progress.start()
            self._task = self._progress.add_task(f"train {self.name}", total=self.TOTAL)
        return self

    def advance(self, what: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=f"train {self.name}: {what}")

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
