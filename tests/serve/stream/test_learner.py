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


def _sim_events(days: int = 1, impressions: int = 3000) -> list[dict]:
    from loopml.serve.stream.produce import event_payloads
    from loopml.sim.config import WorldConfig
    from loopml.sim.world import World

    world = World(
        WorldConfig(
            days=days, impressions_per_day=impressions, n_users=300, n_items=40, format_change_day=0
        )
    )
    return [p for p, _ in event_payloads(world.generate())]


def _batches(events: list[dict], size: int) -> list:
    from loopml.storage.queues.base import MessageBatch

    out = []
    for start in range(0, len(events), size):
        chunk = events[start : start + size]
        seqs = range(start + 1, start + 1 + len(chunk))
        out.append(
            MessageBatch(
                "events",
                [0] * len(chunk),
                [str(s) for s in seqs],
                [(s, 0) for s in seqs],
                [None] * len(chunk),
                chunk,
            )  # fmt: skip
        )
    return out


@pytest.mark.parametrize("model", ["logreg", "ftrl", "hoeffding"])
def test_batched_fast_path_learns_exactly_what_the_event_by_event_path_learns(model: str) -> None:
    """Batches, cached impression encoding and fast scoring change no number.

    The traced learner takes the general path (raw features kept, one event at a time);
    the other consumes delivered batches through the impression encoder and scorer.
    """
    events = _sim_events()
    general = OnlineLearner(model, label_window_s=900, trace=True)
    for e in events:
        general.process(e)
    fast = OnlineLearner(model, label_window_s=900)
    assert (fast._encode is not None) == (model != "hoeffding") and general._encode is None
    for batch in _batches(events, 700):
        fast.process_messages(batch)
    for learner in (general, fast):
        learner.finish()
    assert dict(fast.counts_) == dict(general.counts_) and fast.n_learnt > 2500
    assert fast.metrics_.log_loss.get() == general.metrics_.log_loss.get()
    assert fast.metrics_.summary() == general.metrics_.summary()
    x = general.features_for({"user_id": "u000003", "item_id": "i0004", "position": 1, "ts": 0})
    assert fast.predict_one(x) == general.predict_one(x)
    assert fast.feature_kinds_.keys() == general.feature_kinds_.keys()


def test_mini_batches_learn_with_river_learn_many_numbers() -> None:
    """The learner's sparse mini-batch step gives what River's learn_many would."""
    from loopml.serve.stream import models

    events = phishing_events()
    sparse = OnlineLearner("logreg", label_window_s=DELAY, mini_batch=40)
    dense = OnlineLearner("logreg", label_window_s=DELAY, mini_batch=40)
    dense_learn = models.learn_rows

    def river_learn_many(model, rows, ys) -> None:
        import pandas as pd

        model.learn_many(pd.DataFrame(rows).fillna(0.0), pd.Series(ys))

    for batch in _batches(events, 100):
        sparse.process_messages(batch)
    models_learn_rows = dense_learn
    try:
        import loopml.serve.stream.learner as learner_module

        learner_module.learn_rows = river_learn_many
        for batch in _batches(events, 100):
            dense.process_messages(batch)
        dense.finish()
    finally:
        learner_module.learn_rows = models_learn_rows
    sparse.finish()
    assert sparse.n_learnt == dense.n_learnt == 1250
    assert sparse.metrics_.log_loss.get() == pytest.approx(dense.metrics_.log_loss.get(), rel=1e-9)
    got, want = sparse._final.weights, dense._final.weights
    assert got.keys() == want.keys()
    assert max(abs(got[k] - want[k]) for k in got) < 1e-9


def test_duplicates_inside_a_batch_and_ids_of_bad_events() -> None:
    events = phishing_events()[:300]
    bad = {"type": "example", "event_id": "x5", "ts": "never", "x": {}}  # x5's id, unreadable
    stream = events[:5] + [bad] + events[5:150] + events[100:120] + events[150:]
    learner = OnlineLearner("logreg", label_window_s=5)
    dead = []
    for batch in _batches(stream, 64):
        learner.process_messages(batch, on_error=lambda m, e: dead.append(m.payload))
    learner.finish()
    assert dead == [bad]
    assert learner.counts_["duplicates"] == 20 and learner.counts_["invalid"] == 1
    assert learner.n_learnt == 300  # the real x5 (after its bad twin) still counted once
    assert len(learner.seen_) == 300


def test_a_learner_checkpointed_before_the_batch_loop_loads_and_goes_on() -> None:
    """Checkpoints of the earlier layout: OrderedDict join holding probability dicts,
    River's LogLoss and a deque window, an OrderedDict of seen ids, profiles with None."""
    import io
    from collections import OrderedDict, deque

    from river import metrics

    from loopml.serve.stream.join import LabelJoin, Pending
    from loopml.serve.stream.progressive import ProgressiveMetrics
    from loopml.storage.queues.dedup import SeenIds

    events = _sim_events()
    half = len(events) // 2
    reference = OnlineLearner("logreg", label_window_s=900)
    for e in events:
        reference.process(e)
    learner = OnlineLearner("logreg", label_window_s=900)
    for e in events[:half]:
        learner.process(e)
    for attrs in learner.reader_.users.values():
        attrs["extra"] = None

    def old_state(obj):  # what the earlier classes pickled
        if isinstance(obj, LabelJoin):
            pending = OrderedDict((p.example_id, p) for p in obj._order)
            return {"window": obj.window, "default_label": obj.default_label, "_pending": pending}
        if isinstance(obj, Pending):  # a slots dataclass: (None, {slot: value})
            proba = {True: obj.p, False: 1 - obj.p}
            fields = ("example_id", "x", "y", "expires", "y_pred", "labelled", "raw")
            values = (obj.example_id, obj.x, obj.y, obj.expires, proba, obj.labelled, obj.raw)
            return (None, dict(zip(fields, values, strict=True)))
        if isinstance(obj, ProgressiveMetrics):
            log_loss = metrics.LogLoss()
            log_loss._mean.n, log_loss._mean._mean = obj.log_loss.n, obj.log_loss.get()
            ring = [obj._window(r).tolist() for r in (obj._y, obj._p, obj._loss)]
            state = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
            window = deque(zip(*ring, strict=True), maxlen=obj.rolling)
            return state | {"log_loss": log_loss, "_window": window, "_window_loss": 0.0}
        if isinstance(obj, SeenIds):
            return {"capacity": obj.capacity, "_ids": OrderedDict.fromkeys(obj._order)}
        return None

    class OldPickler(pickle.Pickler):
        def reducer_override(self, obj):
            state = old_state(obj)
            return NotImplemented if state is None else (object.__new__, (type(obj),), state)

    buffer = io.BytesIO()
    OldPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(learner)
    loaded = pickle.loads(buffer.getvalue())
    assert type(loaded.seen_) is SeenIds and len(loaded.join_) == len(learner.join_) > 0
    assert all(None not in attrs.values() for attrs in loaded.reader_.users.values())
    for e in events[half:]:
        loaded.process(e)
    assert dict(loaded.counts_) == dict(reference.counts_)
    assert loaded.metrics_.log_loss.get() == reference.metrics_.log_loss.get()
    assert loaded._final.weights == reference._final.weights
