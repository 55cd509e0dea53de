"""The runner's bookkeeping around the learner: checkpoints, acks and the process it runs in."""

from __future__ import annotations

import gc
import pickle

import pytest

from loopml.core.config import ProjectConfig
from loopml.registry.registry import Registry
from loopml.serve.stream.checkpoint import CheckpointStore
from loopml.serve.stream.runner import open_runner
from loopml.serve.stream.settings import StreamSettings
from loopml.storage.queues import open_queue

from .conftest import phishing_events

SETTINGS = dict(name="phish", label_window_s=25, model_params={"crosses": []}, consume_batch=100)


def _runner(project_dir, **overrides):
    cfg = ProjectConfig.load(project_dir)
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        if not q.length("events"):
            q.publish_many("events", phishing_events())
    return cfg, open_runner(cfg, StreamSettings(**(SETTINGS | overrides)))


def test_the_checkpoint_taken_at_a_snapshot_carries_the_registered_model_bytes(
    project_dir,
) -> None:
    cfg, runner = _runner(project_dir, snapshot_every=400, commit_every=10_000)
    report = runner.run(idle_timeout_s=0.0, block_ms=0)
    runner.queue.close()
    assert len(report.snapshots) == report.commits == 3  # every commit came with a snapshot
    store = CheckpointStore(cfg.path("artifacts"), "phish")
    blob = pickle.loads(store._store.get_bytes(store.key))
    _, registered = Registry.from_config(cfg).fetch("phish", report.snapshots[-1])
    assert blob["model"] == registered  # the same bytes, pickled once
    assert "model_" not in vars(blob["checkpoint"].learner)  # not a second time inside
    learner = store.load().learner
    x = phishing_events()[7]["x"]
    assert learner.predict_one(x) == runner.learner.predict_one(x)
    assert learner._final is learner.model_["LogisticRegression"]
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        assert q.pending("events", "phish") == 0 and q.lag("events", "phish") == 0


def test_a_run_leaves_the_garbage_collector_as_it_found_it(project_dir) -> None:
    gc.unfreeze()  # e.g. a test server of this session froze its heap when it started
    _, runner = _runner(project_dir)
    runner.run(max_events=300, block_ms=0)
    assert gc.get_freeze_count() == 0  # frozen for the loop only
    gc.freeze()  # a host that froze its own heap keeps it frozen
    try:
        frozen = gc.get_freeze_count()
        runner.run(max_events=300, block_ms=0)
        assert 0 < gc.get_freeze_count() <= frozen  # not unfrozen, nothing new frozen
    finally:
        gc.unfreeze()
        runner.queue.close()


@pytest.mark.parametrize("stream_project", ["sqlite", "redis"], indirect=True)
def test_read_ahead_on_redis_reads_each_event_once_and_never_past_the_limit(stream_project):
    from loopml.serve.stream.runner import _Reads

    cfg = stream_project
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        q.publish_many("events", phishing_events())
        total = q.length("events")
    settings = StreamSettings(**SETTINGS)
    runner = open_runner(cfg, settings)
    try:
        reads = _Reads(runner, block_ms=0, max_events=250)
        first = reads.next()
        reads.ahead()
        # Redis: the next batch is already on its way; SQLite: reads only when asked
        assert (reads._ahead is not None) == (cfg.url("queue").startswith("redis"))
        got = len(first)
        for _ in range(2):
            got += len(reads.next())
            reads.ahead()
        got += sum(len(b) for b in reads.drain())
        assert got == reads.read == 250  # 100 + 100 + 50, never a message more
        reads.close()
        # a whole run: the 250 delivered above (never applied) are recovered, the rest read
        report = runner.run(idle_timeout_s=0.0, block_ms=0)
        assert report.recovered == 250 and report.consumed == total - 250
    finally:
        runner.queue.close()
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        assert q.lag("events", settings.consumer_group) == 0


@pytest.mark.parametrize("stream_project", ["sqlite", "redis"], indirect=True)
def test_every_prediction_request_is_answered_once_with_checks_read_ahead(stream_project):
    """1200 requests, 500 per check: on Redis the second and third checks travel with the
    events read ahead, and the check still in flight when the run stops is answered."""
    cfg = stream_project
    events = phishing_events()[:300]
    x = events[0]["x"]
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        q.publish_many("events", events)
        q.publish_many(
            "prediction_requests", [{"request_id": f"r{i}", "x": x} for i in range(1200)]
        )
    runner = open_runner(cfg, StreamSettings(**SETTINGS), with_registry=False)
    try:
        report = runner.run(max_events=300, block_ms=0)
    finally:
        runner.queue.close()
    assert report.predictions == 1200 and report.consumed == 300
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        answers = q.consume("predictions", "t", "t", count=5000)
        assert q.pending("prediction_requests", "phish") == 0
        assert q.lag("prediction_requests", "phish") == 0
    assert sorted(int(m.payload["request_id"][1:]) for m in answers) == list(range(1200))
