"""Batch layer + speed layer, and the preference-shift comparison with its plot."""

from __future__ import annotations

from loopml.logs.eventlog import EventLog
from loopml.registry.registry import Registry
from loopml.serve.stream.checkpoint import CheckpointStore
from loopml.serve.stream.comparison import compare_stream_vs_daily_batch, plot_comparison
from loopml.serve.stream.layers import run_batch_layer
from loopml.serve.stream.produce import publish_events
from loopml.serve.stream.runner import run_learner
from loopml.sim.config import WorldConfig
from loopml.sim.world import World
from loopml.storage.queues import open_queue

WORLD = WorldConfig(
    days=2, impressions_per_day=1500, n_users=300, n_items=40, format_change_day=0, shift_day=9
)


def test_speed_layer_continues_from_the_batch_model(project_dir) -> None:
    from loopml.core.config import ProjectConfig

    cfg = ProjectConfig.load(project_dir)
    world = World(WORLD)
    day0 = world.generate(days=[0])
    log = EventLog.from_config(cfg)
    for kind in ("user", "item", "impression", "click"):
        log.append(kind, day0[kind])
    batch = run_batch_layer(cfg, name="ctr_stream", label_window_s=900)
    assert batch.lineage["kind"] == "batch" and batch.lineage["parent_version"] is None
    registry = Registry.from_config(cfg)
    assert registry.resolve("ctr_stream", "batch") == batch.version

    # the live queue replays both days; the speed layer must learn only what is new
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        publish_events(q, world.generate())
    report = run_learner(
        cfg, warm_start="batch", idle_timeout_s=0.3, snapshot_every=10**9, label_window_s=900
    )
    learner = CheckpointStore(cfg.path("artifacts"), "ctr_stream").load().learner
    n_day0 = len(day0["impression"])
    assert learner.counts_["before_warm_start"] >= n_day0  # day 0 was the batch layer's
    assert learner.counts_["example"] == len(world.generate(days=[1])["impression"])
    snapshot = registry.get("ctr_stream", report.snapshots[-1])
    assert snapshot.lineage["parent_version"] == batch.version  # descent recorded
    assert snapshot.metrics["learnt"] < batch.metrics["learnt"] + learner.counts_["example"] + 1
    # a warm start carries the batch weights: on the same new day it beats a cold start
    from loopml.serve.stream.learner import OnlineLearner
    from loopml.serve.stream.produce import event_payloads

    cold = OnlineLearner("logreg", label_window_s=900, learn_after=batch.lineage["batch_horizon"])
    for payload, _ in event_payloads(world.generate()):
        cold.process(payload)
    assert cold.counts_["example"] == learner.counts_["example"]
    assert learner.metrics_.log_loss.get() < cold.metrics_.log_loss.get() - 0.002


def test_streaming_recovers_from_a_preference_shift_faster_than_daily_batch(tmp_path) -> None:
    world = WorldConfig(
        days=4, shift_day=3, shift_fraction=1.0, new_segment_fraction=0.5,
        impressions_per_day=5000, n_users=1500, n_items=60, format_change_day=0,
    )  # fmt: skip
    result = compare_stream_vs_daily_batch(world, bin_hours=2)
    # the batch model, frozen for the day, loses far more to the shift than the learner
    assert result.batch_excess > result.stream_excess + 0.005
    assert result.stream_after < result.batch_after - 0.004
    png = plot_comparison(result, str(tmp_path / "shift.png"))
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
