"""Retraining with an evaluation gate (seed 003: retrain on evaluation; keep evaluating).

One call does the whole step, in an order that keeps the registry safe::

    champion = model@alias          (the version serving now)
    data     = the last train_days + holdout_days of labelled impressions
    candidate = stateless: the champion's estimator refitted from scratch on the window
                stateful:  the champion warm-started on the window (LightGBM continues
                           boosting; estimators with partial_fit update); else stateless
    gate     = both scored on the most recent labelled window (the holdout, never
               trained on); candidate must beat the champion by min_improvement
    register + promote  (only now is the registry written)

Nothing is written before the gate has passed, so a crash or an exception anywhere
before leaves the registry and aliases exactly as they were; the job is retried by
the scheduler. A retry after a crash *during* the final write finds the version it
registered (tagged with the run's key) and only completes the promotion. Promotion is
``auto`` (train-then-serve: move ``alias`` now) or ``manual`` (training-to-serving:
point ``candidate_alias`` at it and wait for :func:`approve`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from loopml.core.clock import to_utc, utcnow
from loopml.core.config import ProjectConfig
from loopml.core.errors import ConflictError, ValidationError, did_you_mean
from loopml.jobs.gate import GATE_METRICS, GateResult, backtest
from loopml.monitor.windows import parse_duration

if TYPE_CHECKING:
    import pandas as pd

    from loopml.registry.records import AliasMove, ModelVersion
    from loopml.registry.registry import Registry

ACTOR = "loopml-retrain"

Dataset = Callable[[ProjectConfig, dt.datetime, dt.datetime, dict[str, Any]], "pd.DataFrame"]


@dataclass(frozen=True)
class RetrainSpec:
    """What to retrain and how to judge it; ``from_dict`` reads job params / ``[retrain]``."""

    model: str
    alias: str = "production"
    stateful: bool = False
    train_days: float = 7.0
    holdout_days: float = 1.0
    label_window: str = "1h"
    metric: str = "roc_auc"
    min_improvement: float = 0.0
    promotion: str = "auto"
    candidate_alias: str = "challenger"
    boost_rounds: int = 50
    dataset: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrainSpec:
        names = [f.name for f in fields(cls)]
        for key in data:
            if key not in names:
                raise ValidationError(
                    f"retrain.{key}: unknown setting; {did_you_mean(key, names)}",
                    field=f"retrain.{key}",
                )
        if "model" not in data:
            raise ValidationError(
                'retrain needs the model name, e.g. model = "ctr"', field="retrain.model"
            )
        spec = cls(**data)
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.metric not in GATE_METRICS:
            raise ValidationError(
                f"retrain.metric {self.metric!r} cannot gate; "
                f"{did_you_mean(self.metric, list(GATE_METRICS))}",
                field="retrain.metric",
            )
        if self.promotion not in ("auto", "manual", "rollout"):
            raise ValidationError(
                f"retrain.promotion must be 'auto' (train-then-serve), 'manual' (wait for "
                f"`loopml retrain approve`) or 'rollout' (a canary experiment decides), got "
                f"{self.promotion!r}",
                field="retrain.promotion",
            )
        if self.train_days <= 0 or self.holdout_days <= 0:
            raise ValidationError(
                f"retrain.train_days and holdout_days must be > 0, got {self.train_days} and "
                f"{self.holdout_days}",
                field="retrain.train_days",
            )
        parse_duration(self.label_window)


@dataclass
class RetrainResult:
    """What one retraining did; ``version`` is None when the gate rejected the candidate."""

    model: str
    champion_version: int
    mode: str
    gate: GateResult
    version: int | None = None
    promoted: bool = False
    approval: str = "rejected"
    note: str = ""
    train_start: dt.datetime | None = None
    train_end: dt.datetime | None = None
    n_train: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("train_start", "train_end"):
            out[key] = out[key].isoformat() if out[key] else None
        out["gate"]["start"] = self.gate.start.isoformat()
        out["gate"]["end"] = self.gate.end.isoformat()
        return out

    def __str__(self) -> str:
        head = f"{self.model}: {self.mode} retrain from v{self.champion_version}"
        if self.version is None:
            return f"{head}\n{self.gate}\ncandidate rejected; registry unchanged"
        what = "promoted" if self.promoted else f"awaiting approval ({self.approval})"
        return f"{head}\n{self.gate}\nregistered v{self.version}, {what}"


def retrain(
    config: ProjectConfig,
    spec: RetrainSpec,
    *,
    now: dt.datetime | str | None = None,
    dataset: Dataset | None = None,
    key: str | None = None,
    progress: bool = False,
) -> RetrainResult:
    """Retrain ``spec.model`` on its most recent data, gate it, register and promote it.

    ``now`` is the end of the data (the simulated clock in the demo); ``dataset`` builds
    the labelled frame for a time range (default: the champion's feature views);
    ``key`` makes a retried job idempotent.
    """
    from loopml.registry.registry import Registry

    started = time.perf_counter()
    registry = Registry.from_config(config)
    champion = registry.get(spec.model, spec.alias)
    if key is not None:
        done = _finish_previous(registry, spec, champion, key)
        if done is not None:
            return done
    end = to_utc(now) if now is not None else utcnow()
    holdout_end = end - parse_duration(spec.label_window)
    holdout_start = holdout_end - dt.timedelta(days=spec.holdout_days)
    train_start = holdout_start - dt.timedelta(days=spec.train_days)
    build = dataset or _resolve_dataset(spec)
    data = build(config, train_start, holdout_end, dict(champion.lineage))
    features = list(champion.lineage.get("features") or champion.signature.names)
    label = str(champion.lineage.get("label", "label"))
    missing = [c for c in [*features, label, "ts"] if c not in data.columns]
    if missing:
        raise ValidationError(
            f"the retraining data lacks columns {missing} that {spec.model} "
            f"v{champion.version} was trained on; fix the dataset function",
            field="dataset",
        )
    ts = data["ts"]
    train_part = data[ts < holdout_start].reset_index(drop=True)
    holdout = data[ts >= holdout_start].reset_index(drop=True)
    for name, part in (("training", train_part), ("holdout", holdout)):
        if len(part) == 0 or part[label].nunique() < 2:
            raise ValidationError(
                f"the {name} window of {spec.model} has {len(part)} rows and "
                f"{part[label].nunique() if len(part) else 0} label value(s); it needs both "
                "classes: widen train_days/holdout_days or wait for more labelled data",
                field="retrain.train_days",
            )
    from loopml.jobs.candidates import build_candidate
    from loopml.predict.flavours import predictor_from_version

    _, artifact = registry.fetch(spec.model, champion.version)
    current = predictor_from_version(champion, artifact)
    candidate = build_candidate(
        config,
        champion,
        _servable(current),
        train_part,
        holdout,
        features,
        label,
        stateful=spec.stateful,
        boost_rounds=spec.boost_rounds,
        progress=progress,
    )
    gate = backtest(
        current,
        candidate.predictor,
        holdout,
        features,
        label,
        spec.metric,
        spec.min_improvement,
        holdout_start,
        holdout_end,
    )
    result = RetrainResult(
        spec.model,
        champion.version,
        candidate.mode,
        gate,
        note=candidate.note,
        train_start=train_start,
        train_end=holdout_start,
        n_train=len(train_part),
    )
    if gate.passed:
        mv = registry.register(
            spec.model,
            candidate.artifact,
            flavour=candidate.flavour,
            signature=candidate.signature,
            metrics={"holdout": gate.challenger_metrics, "gate": gate.record()},
            lineage={
                **candidate.lineage,
                "parent_version": champion.version,
                "retrain": {
                    "mode": result.mode,
                    "train_start": train_start.isoformat(),
                    "train_end": holdout_start.isoformat(),
                },
            },
            run_id=candidate.run_id,
            description=f"{result.mode} retrain of v{champion.version}",
            tags={"retrain_key": key} if key else None,
        )
        result.version = mv.version
        _promote(registry, spec, result)
    result.seconds = time.perf_counter() - started
    return result


def approve(
    config: ProjectConfig,
    model: str,
    version: int | None = None,
    *,
    alias: str = "production",
    candidate_alias: str = "challenger",
    actor: str | None = None,
    reason: str = "",
) -> AliasMove:
    """Promote a gated candidate by hand (``loopml retrain approve``): move ``alias`` to it."""
    from loopml.registry.registry import Registry

    registry = Registry.from_config(config)
    target = registry.get(model, version if version is not None else candidate_alias)
    gate = target.metrics.get("gate")
    if not gate or not gate.get("passed"):
        raise ConflictError(
            f"{model} v{target.version} has no passed evaluation gate; only retrained "
            "candidates that beat the champion can be approved",
            model=model,
        )
    why = reason or (
        f"approved: {gate['metric']} {gate['challenger']:.4f} vs "
        f"{gate['champion']:.4f} (+{gate['margin']:.4f})"
    )
    return registry.set_alias(model, alias, target.version, actor=actor, reason=why)


# -- steps ------------------------------------------------------------------------------------
def _servable(predictor: Any) -> Any:
    """The framework model inside a loaded Predictor (FrameModel or LightGBMModel)."""
    for attr in ("model", "_model"):
        if hasattr(predictor, attr):
            return getattr(predictor, attr)
    raise ValidationError(
        f"cannot reach the model inside {type(predictor).__name__} to retrain it", field="flavour"
    )


def _resolve_dataset(spec: RetrainSpec) -> Dataset:
    from loopml.jobs.candidates import default_dataset

    if spec.dataset is None:
        return default_dataset
    from loopml.jobs.kinds import resolve

    return resolve(spec.dataset)


def _promote(registry: Registry, spec: RetrainSpec, result: RetrainResult) -> None:
    gate = result.gate
    why = (
        f"gate passed: {gate.metric} {gate.challenger:.4f} vs {gate.champion:.4f} "
        f"(+{gate.margin:.4f}) on {gate.start:%Y-%m-%d}..{gate.end:%Y-%m-%d}"
    )
    if spec.promotion == "auto":
        registry.set_alias(spec.model, spec.alias, result.version, actor=ACTOR, reason=why)
        result.promoted, result.approval = True, "auto"
    elif spec.promotion == "rollout":
        registry.set_alias(
            spec.model,
            spec.candidate_alias,
            result.version,
            actor=ACTOR,
            reason=f"{why}; canary rollout",
        )
        result.approval = f"rollout:{_start_canary(registry, spec, result.version)}"
    else:
        registry.set_alias(
            spec.model,
            spec.candidate_alias,
            result.version,
            actor=ACTOR,
            reason=f"{why}; awaiting approval",
        )
        result.approval = "pending"


def _start_canary(registry: Registry, spec: RetrainSpec, version: int) -> str:
    """Hand the candidate to the rollout machinery: a canary that promotes itself when
    its guardrails hold at every ramp stage (``loopml rollout`` shows and stops it)."""
    from loopml.rollout.lifecycle import start
    from loopml.rollout.records import ExperimentSpec
    from loopml.rollout.store import ExperimentStore

    name = f"{spec.model}-retrain-v{version}"
    store = ExperimentStore(registry.metadata_url)
    experiment = ExperimentSpec(
        name, spec.model, "canary", (spec.alias, spec.candidate_alias), auto_promote=True
    )
    start(store, experiment, resolve=registry.resolve, actor=ACTOR)
    return name


def _finish_previous(registry, spec, champion, key) -> RetrainResult | None:  # noqa: ANN001
    """A retried run whose earlier attempt already registered its version: finish it."""
    found = [mv for mv in registry.list_versions(spec.model) if mv.tags.get("retrain_key") == key]
    if not found:
        return None
    mv: ModelVersion = found[-1]
    gate = GateResult.from_record(mv.metrics["gate"])
    result = RetrainResult(
        spec.model,
        int(mv.lineage.get("parent_version") or champion.version),
        mv.lineage.get("retrain", {}).get("mode", "stateless"),
        gate,
        version=mv.version,
        note="completed by a retry",
    )
    target = spec.alias if spec.promotion == "auto" else spec.candidate_alias
    if registry.aliases(spec.model).get(target) != mv.version:
        _promote(registry, spec, result)
    else:
        result.promoted = spec.promotion == "auto"
        result.approval = "auto" if result.promoted else "pending"
    return result


def retrain_job(ctx: Any) -> dict[str, Any]:
    """The ``retrain`` job kind: params are :class:`RetrainSpec` fields plus ``now``.

    Retries of one scheduled run share the key of its first attempt, so a retry after
    a crash never registers a second version.
    """
    params = dict(ctx.params)
    now = params.pop("now", None)
    spec = RetrainSpec.from_dict(params)
    key = f"job:{ctx.job.name}:run:{ctx.run.first_run or ctx.run.id}"
    return retrain(ctx.config, spec, now=now, key=key, progress=ctx.progress).to_dict()
