"""The streaming learner's state machine: predict on arrival, learn when the label is due.

:class:`OnlineLearner` holds everything that must survive a crash (the model, the
examples waiting for labels, the progressive metrics, the profiles, the ids and stream
positions already processed), and nothing about queues or files: the runner feeds it
messages and pickles it as a checkpoint. Feeding the same events in the same order
always gives the same model, which is what makes recovery checkable and lets its
metrics equal ``river.evaluate.progressive_val_score``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from loopml.core.errors import ValidationError
from loopml.serve.stream.events import EXAMPLE, LABEL, EventReader
from loopml.serve.stream.join import LabelJoin, Pending
from loopml.serve.stream.models import make_model, split_stateless, supports_many
from loopml.serve.stream.progressive import ProgressiveMetrics
from loopml.storage.queues.base import Message, Position
from loopml.storage.queues.dedup import SeenIds


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

    # -- one event -----------------------------------------------------------------------
    def process(
        self, payload: dict[str, Any], source: str | None = None, position: Position | None = None
    ) -> bool:
        """Apply one event; False when it was skipped as a redelivery or a duplicate.

        ``source``/``position`` identify where it sits in the queue (topic partition and
        position): a position at or before the last one applied from that source is a
        redelivery and is skipped, which is how recovery avoids learning twice.
        """
        read = self._admit(payload, source, position)
        if read is None:
            return False
        kind, ts, event_id, body, y = read
        if kind == EXAMPLE:
            self._advance(ts, batch=None)
            self._note_features(body)
            xt = self._transform(body)
            item = self.join_.add(event_id, ts, xt, y, self._final.predict_proba_one(xt))
            if self.trace_ is not None:
                item.raw = body
        elif kind == LABEL:
            self._advance(ts, batch=None)
            self.counts_[f"labels_{self.join_.label(body, ts, y)}"] += 1
        return True

    def _admit(
        self, payload: dict[str, Any], source: str | None, position: Position | None
    ) -> tuple | None:
        if source is not None and position is not None:
            last = self.positions_.get(source)
            if last is not None and position <= last:
                self.counts_["redelivered"] += 1
                return None
            self.positions_[source] = position
        self.counts_["events"] += 1
        read = self.reader_.read(payload)  # ValidationError: caller dead-letters it
        if not self.seen_.add(read[2]):
            self.counts_["duplicates"] += 1
            return None
        if (
            self.learn_after is not None
            and read[0] in (EXAMPLE, LABEL)
            and (read[1] <= self.learn_after)
        ):
            self.counts_["before_warm_start"] += 1
            return None
        self.counts_[read[0]] += 1
        return read

    def _transform(self, x: dict[str, Any]) -> dict[str, Any]:
        for step in self._front:
            x = step.transform_one(x)
        return x

    def _note_features(self, x: dict[str, Any]) -> None:
        kinds = self.feature_kinds_
        if x.keys() <= kinds.keys():
            return
        for key, value in x.items():
            if key not in kinds:
                kinds[key] = (
                    "category"
                    if isinstance(value, str)
                    else "bool"
                    if isinstance(value, bool)
                    else "float"
                )

    # -- a chunk of messages ------------------------------------------------------------
    def process_messages(self, messages: Iterable[Message], on_error: Any = None) -> int:
        """Apply consumed queue messages in order; return how many were applied.

        A bad message is passed to ``on_error(message, error)`` (e.g. to dead-letter it)
        and the rest go on; without ``on_error`` the error propagates.
        """
        if self.mini_batch > 1:
            return self._process_chunk(messages, on_error)
        applied = 0
        for m in messages:
            try:
                applied += self.process(m.payload, f"{m.topic}:{m.partition}", m.position)
            except (ValidationError, TypeError, ValueError) as exc:
                # a feature value the model cannot use is bad input too, not a dead learner
                self.counts_["invalid"] += 1
                if on_error is None:
                    raise
                on_error(m, _as_validation(m, exc))
        return applied

    def _process_chunk(self, messages: Iterable[Message], on_error: Any) -> int:
        new: list[Pending] = []
        resolved: list[Pending] = []
        applied = 0
        for m in messages:
            try:
                read = self._admit(m.payload, f"{m.topic}:{m.partition}", m.position)
            except ValidationError as exc:
                self.counts_["invalid"] += 1
                if on_error is None:
                    raise
                on_error(m, exc)
                continue
            if read is None:
                continue
            applied += 1
            kind, ts, event_id, body, y = read
            if kind == EXAMPLE:
                self._advance(ts, batch=resolved)
                self._note_features(body)
                item = self.join_.add(event_id, ts, self._transform(body), y)
                if self.trace_ is not None:
                    item.raw = body
                new.append(item)
            elif kind == LABEL:
                self._advance(ts, batch=resolved)
                self.counts_[f"labels_{self.join_.label(body, ts, y)}"] += 1
        if new:
            self._predict_chunk(new)
        for item in resolved:
            self._score_and_learn(item)
        return applied

    def _predict_chunk(self, items: list[Pending]) -> None:
        rows = [i.x for i in items]
        final = self._final
        if hasattr(final, "predict_proba_dicts"):  # no pandas round trip
            proba = final.predict_proba_dicts(rows)
            for item, row in zip(items, proba, strict=True):
                item.y_pred = row
            return
        import pandas as pd

        proba = final.predict_proba_many(pd.DataFrame(rows).fillna(0.0))
        columns = list(proba.columns)
        for item, row in zip(items, proba.itertuples(index=False), strict=True):
            item.y_pred = dict(zip(columns, map(float, row), strict=True))

    # -- resolution ------------------------------------------------------------------------
    def _advance(self, ts: float, batch: list[Pending] | None) -> None:
        if ts <= self.clock_:
            return
        self.clock_ = ts
        for item in self.join_.due(ts):
            if batch is None:
                self._score_and_learn(item)
            else:
                batch.append(item)

    def _score_and_learn(self, item: Pending) -> None:
        self.metrics_.update(item.y, item.y_pred, self.clock_)
        if self.trace_ is not None and item.y_pred:
            arrival = item.expires - self.label_window_s
            p = float(item.y_pred.get(True, 0.0))
            self.trace_.append((item.example_id, arrival, item.raw, item.y, p))
        self.counts_["learnt"] += 1
        self.counts_["labelled_positive" if item.labelled else "labelled_default"] += 1
        if self.mini_batch == 1:
            self._final.learn_one(item.x, item.y)
            return
        self._learn_x.append(item.x)
        self._learn_y.append(item.y)
        if len(self._learn_x) >= self.mini_batch:
            self._flush_batch()

    def _flush_batch(self) -> None:
        if not self._learn_x:
            return
        final = self._final
        if hasattr(final, "learn_dicts"):
            final.learn_dicts(self._learn_x, self._learn_y)
        else:
            import pandas as pd

            final.learn_many(pd.DataFrame(self._learn_x).fillna(0.0), pd.Series(self._learn_y))
        self._learn_x, self._learn_y = [], []

    def finish(self) -> None:
        """End of a finite stream: resolve every waiting example and learn the rest."""
        for item in self.join_.drain():
            self._score_and_learn(item)
        self._flush_batch()

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


def _as_validation(message: Message, exc: Exception) -> ValidationError:
    if isinstance(exc, ValidationError):
        return exc
    return ValidationError(
        f"event {message.payload.get('event_id')!r}: the model could not use it "
        f"({type(exc).__name__}: {exc}); send numbers or strings as feature values",
        field="x",
    )
