"""SIGKILL the learner process at random points; after restarts nothing is lost or learnt twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from loopml.serve.stream.checkpoint import CheckpointStore
from loopml.serve.stream.learner import OnlineLearner
from loopml.serve.stream.runner import run_learner
from loopml.storage.queues import open_queue

from .conftest import phishing_events

WINDOW = 25
SETTINGS = dict(
    name="phish",
    label_window_s=WINDOW,
    snapshots=False,
    consume_batch=32,
    commit_every=150,
    commit_seconds=3600,  # commits by count only: a kill then nearly always finds unacked work
    model="logreg",
    model_params={"crosses": []},
)


def _child(root: str) -> subprocess.Popen:
    script = textwrap.dedent(
        f"""
        from loopml.core.config import ProjectConfig
        from loopml.serve.stream.runner import run_learner
        run_learner(ProjectConfig.load({root!r}), idle_timeout_s=60, **{SETTINGS!r})
        """
    )
    return subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ))


def _kill_when_lag_below(cfg, proc: subprocess.Popen, threshold: int, total: int) -> int:
    """SIGKILL ``proc`` once fewer than ``threshold`` events remain undelivered."""
    deadline = time.monotonic() + 60
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        while time.monotonic() < deadline:
            lag = q.lag("events", "phish") if q.partitions("events") else total
            if lag <= threshold or proc.poll() is not None:
                break
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        return q.pending("events", "phish")


@pytest.mark.parametrize("stream_project", ["sqlite", "redis"], indirect=True)
def test_sigkill_at_random_points_loses_nothing_and_learns_nothing_twice(stream_project) -> None:
    _sigkill_at_random_points(stream_project, pack=1)


@pytest.mark.parametrize("stream_project", ["redis"], indirect=True)
def test_sigkill_inside_packed_entries_loses_nothing_and_learns_nothing_twice(
    stream_project,
) -> None:
    """Entries of 7 events read 32 at a time: kills and commits fall inside entries."""
    _sigkill_at_random_points(stream_project, pack=7)


def _sigkill_at_random_points(cfg, pack: int) -> None:
    rng = random.Random((7 if "sqlite" in cfg.url("queue") else 11) + pack)
    events = phishing_events(delay_labels=True)[:1600]  # 800 examples and their labels
    retried = [dict(e) for e in rng.sample(events, 60)]  # producer retries: same event ids
    stream = events[:900] + retried[:30] + events[900:] + retried[30:]
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        q.publish_many("events", stream, pack=pack)
    total = len(stream)

    pending_at_kill = []
    for threshold in sorted(rng.sample(range(150, total - 200), 1), reverse=True):
        proc = _child(str(cfg.root))
        pending_at_kill.append(_kill_when_lag_below(cfg, proc, threshold, total))
    assert any(p > 0 for p in pending_at_kill), "no kill caught unacked work: test too weak"

    report = run_learner(cfg, idle_timeout_s=0.5, **SETTINGS)  # the final restart drains it
    learner = CheckpointStore(cfg.path("artifacts"), "phish").load().learner
    learner.finish()

    # the same events, in one uninterrupted in-memory pass
    reference = OnlineLearner("logreg", label_window_s=WINDOW, model_params={"crosses": []})
    for e in stream:
        reference.process(e)
    reference.finish()

    counts = dict(learner.counts_)
    redelivered = counts.pop("redelivered", 0)  # applied before a kill, skipped by position
    assert counts == dict(reference.counts_)
    assert counts["example"] == 800 and counts["learnt"] == 800  # none lost, none twice
    assert counts["duplicates"] == 60  # retried publishes counted once
    assert redelivered <= sum(pending_at_kill)
    assert learner.metrics_.log_loss.get() == reference.metrics_.log_loss.get()
    assert (
        learner.model_["LogisticRegression"].weights
        == reference.model_["LogisticRegression"].weights
    )
    assert report.recovered == pending_at_kill[-1]
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        assert q.pending("events", "phish") == 0 and q.lag("events", "phish") == 0


def test_crash_between_checkpoint_and_ack_skips_the_redelivered_events(project_dir) -> None:
    """The narrowest window: the checkpoint is written, the process dies before acking."""
    from loopml.core.config import ProjectConfig
    from loopml.serve.stream.runner import open_runner
    from loopml.serve.stream.settings import StreamSettings

    cfg = ProjectConfig.load(project_dir)
    stream = phishing_events()[:600]
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        q.publish_many("events", stream)
    settings = StreamSettings(
        name="phish",
        label_window_s=WINDOW,
        consume_batch=50,
        commit_every=10_000,
        commit_seconds=3600,
        model_params={"crosses": []},
    )
    runner = open_runner(cfg, settings, with_registry=False)
    runner.run(max_events=400)  # ends with a commit: checkpoint, then ack
    # one more batch is applied and checkpointed, then the process dies before the ack
    runner._apply(runner.queue.consume("events", "phish", "phish", count=100))
    runner.checkpoints.save(runner.state)
    runner.queue.close()

    again = open_runner(cfg, settings, with_registry=False)
    report = again.run(idle_timeout_s=0.2)
    assert report.recovered == 100
    learner = again.learner
    assert learner.counts_["redelivered"] == 100  # all 100 were already in the checkpoint
    assert learner.counts_["example"] == 600
    again.queue.close()


@pytest.mark.parametrize("stream_project", ["redis"], indirect=True)
def test_a_checkpoint_inside_a_packed_entry_resumes_at_the_event(stream_project) -> None:
    """Redis, entries of 10: the learner commits after 405 events (half of entry 41 is
    acked, its entry is not), applies and checkpoints 100 more, dies before acking. The
    restart gets entries 41-51 back whole and skips exactly the 105 events it learnt."""
    from loopml.serve.stream.runner import open_runner
    from loopml.serve.stream.settings import StreamSettings

    cfg = stream_project
    stream = phishing_events()[:600]
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        q.publish_many("events", stream, pack=10)
    settings = StreamSettings(
        name="phish",
        label_window_s=WINDOW,
        consume_batch=50,
        commit_every=10_000,
        commit_seconds=3600,
        model_params={"crosses": []},
    )
    runner = open_runner(cfg, settings, with_registry=False)
    assert runner.run(max_events=405).consumed == 405  # never past the limit
    assert runner.learner.positions_["events:0"][2] == 4  # inside an entry
    runner._apply(runner.queue.consume("events", "phish", "phish", count=100))
    runner.checkpoints.save(runner.state)
    runner.queue.close()

    again = open_runner(cfg, settings, with_registry=False)
    report = again.run(idle_timeout_s=0.2)
    assert report.recovered == 110  # entries 41-51: 400..509
    learner = again.learner
    assert learner.counts_["redelivered"] == 105  # 400..504 were in the checkpoint
    assert learner.counts_["example"] == 600 and learner.counts_.get("duplicates", 0) == 0
    again.queue.close()
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        assert q.pending("events", "phish") == 0 and q.lag("events", "phish") == 0
