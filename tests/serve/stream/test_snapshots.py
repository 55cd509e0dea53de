"""Snapshots reach the registry with metrics, position and lineage; requests get answers."""

from __future__ import annotations

import numpy as np
import pytest

from loopml.predict.flavours import load_predictor
from loopml.predict.river import RiverPredictor
from loopml.registry.registry import Registry
from loopml.serve.stream.checkpoint import CheckpointStore
from loopml.serve.stream.produce import publish_events
from loopml.serve.stream.runner import run_learner
from loopml.serve.stream.status import plot_stream, stream_status
from loopml.sim.config import WorldConfig
from loopml.sim.world import World
from loopml.storage.queues import open_queue

SMALL = WorldConfig(
    days=1, impressions_per_day=3000, n_users=400, n_items=40, format_change_day=0, shift_day=9
)


@pytest.mark.parametrize(
    ("stream_project", "pack"),
    [("sqlite", 1), ("redis", 1), ("redis", 100)],  # 100: events packed per Redis entry
    indirect=["stream_project"],
)
def test_snapshots_predictions_and_status(stream_project, pack: int) -> None:
    cfg = stream_project
    frames = World(SMALL).generate()
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        sent = publish_events(q, frames, pack=pack)
    report = run_learner(
        cfg, idle_timeout_s=0.3, snapshot_every=1000, label_window_s=900, snapshot_alias="live"
    )
    assert report.consumed == sent
    assert len(report.snapshots) >= 3
    # prediction requests are answered by the running learner with its current model
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        requests = [
            {"request_id": f"r{i}", "user_id": "u000001", "item_id": "i0003", "position": i % 5}
            for i in range(20)
        ] + [{"request_id": "bad", "user_id": "u000001"}]  # no item_id: answered with an error
        q.publish_many("prediction_requests", requests)
    served = run_learner(cfg, idle_timeout_s=0.3, snapshot_every=1000, label_window_s=900)
    assert served.predictions == 21 and served.consumed == 0 and served.snapshots == []

    registry = Registry.from_config(cfg)
    assert registry.resolve("ctr_stream", "live") == report.snapshots[-1]
    versions = registry.list_versions("ctr_stream")
    assert [v.version for v in versions] == report.snapshots
    parents = [v.lineage["parent_version"] for v in versions]
    assert parents == [None] + report.snapshots[:-1]
    learnt = [v.metrics["learnt"] for v in versions]
    assert learnt == sorted(learnt) and learnt[-1] == report.status["counts"]["learnt"]
    last = versions[-1]
    assert last.flavour == "river"
    assert 0.05 < last.metrics["progressive_log_loss"] < 0.3
    assert last.lineage["stream_position"] == report.status["positions"]

    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        answers = {m.payload["request_id"]: m.payload for m in q.consume("predictions", "t", "t")}
        updates = q.consume("model_updates", "t", "t")
    assert [u.payload["version"] for u in updates] == report.snapshots
    assert answers["bad"]["score"] is None and "item_id" in answers["bad"]["error"]
    scores = [answers[f"r{i}"]["score"] for i in range(20)]
    assert all(0.0 < v < 0.3 for v in scores)
    assert scores[0] > scores[4]  # the top slot is clicked more than the fifth
    assert {answers[f"r{i}"]["version"] for i in range(20)} == {report.snapshots[-1]}

    # any process picks up the newest snapshot through the registry, hash-verified
    predictor = load_predictor(registry, "ctr_stream", "latest")
    assert isinstance(predictor, RiverPredictor) and predictor.version == last.version
    learner = CheckpointStore(cfg.path("artifacts"), "ctr_stream").load().learner
    x = learner.features_for({"user_id": "u000002", "item_id": "i0004", "position": 1, "ts": 0})
    batch = {c: [x.get(c)] for c in predictor.signature.names}
    assert predictor.predict(batch)[0] == pytest.approx(learner.predict_one(x), rel=1e-12)

    status = stream_status(cfg)
    assert status["learner"]["counts"]["learnt"] == learnt[-1]
    assert status["topics"]["events"] == {"length": sent, "lag": 0, "pending": 0}
    assert status["latest_snapshot_version"] == last.version
    png = plot_stream(cfg, str(cfg.root / "curve.png"))
    with open(png, "rb") as fh:
        assert fh.read(4) == b"\x89PNG"


def test_river_predictor_batch_equals_single_rows() -> None:
    from loopml.core.signature import ColumnSpec, Signature
    from loopml.serve.stream.models import make_model

    model = make_model("logreg")
    rng = np.random.default_rng(0)
    for _ in range(300):
        item = f"i{rng.integers(5)}"
        model.learn_one({"item_id": item, "position": "0"}, item in ("i1", "i2"))
    sig = Signature((ColumnSpec("item_id", "category"), ColumnSpec("position", "category")))
    p = RiverPredictor(sig, model, name="m", version=1).load()
    batch = {"item_id": ["i1", "i3", None], "position": ["0", "0", "0"]}
    out = p.predict(batch)
    singles = [p.predict_one({"item_id": v, "position": "0"}) for v in batch["item_id"]]
    assert out.tolist() == singles and out[0] > out[1]
    clone = RiverPredictor.from_bytes(p.to_bytes(), name="m", version=1).load()
    assert clone.predict(batch).tolist() == out.tolist()
