"""The learner adds no error of its own: its metrics equal River's in-memory evaluation."""

from __future__ import annotations

import pickle

import pytest
from river import datasets, evaluate, linear_model, metrics, preprocessing, tree

from loopml.core.errors import ValidationError
from loopml.serve.stream.checkpoint import CheckpointStore
from loopml.serve.stream.learner import OnlineLearner
from loopml.serve.stream.runner import run_learner
from loopml.storage.queues import open_queue

from .conftest import phishing_events

DELAY = 25


def _models():
    return {
        "logreg": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        "hoeffding": lambda: tree.HoeffdingTreeClassifier(grace_period=50),
    }


@pytest.mark.parametrize("kind", ["logreg", "hoeffding"])
def test_progressive_log_loss_equals_river_in_memory(kind: str) -> None:
    make = _models()[kind]
    reference = evaluate.progressive_val_score(
        datasets.Phishing(), make(), metrics.LogLoss(), delay=DELAY
    )
    learner = OnlineLearner(make(), label_window_s=DELAY)
    for event in phishing_events(delay_labels=True):
        learner.process(event)
    learner.finish()
    assert learner.n_learnt == 1250
    assert learner.counts_["labels_joined"] == 1250
    assert learner.metrics_.log_loss.get() == pytest.approx(reference.get(), rel=1e-12, abs=0)
    assert learner.metrics_.summary()["roc_auc"] > 0.85


@pytest.mark.parametrize("stream_project", ["sqlite", "redis"], indirect=True)
def test_through_the_queue_metrics_still_equal_river(stream_project) -> None:
    cfg = stream_project
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        q.publish_many("events", phishing_events())
    reference = evaluate.progressive_val_score(
        datasets.Phishing(),
        preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        metrics.LogLoss(),
        delay=DELAY,
    )
    # small batches and frequent commits: the checkpoint round trips must not change a bit
    report = run_learner(
        cfg,
        name="phish",
        idle_timeout_s=0.3,
        label_window_s=DELAY,
        snapshots=False,
        consume_batch=64,
        commit_every=100,
        model="logreg",
        model_params={"crosses": []},
    )
    assert report.consumed == 1250 and report.commits >= 9
    learner = CheckpointStore(cfg.path("artifacts"), "phish").load().learner
    # the stream is open-ended: the last DELAY examples still wait for their window
    assert learner.n_learnt == 1250 - DELAY
    in_memory = OnlineLearner("logreg", label_window_s=DELAY, model_params={"crosses": []})
    for event in phishing_events():
        in_memory.process(event)
    assert learner.metrics_.log_loss.get() == in_memory.metrics_.log_loss.get()
    learner.finish()
    in_memory.finish()
    assert (
        learner.model_["LogisticRegression"].weights
        == in_memory.model_["LogisticRegression"].weights
    )
    # and the in-memory learner with River's model equals progressive_val_score
    plain = OnlineLearner(
        preprocessing.StandardScaler() | linear_model.LogisticRegression(), label_window_s=DELAY
    )
    for event in phishing_events():
        plain.process(event)
    plain.finish()
    assert plain.metrics_.log_loss.get() == pytest.approx(reference.get(), rel=1e-12)


def test_duplicates_and_redeliveries_count_once() -> None:
    events = phishing_events()[:200]
    learner = OnlineLearner("logreg", label_window_s=5)
    for e in events + events[50:80]:  # a producer retried thirty publishes
        learner.process(e)
    learner.finish()
    assert learner.n_learnt == 200
    assert learner.counts_["duplicates"] == 30
    # positions: an already-applied position is a redelivery, skipped before reading it
    assert learner.process(events[0] | {"event_id": "new"}, source="events:0", position=(5, 0))
    assert not learner.process(events[1] | {"event_id": "new2"}, "events:0", (5, 0))
    assert learner.counts_["redelivered"] == 1


@pytest.mark.parametrize("model", ["logreg", "sgd"])
def test_mini_batch_learns_and_scores_every_example(model: str) -> None:
    from loopml.storage.queues.base import Message

    events = phishing_events()
    learner = OnlineLearner(model, label_window_s=DELAY, mini_batch=50)
    for start in range(0, len(events), 100):
        chunk = [
            Message("events", 0, str(i), (i, 0), None, e)
            for i, e in enumerate(events[start : start + 100], start=start + 1)
        ]
        learner.process_messages(chunk)
    learner.finish()
    summary = learner.metrics_.summary()
    assert learner.n_learnt == 1250 and summary["n"] == 1250
    assert summary["roc_auc"] > 0.7  # fewer, larger steps than per event, still learning


def test_mini_batch_refuses_a_model_without_learn_many() -> None:
    with pytest.raises(ValidationError, match="mini_batch=8 needs a model with learn_many"):
        OnlineLearner("hoeffding", mini_batch=8)


@pytest.mark.parametrize("model", ["logreg", "ftrl", "hoeffding", "hoeffding_adaptive", "sgd"])
def test_every_model_learns_phishing_and_pickles(model: str) -> None:
    # scikit-learn's partial_fit costs ~1 ms a call: one event at a time it runs mini-batches
    batch = 100 if model == "sgd" else 1
    learner = OnlineLearner(
        model, label_window_s=DELAY, mini_batch=batch, model_params={"crosses": []}
    )
    if batch == 1:
        for e in phishing_events():
            learner.process(e)
    else:
        from loopml.storage.queues.base import Message

        events = phishing_events()
        for start in range(0, len(events), batch):
            learner.process_messages(
                Message("events", 0, str(i), (i, 0), None, e)
                for i, e in enumerate(events[start : start + batch], start=start + 1)
            )
    learner.finish()
    assert learner.metrics_.summary()["roc_auc"] > 0.7, model
    clone = pickle.loads(pickle.dumps(learner))
    x = phishing_events()[0]["x"]
    assert clone.predict_one(x) == learner.predict_one(x)


def test_bad_events_are_dead_lettered_and_the_stream_goes_on(project_dir) -> None:
    from loopml.core.config import ProjectConfig

    cfg = ProjectConfig.load(project_dir)
    good = phishing_events()[:100]
    bad = [
        {"type": "example", "ts": 3, "x": {}},  # no event_id
        {"type": "example", "event_id": "b2", "ts": "yesterday", "x": {}},
        {"type": "label", "event_id": "b3", "ts": 4, "y": True},  # no example_id
        {"type": "click", "event_id": "b4", "ts": 5, "impression_id": ""},
        {"type": "example", "event_id": "b5", "ts": 5, "x": {"f": [1, 2]}},  # unusable value
    ]
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        q.publish_many("events", good[:50] + bad + good[50:])
    report = run_learner(cfg, name="phish", idle_timeout_s=0.3, label_window_s=5, snapshots=False)
    assert report.consumed == 105 and report.dead_lettered == 5
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        dead = q.consume("events.dead", "inspect", "me", count=10)
        assert q.pending("events", "phish") == 0
    fields = [d.payload["field"] for d in dead]
    assert fields == ["event_id", "ts", "example_id", "impression_id", "x"]
    assert "could not use it" in dead[4].payload["error"]
    assert "no event_id" in dead[0].payload["error"]
    learner = CheckpointStore(cfg.path("artifacts"), "phish").load().learner
    assert learner.counts_["invalid"] == 5
    assert learner.n_learnt + len(learner.join_) == 100  # every good example, none bad
