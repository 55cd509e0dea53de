"""Snapshots: the streaming model published to the registry as a new version.

Each snapshot records its progressive metrics, its position in the stream and
``lineage["parent_version"]`` (the previous snapshot, or the batch model the speed
layer started from), so the registry holds the whole descent of the online model.
Any process (the online server of pattern 2, a batch scorer) picks up the newest one
with :func:`latest_snapshot`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopml.core.signature import ColumnSpec, Signature
from loopml.serve.stream.events import CTR_COLUMNS

if TYPE_CHECKING:
    from loopml.predict.river import RiverPredictor
    from loopml.registry.records import ModelVersion
    from loopml.registry.registry import Registry
    from loopml.serve.stream.learner import OnlineLearner


def learner_signature(learner: OnlineLearner) -> Signature:
    """The raw columns the learner's examples carry (CTR columns for impressions)."""
    kinds = learner.feature_kinds_
    if not kinds or set(kinds) <= set(CTR_COLUMNS):
        cols = tuple(ColumnSpec(c, "category") for c in CTR_COLUMNS)
    else:
        cols = tuple(ColumnSpec(n, k) for n, k in kinds.items())
    return Signature(cols, task="binary", classes=(False, True))


def publish_snapshot(
    registry: Registry,
    name: str,
    learner: OnlineLearner,
    parent_version: int | None,
    extra_lineage: dict[str, Any] | None = None,
    artifact: bytes | None = None,
) -> ModelVersion:
    """Register the learner's current model as the next version of ``name``.

    ``artifact`` is the model already saved with :func:`save_model` and the learner's
    signature, when the caller needs the bytes too (the runner's checkpoint reuses them).
    """
    from loopml.predict.river import save_model

    sig = learner_signature(learner)
    status = learner.status()
    metrics = {f"progressive_{k}": v for k, v in status["metrics"].items()}
    metrics["events"] = status["counts"].get("events", 0)
    metrics["learnt"] = learner.n_learnt
    lineage = {
        "parent_version": parent_version,
        "stream_position": status["positions"],
        "event_time": status["clock"],
        "learner": {
            "model": learner.model,
            "label_window_s": learner.label_window_s,
            "mini_batch": learner.mini_batch,
        },
        "kind": "stream_snapshot",
    }
    lineage.update(extra_lineage or {})
    return registry.register(
        name,
        artifact if artifact is not None else save_model(learner.model_, sig),
        flavour="river",
        signature=sig,
        metrics=metrics,
        lineage=lineage,
        description=f"streaming snapshot after {learner.n_learnt} learnt examples",
        tags={"pattern": "stream"},
    )


def latest_snapshot(registry: Registry, name: str, ref: int | str = "latest") -> RiverPredictor:
    """A loaded predictor of the newest (or ``ref``) snapshot, hash-verified."""
    from loopml.predict.flavours import load_predictor

    return load_predictor(registry, name, ref)
