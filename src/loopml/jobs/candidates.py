"""Retraining candidates: the champion refitted from scratch, or warm-started.

*Stateless* rebuilds the champion's estimator with the same hyperparameters and fits
it on the new window only. *Stateful* keeps what the champion learned and adds the new
window: LightGBM continues boosting from the champion's trees (with the champion's
category codes, so old splits keep their meaning), estimators with ``partial_fit``
take one more pass. Models without a warm start are retrained from scratch, and the
result says so.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.core.config import ProjectConfig
from loopml.core.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.core.signature import Signature
    from loopml.predict.predictor import Predictor
    from loopml.registry.records import ModelVersion


@dataclass
class Candidate:
    """A trained, not yet registered model: bytes to register and a Predictor to gate."""

    mode: str
    artifact: bytes
    flavour: str
    signature: Signature
    predictor: Predictor
    lineage: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    note: str = ""


def build_candidate(
    config: ProjectConfig,
    champion: ModelVersion,
    fitted: Any,
    train_part: pd.DataFrame,
    holdout: pd.DataFrame,
    features: list[str],
    label: str,
    *,
    stateful: bool,
    boost_rounds: int = 50,
    progress: bool = False,
) -> Candidate:
    """Train a candidate for ``champion`` (whose loaded model is ``fitted``)."""
    if stateful:
        warm = _warm_start(champion, fitted, train_part, features, label, boost_rounds)
        if warm is not None:
            return warm
    candidate = _from_scratch(
        config, champion, fitted, train_part, holdout, features, label, progress
    )
    if stateful:
        candidate.note = f"{champion.flavour} model has no warm start; retrained from scratch"
    return candidate


def _from_scratch(
    config: ProjectConfig,
    champion: ModelVersion,
    fitted: Any,
    train_part: pd.DataFrame,
    holdout: pd.DataFrame,
    features: list[str],
    label: str,
    progress: bool,
) -> Candidate:
    from loopml.train.datasets import Splits
    from loopml.train.tracking import RunStore
    from loopml.train.trainer import train

    params = dict(champion.lineage.get("params") or {})
    rate = params.get("downsample_rate")
    if champion.flavour == "lightgbm":
        from lightgbm import LGBMClassifier

        allowed = LGBMClassifier().get_params()
        text_ok = ("boosting_type", "objective", "importance_type")
        estimator = LGBMClassifier(
            **{
                k: v
                for k, v in params.items()
                if k in allowed and (not isinstance(v, str) or k in text_ok)
            }
        )
    elif hasattr(fitted, "estimator"):
        from sklearn.base import clone

        estimator = clone(fitted.estimator)
        rate = getattr(fitted, "downsample_rate", rate)
    else:
        raise ValidationError(
            f"cannot rebuild the estimator of {champion.name} v{champion.version} "
            f"({champion.flavour}); retrain it with loopml.train.train",
            field="flavour",
        )
    result = train(
        estimator,
        Splits(train_part, holdout, holdout),
        features=features,
        label=label,
        task="binary",
        name=champion.name,
        tracker=RunStore.from_config(config),
        lineage={"feature_views": champion.lineage.get("feature_views", {})},
        downsample_rate=rate,
        progress=progress,
    )
    return Candidate(
        "stateless",
        result.to_bytes(),
        result.flavour,
        result.signature,
        result.predictor(),
        dict(result.lineage),
        result.run_id,
    )


def _warm_start(
    champion: ModelVersion,
    fitted: Any,
    train_part: pd.DataFrame,
    features: list[str],
    label: str,
    boost_rounds: int,
) -> Candidate | None:
    from loopml.predict.flavours import get_flavour, predictor_for, save_model

    if champion.flavour == "lightgbm":
        import lightgbm as lgb

        from loopml.predict.lightgbm import LightGBMModel
        from loopml.train.datasets import negative_downsample

        rate = fitted.downsample_rate
        frame = negative_downsample(train_part, label, rate) if rate else train_part
        matrix = fitted.encode({c: frame[c].to_numpy() for c in fitted.features})
        cats = [i for i, name in enumerate(fitted.features) if name in fitted.categorical]
        drop = ("categorical_feature", "num_iterations", "n_estimators", "verbose")
        params = {k: v for k, v in fitted.booster.params.items() if k not in drop}
        params["verbosity"] = -1
        booster = lgb.train(
            params,
            lgb.Dataset(matrix, frame[label].to_numpy(), categorical_feature=cats),
            num_boost_round=boost_rounds,
            init_model=fitted.booster,
        )
        model = LightGBMModel(booster, dict(fitted.header))
        predictor = get_flavour("lightgbm").predictor(model, champion.signature, champion.name, 0)
        return Candidate(
            "stateful",
            model.to_bytes(),
            "lightgbm",
            champion.signature,
            predictor.load(),
            {**champion.lineage, "n_train": len(frame)},
            note=f"continued boosting for {boost_rounds} rounds",
        )
    inner = getattr(fitted, "estimator_", None)
    if champion.flavour == "sklearn" and hasattr(inner, "partial_fit"):
        model = copy.deepcopy(fitted)
        model.estimator_.partial_fit(
            model._prepare(train_part[features]), train_part[label].to_numpy()
        )
        return Candidate(
            "stateful",
            save_model(model, "sklearn"),
            "sklearn",
            champion.signature,
            predictor_for(model, champion.signature, "sklearn", name=champion.name),
            dict(champion.lineage),
            note="partial_fit on the new window",
        )
    return None


def default_dataset(
    config: ProjectConfig, start: dt.datetime, end: dt.datetime, lineage: dict[str, Any]
) -> pd.DataFrame:
    """Labelled impressions from the champion's feature views (point in time), plus the
    derived ``hour`` column when the model reads it."""
    from loopml.features.training import build_training_set
    from loopml.features.views import default_catalog
    from loopml.logs.eventlog import EventLog

    catalog = default_catalog()
    views = [
        catalog.get(name, int(version))
        for name, version in (lineage.get("feature_views") or {}).items()
    ]
    frame = build_training_set(
        EventLog.from_config(config),
        views or list(catalog),
        start=start,
        end=end,
        label="click",
        label_window=lineage.get("label_window", "1h"),
    )
    if "hour" in (lineage.get("features") or []) and "hour" not in frame.columns:
        frame["hour"] = frame["ts"].dt.hour.astype("int64")
    return frame
