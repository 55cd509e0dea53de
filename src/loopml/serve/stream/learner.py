"""The streaming learner's state machine: predict on arrival, learn when the label is due.

:class:`OnlineLearner` holds everything that must survive a crash (the model, the
examples waiting for labels, the progressive metrics, the profiles, the ids and stream
positions already processed), and nothing about queues or files: the runner feeds it
messages and pickles it as a checkpoint. Feeding the same events in the same order
always gives the same model, which is what makes recovery checkable and lets its
metrics equal ``river.evaluate.progressive_val_score``.

It runs a whole delivered batch in one loop, and the work per event is kept to what
the model needs: ids checked against the seen set once per batch, impressions encoded
from cached per-profile parts (:mod:`.impressions`), River's logistic regression scored
from its own weights (:func:`~.models.proba_scorer`), metrics and counts booked once
per batch. None of it changes a number: the tests compare it with the one-event-at-a-time
general path and with River.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any

from loopml.core.errors import ValidationError
from loopml.serve.stream.events import EXAMPLE, LABEL, OTHER, PROFILE, EventReader
from loopml.serve.stream.features import compile_front, note_kinds
from loopml.serve.stream.impressions import ImpressionEncoder
from loopml.serve.stream.join import LabelJoin, Pending
from loopml.serve.stream.models import (
    learn_rows,
    make_model,
    proba_scorer,
    split_stateless,
    supports_many,
)
from loopml.serve.stream.progressive import ProgressiveMetrics
from loopml.storage.queues.base import Message, MessageBatch, Position
from loopml.storage.queues.dedup import SeenIds

#: Per-batch tallies and the count each one adds to.
_TALLIES = {
    EXAMPLE: EXAMPLE,
    LABEL: LABEL,
    PROFILE: PROFILE,
    OTHER: OTHER,
    "joined": "labels_joined",
    "late": "labels_late",
    "unmatched": "labels_unmatched",
    "before_warm_start": "before_warm_start",
}
_LEARNT = (EXAMPLE, LABEL)
_COMPILED = ("_transform", "_score", "_encode")
_MODEL = ("model_", "_front", "_final")


class OnlineLearner:
    """Progressive validation and incremental learning over an event stream.

    Parameters
    ----------
    model:
        A name for :func:`~loopml.serve.stream.models.make_model` (``logreg``, ``ftrl``,
        ``hoeffding``, ``hoeffding_adaptive``, ``sgd``) or a River-style model object
        (e.g. a batch-trained warm start).
    label_window_s:
        Seconds of event time an example waits for its label (see
        :class:`~loopml.serve.stream.join.LabelJoin`).
    default_label:
        The label of an example nobody labelled inside the window (no click: ``False``).
    mini_batch:
        1 learns event by event. Above 1, each consumed chunk is predicted at once and
        labels are learnt ``mini_batch`` at a time with ``learn_many`` (faster; the model
        then moves in steps).
    trace:
        Keep ``(id, arrival ts, x, y, p)`` of every scored example in ``trace_`` (for
        comparisons and plots; memory grows with the stream).
    learn_after:
        Examples and labels at or before this event time (epoch seconds) are skipped: a
        speed layer warm-started from a batch model trained up to then must not learn
        them again.

    Examples
    --------
    >>> learner = OnlineLearner("logreg", label_window_s=2.0, model_params={"crosses": ()})
    >>> for t in range(300):
    ...     good = t % 2 == 0
    ...     _ = learner.process({"type": "example", "event_id": f"e{t}", "ts": t,
    ...                          "x": {"item": "good" if good else "bad"}, "y": good})
    >>> learner.finish()
    >>> learner.counts_["learnt"], round(learner.predict_one({"item": "good"}), 2)
    (300, 0.87)
    """

    def __init__(
        self,
        model: Any = "logreg",
        label_window_s: float = 3600.0,
        default_label: Any = False,
        mini_batch: int = 1,
        dedup_capacity: int = 100_000,
        curve_every: int = 1000,
        rolling: int = 5000,
        model_params: dict[str, Any] | None = None,
        trace: bool = False,
        learn_after: float | None = None,
    ) -> None:
        if isinstance(mini_batch, bool) or not isinstance(mini_batch, int) or mini_batch < 1:
            raise ValidationError(
                f"mini_batch must be a positive integer, got {mini_batch!r}", field="mini_batch"
            )
        self.model = model if isinstance(model, str) else type(model).__name__
        self.label_window_s = label_window_s
        self.default_label = default_label
        self.mini_batch = mini_batch
        self.learn_after = learn_after
        self.model_ = make_model(model, **(model_params or {})) if isinstance(model, str) else model
        if mini_batch > 1 and not supports_many(self.model_):
            raise ValidationError(
                f"mini_batch={mini_batch} needs a model with learn_many and predict_proba_many; "
                f"{type(self.model_).__name__} has none: use mini_batch=1, or the logreg, ftrl "
                "or sgd model",
                field="mini_batch",
            )
        self._front, self._final = split_stateless(self.model_)
        self.join_ = LabelJoin(label_window_s, default_label)
        self.metrics_ = ProgressiveMetrics(curve_every=curve_every, rolling=rolling)
        self.reader_ = EventReader()
        self.seen_ = SeenIds(dedup_capacity)
        self.positions_: dict[str, Position] = {}
        self.feature_kinds_: dict[str, str] = {}
        self.counts_: Counter[str] = Counter()
        self.clock_ = -math.inf
        #: (example id, arrival ts, x, y, P(positive)) of each scored example, if ``trace``
        self.trace_: list[tuple[str, float, dict[str, Any], Any, float]] | None = (
            [] if trace else None
        )
        self._learn_x: list[dict[str, Any]] = []
        self._learn_y: list[Any] = []
        self._compile()

    def _compile(self) -> None:
        """The per-event functions: feature transform, impression encoder, scorer."""
        self._transform = compile_front(self._front)
        self._score = proba_scorer(self._final)
        encoder = None
        if self.trace_ is None:  # a trace keeps each example's raw features: general path
            encoder = ImpressionEncoder.for_front(self._front, self.reader_, self.feature_kinds_)
        self._encode = encoder.encode if encoder is not None else None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in _COMPILED:  # closures and caches: rebuilt on load
            del state[name]
        if state.pop("_detached", False):  # the checkpoint carries the model on its own
            for name in _MODEL:
                del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "model_" in state:
            self._compile()

    @contextmanager
    def detached_model(self) -> Iterator[None]:
        """Pickle without the model inside (see :meth:`attach_model`)."""
        self._detached = True
        try:
            yield
        finally:
            del self._detached

    def attach_model(self, model: Any) -> None:
        """Put back the model of a learner pickled under :meth:`detached_model`."""
        self.model_ = model
        self._front, self._final = split_stateless(model)
        self._compile()

    # -- events ----------------------------------------------------------------------------
    def process(
        self, payload: dict[str, Any], source: str | None = None, position: Position | None = None
    ) -> bool:
        """Apply one event; False when it was skipped as a redelivery or a duplicate.

        ``source``/``position`` identify where it sits in the queue (topic partition and
        position): a position at or before the last one applied from that source is a
        redelivery and is skipped, which is how recovery avoids learning twice.
        """
        if source is None or position is None:
            return self._apply([payload], None, None, None, None) == 1
        return self._apply([payload], [source], [position], None, None) == 1

    def process_messages(
        self, messages: Iterable[Message] | MessageBatch, on_error: Any = None
    ) -> int:
        """Apply consumed queue messages in order; return how many were applied.

        A bad message is passed to ``on_error(message, error)`` (e.g. to dead-letter it)
        and the rest go on; without ``on_error`` the error propagates. A
        :class:`~loopml.storage.queues.base.MessageBatch` is read column by column.
        """
        if not isinstance(messages, MessageBatch):  # Message objects, maybe of several topics
            msgs = list(messages)
            sources = [f"{m.topic}:{m.partition}" for m in msgs]
            payloads = [m.payload for m in msgs]
            return self._apply(payloads, sources, [m.position for m in msgs], on_error, msgs)
        batch = messages
        if not batch.payloads:
            return 0
        names = {p: f"{batch.topic}:{p}" for p in set(batch.partitions)}
        sources: list[str] | str
        positions = batch.positions
        if len(names) == 1:
            (source,) = names.values()
            last = self.positions_.get(source)
            if (last is None or positions[0] > last) and all(
                map(operator.lt, positions, islice(positions, 1, None))
            ):
                sources = source  # one partition, all new: no check per message
            else:
                sources = [source] * len(positions)
        else:
            sources = [names[p] for p in batch.partitions]
        return self._apply(batch.payloads, sources, positions, on_error, batch)

    def _apply(
        self,
        payloads: list[dict[str, Any]],
        sources: list[str] | str | None,
        positions: list[Position] | None,
        on_error: Any,
        batch: MessageBatch | list[Message] | None,
    ) -> int:
        """The event loop shared by :meth:`process` and :meth:`process_messages`.

        Per event: skip redeliveries (position) and duplicates (event id), read it, and
        for an example transform it once and (one event at a time) score it; advancing
        the event-time clock releases the examples whose label window closed, which are
        learnt at once. Counts, progressive metrics and traces of the whole batch are
        booked at its end: they never feed back into the model.

        ``sources`` names each payload's queue partition for the redelivery check; one
        name means one partition whose positions are all new and increasing.
        """
        per_event = self.mini_batch == 1
        read = self.reader_.read
        seen = self.seen_.add
        join = self.join_
        add, label, release = join.add, join.label, join.release
        transform, score, encode = self._transform, self._score, self._encode
        learn = self._final.learn_one
        kinds = self.feature_kinds_
        last_positions = self.positions_
        learn_after = self.learn_after
        keep_raw = self.trace_ is not None
        clock = self.clock_
        done: list[Pending] = []  # resolved examples, in resolution order
        done_at: list[float] = []  # the clock when each was resolved
        new: list[Pending] = []  # mini-batch: examples to score at the end of the batch
        tally = dict.fromkeys(_TALLIES, 0)
        n_events = redelivered = duplicates = invalid = applied = 0
        check = sources is not None and sources.__class__ is not str
        # ids all new (the usual batch): recorded at the end in one call, not per event
        ids = [p.get("event_id") for p in payloads] if not check and len(payloads) > 1 else []
        bulk = bool(ids) and self.seen_.all_new(ids)
        unread: list[int] = []  # bulk: events that failed before their id counted
        i = -1
        try:
            for i, payload in enumerate(payloads):
                if check:
                    source, position = sources[i], positions[i]  # type: ignore[index]
                    last = last_positions.get(source)
                    if last is not None and position <= last:
                        redelivered += 1
                        continue
                    last_positions[source] = position
                n_events += 1
                try:
                    xt = None
                    if encode is not None and payload.get("type") == "impression":
                        event_id = payload.get("event_id")
                        if event_id.__class__ is str and event_id:
                            xt = encode(payload)  # None: not the common case, read it
                    if xt is None:
                        kind, ts, event_id, body, y = read(payload)
                    else:
                        kind, ts, y = EXAMPLE, payload["ts"], None
                except (ValidationError, TypeError, ValueError) as exc:
                    invalid += 1
                    if bulk:
                        unread.append(i)
                    if on_error is None:
                        raise
                    on_error(batch[i], _as_validation(payload, exc))  # type: ignore[index]
                    continue
                if not bulk and not seen(event_id):
                    duplicates += 1
                    continue
                if learn_after is not None and ts <= learn_after and kind in _LEARNT:
                    tally["before_warm_start"] += 1
                    continue
                try:
                    tally[kind] += 1
                    if kind == EXAMPLE:
                        if ts > clock:
                            clock = ts
                            if join.next_expiry <= ts:
                                released = release(ts)
                                done += released
                                done_at += [ts] * len(released)
                                if per_event:
                                    for item in released:
                                        learn(item.x, item.y)
                        if xt is None:
                            if not body.keys() <= kinds.keys():
                                note_kinds(kinds, body)
                            xt = transform(body)
                        if per_event:
                            item = add(event_id, ts, xt, y, score(xt))
                        else:
                            item = add(event_id, ts, xt, y)
                            new.append(item)
                        if keep_raw:
                            item.raw = body
                    elif kind == LABEL:
                        if ts > clock:
                            clock = ts
                            if join.next_expiry <= ts:
                                released = release(ts)
                                done += released
                                done_at += [ts] * len(released)
                                if per_event:
                                    for item in released:
                                        learn(item.x, item.y)
                        tally[label(body, ts, y)] += 1
                    applied += 1
                except (ValidationError, TypeError, ValueError) as exc:
                    # a feature value the model cannot use is bad input too, not a dead learner
                    invalid += 1
                    if on_error is None:
                        raise
                    on_error(batch[i], _as_validation(payload, exc))  # type: ignore[index]
        finally:
            if bulk and i >= 0:
                read_ids = ids if i == len(ids) - 1 else ids[: i + 1]
                if unread:
                    skip = set(unread)
                    read_ids = [e for j, e in enumerate(read_ids) if j not in skip]
                self.seen_.extend(read_ids)
            if sources.__class__ is str and i >= 0:
                self.positions_[sources] = positions[i]  # type: ignore[index]
            self.clock_ = clock
            if not per_event:
                self._learn_chunk(new, done)
            self._book(done, done_at)
            counts = self.counts_
            for key, n in (
                ("events", n_events),
                ("redelivered", redelivered),
                ("duplicates", duplicates),
                ("invalid", invalid),
            ):
                if n:
                    counts[key] += n
            for key, n in tally.items():
                if n:
                    counts[_TALLIES[key]] += n
        return applied

    # -- resolution ------------------------------------------------------------------------
    def _book(self, done: list[Pending], done_at: list[float]) -> None:
        """Counts, progressive metrics and traces of resolved (already learnt) examples."""
        if not done:
            return
        scored = [i for i, item in enumerate(done) if item.p is not None]
        if len(scored) == len(done):
            self.metrics_.update_many([i.y for i in done], [i.p for i in done], done_at)
        elif scored:
            self.metrics_.update_many(
                [done[i].y for i in scored],
                [done[i].p for i in scored],
                [done_at[i] for i in scored],
            )
        labelled = sum(item.labelled for item in done)
        counts = self.counts_
        counts["learnt"] += len(done)
        if labelled:
            counts["labelled_positive"] += labelled
        if labelled < len(done):
            counts["labelled_default"] += len(done) - labelled
        if self.trace_ is not None:
            window = self.label_window_s
            self.trace_.extend(
                (item.example_id, item.expires - window, item.raw, item.y, float(item.p))
                for item in done
                if item.p is not None
            )

    def _learn_chunk(self, new: list[Pending], resolved: list[Pending]) -> None:
        """Mini-batch mode, end of a consumed batch: score its new examples, then learn.

        The new examples are scored together with the model as it stands before any
        label of this batch is learnt (predict, then learn); resolved examples are learnt
        ``mini_batch`` at a time.
        """
        if new:
            rows = [item.x for item in new]
            final = self._final
            if hasattr(final, "predict_proba_dicts"):  # one vectorised call for the chunk
                for item, proba in zip(new, final.predict_proba_dicts(rows), strict=True):
                    item.p = proba.get(True, 0.0) if proba else None
            else:
                score = self._score
                for item in new:
                    item.p = score(item.x)
        for item in resolved:
            self._learn_x.append(item.x)
            self._learn_y.append(item.y)
            if len(self._learn_x) >= self.mini_batch:
                self._flush_batch()

    def _flush_batch(self) -> None:
        if not self._learn_x:
            return
        rows, ys = self._learn_x, self._learn_y
        self._learn_x, self._learn_y = [], []  # a batch the model refuses is dropped once
        learn_rows(self._final, rows, ys)

    def finish(self) -> None:
        """End of a finite stream: resolve every waiting example and learn the rest."""
        done = list(self.join_.drain())
        clock = self.clock_
        if self.mini_batch == 1:
            learn = self._final.learn_one
            for item in done:
                learn(item.x, item.y)
        else:
            self._learn_chunk([], done)
            self._flush_batch()
        self._book(done, [clock] * len(done))

    # -- serving ---------------------------------------------------------------------------
    def predict_one(self, x: dict[str, Any]) -> float:
        """P(positive) for raw features, with the model as it is now."""
        proba = self.model_.predict_proba_one(x)
        if not proba:
            return 0.5
        return float(proba.get(True, 0.0))

    def features_for(self, request: dict[str, Any]) -> dict[str, Any]:
        """Features of a prediction request: its ``x``, or an impression-like record."""
        if isinstance(request.get("x"), dict):
            return request["x"]
        return self.reader_.impression_features(request)

    @property
    def n_learnt(self) -> int:
        return self.counts_["learnt"]

    def status(self) -> dict[str, Any]:
        """Counts, waiting examples, event-time clock and progressive metrics."""
        return {
            "counts": dict(self.counts_),
            "waiting_for_labels": len(self.join_),
            "clock": self.clock_ if math.isfinite(self.clock_) else None,
            "metrics": self.metrics_.summary(),
            "positions": {k: list(v) for k, v in self.positions_.items()},
        }


def _as_validation(payload: dict[str, Any], exc: Exception) -> ValidationError:
    if isinstance(exc, ValidationError):
        return exc
    return ValidationError(
        f"event {payload.get('event_id')!r}: the model could not use it "
        f"({type(exc).__name__}: {exc}); send numbers or strings as feature values",
        field="x",
    )
