"""Batch layer + speed layer (lambda style, after Oryx and Jubatus).

The batch layer retrains on the full event log on a schedule and registers the result
(alias ``batch``). The speed layer, the streaming learner, starts from that version
(stateful training: the online model continues from the batch weights instead of from
zero) and learns only events newer than the batch horizon. Every snapshot it registers
names its parent, so the registry shows the descent batch -> snapshot -> snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopml.core.errors import ValidationError
from loopml.serve.stream.learner import OnlineLearner

if TYPE_CHECKING:
    from loopml.core.config import ProjectConfig
    from loopml.registry.records import ModelVersion

_TYPES = ("user", "item", "impression", "click")


def log_frames(cfg: ProjectConfig, until_ts: float | None = None) -> dict[str, Any]:
    """The behaviour and profile events of the project's event log (optionally up to a time)."""
    from loopml.logs.eventlog import EventLog

    log = EventLog.from_config(cfg)
    where = ""
    if until_ts is not None:
        where = f" WHERE epoch(ts) <= {float(until_ts)!r}"
    return {t: log.sql(f'SELECT * FROM "{t}"{where} ORDER BY ts') for t in _TYPES}


def train_batch(
    frames: dict[str, Any],
    model: str = "logreg",
    label_window_s: float = 1800.0,
    model_params: dict[str, Any] | None = None,
) -> OnlineLearner:
    """Train on every logged event in time order with the same join and features."""
    from loopml.serve.stream.produce import event_payloads

    learner = OnlineLearner(model, label_window_s=label_window_s, model_params=model_params)
    for payload, _ in event_payloads(frames):
        learner.process(payload)
    learner.finish()
    return learner


def run_batch_layer(
    cfg: ProjectConfig,
    name: str = "ctr_stream",
    model: str = "logreg",
    label_window_s: float = 1800.0,
    until_ts: float | None = None,
    alias: str = "batch",
) -> ModelVersion:
    """Retrain on the full log, register it as a version of ``name`` and point ``alias`` at it.

    Schedule it with the jobs module (e.g. nightly); the speed layer picks it up with
    ``run_learner(cfg, warm_start="batch")``.
    """
    from loopml.registry.registry import Registry
    from loopml.serve.stream.snapshots import publish_snapshot

    frames = log_frames(cfg, until_ts)
    if frames["impression"].empty:
        raise ValidationError(
            f"the event log at {cfg.path('events')} has no impressions to train on; ingest "
            "events first (e.g. `loopml sim generate`)",
            field="events",
        )
    learner = train_batch(frames, model, label_window_s)
    registry = Registry.from_config(cfg)
    horizon = float(learner.clock_)
    mv = publish_snapshot(
        registry,
        name,
        learner,
        parent_version=None,
        extra_lineage={
            "kind": "batch",
            "source": "event_log",
            "data_range": [
                float(frames["impression"]["ts"].min().timestamp()),
                horizon,
            ],
            "batch_horizon": horizon,
        },
    )
    registry.set_alias(name, alias, mv.version, actor="batch-layer", reason="nightly retrain")
    return mv


def warm_start_state(cfg: ProjectConfig, mv: ModelVersion, model: Any, settings: Any) -> Any:
    """A fresh learner continuing from a registered model, with profiles from the log."""
    horizon = mv.lineage.get("batch_horizon", mv.lineage.get("event_time"))
    learner = OnlineLearner(
        model,
        label_window_s=settings.label_window_s,
        mini_batch=settings.mini_batch,
        learn_after=horizon,
    )
    try:
        frames = log_frames(cfg)
    except Exception:  # no event log: profiles will come from the stream itself
        frames = {}
    for kind in ("user", "item"):
        frame = frames.get(kind)
        if frame is None or frame.empty:
            continue
        from loopml.serve.stream.produce import event_payloads

        for payload, _ in event_payloads({kind: frame}, types=(kind,)):
            learner.reader_.read(payload)
    return learner
