"""Join each example with its label inside a fixed window of event time.

An impression is a question whose answer (a click) may come minutes later, or never.
Every example waits ``window`` seconds of *event time*: a label arriving inside the
window sets its answer; when the window closes it is resolved with whatever it has,
and with ``default_label`` (no click = negative) when nothing came. Event time, not wall
time, drives it, so a replayed or recovered stream resolves exactly the same way.
Resolution order is arrival order, which is what ``river.stream.simulate_qa`` does for a
constant delay, so progressive metrics match River's in-memory evaluation.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loopml.core.errors import ValidationError


@dataclass(slots=True)
class Pending:
    """An example waiting for its label; ``p`` is P(positive) predicted on arrival.

    ``p`` is None while not scored yet (a mini-batch scores on its end) or when the model
    had no opinion.
    """

    example_id: str
    x: dict[str, Any]
    y: Any
    expires: float
    p: float | None = None
    labelled: bool = False
    raw: dict[str, Any] | None = None  # the untransformed features, kept only for traces

    def __reduce__(self) -> tuple[Any, ...]:
        # a plain tuple pickles about twice as fast as the slots' field-by-field state
        args = (self.example_id, self.x, self.y, self.expires, self.p, self.labelled, self.raw)
        return (Pending, args)

    def __setstate__(self, state: Any) -> None:
        # checkpoints written before __reduce__: (None, {slot: value}) with the
        # prediction as River's probability dict under ``y_pred``
        slots = state[1] if isinstance(state, tuple) else state
        self.raw = None
        for name, value in slots.items():
            if name == "y_pred":
                name = "p"
                if isinstance(value, dict):
                    value = value.get(True, 0.0) if value else None
            setattr(self, name, value)


class LabelJoin:
    """Examples in, ``(example, label)`` out once their window has passed.

    >>> join = LabelJoin(window=10.0)
    >>> _ = join.add("imp1", ts=0.0, x={"item": "a"})
    >>> _ = join.add("imp2", ts=5.0, x={"item": "b"})
    >>> join.label("imp2", ts=8.0, y=True)
    'joined'
    >>> join.next_expiry
    10.0
    >>> [(p.example_id, p.y) for p in join.due(now=15.0)]
    [('imp1', False), ('imp2', True)]
    >>> join.label("imp1", ts=16.0, y=True)
    'unmatched'
    """

    def __init__(self, window: float, default_label: Any = False) -> None:
        if isinstance(window, bool) or not isinstance(window, int | float) or window < 0:
            raise ValidationError(
                f"label window must be a number of seconds >= 0, got {window!r}",
                field="label_window_s",
            )
        self.window = float(window)
        self.default_label = default_label
        # arrival order (resolution pops from the left) and lookup by id for labels
        self._order: deque[Pending] = deque()
        self._by_id: dict[str, Pending] = {}
        #: When the oldest waiting example's window closes (inf when none waits): the
        #: learner asks for due examples only once its clock reaches it.
        self.next_expiry = math.inf

    def __len__(self) -> int:
        return len(self._order)

    def add(
        self, example_id: str, ts: float, x: dict[str, Any], y: Any = None, p: float | None = None
    ) -> Pending:
        """Hold an example until ``ts + window``; ``y`` is its answer if already known."""
        known = y is not None
        item = Pending(
            example_id, x, y if known else self.default_label, ts + self.window, p, known
        )
        if not self._order:
            self.next_expiry = item.expires
        self._order.append(item)
        self._by_id[example_id] = item
        return item

    def label(self, example_id: str, ts: float, y: Any) -> str:
        """Attach a label: ``joined``, ``late`` (window closed) or ``unmatched`` (unknown id)."""
        item = self._by_id.get(example_id)
        if item is None:
            return "unmatched"
        if ts >= item.expires:
            return "late"
        item.y = y
        item.labelled = True
        return "joined"

    def due(self, now: float) -> Iterator[Pending]:
        """Pop, in arrival order, every example whose window closed at or before ``now``."""
        order, by_id = self._order, self._by_id
        while order:
            item = order[0]
            if item.expires > now:
                self.next_expiry = item.expires
                return
            order.popleft()
            if by_id.get(item.example_id) is item:
                del by_id[item.example_id]
            yield item
        self.next_expiry = math.inf

    def release(self, now: float) -> list[Pending]:
        """:meth:`due` as a list (the learner's per-event call: no generator to set up)."""
        order, by_id = self._order, self._by_id
        out = []
        while order and order[0].expires <= now:
            item = order.popleft()
            if by_id.get(item.example_id) is item:
                del by_id[item.example_id]
            out.append(item)
        self.next_expiry = order[0].expires if order else math.inf
        return out

    def drain(self) -> Iterator[Pending]:
        """Pop everything (end of a finite stream), in arrival order."""
        return self.due(math.inf)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # checkpoints written before the deque held an OrderedDict of dict predictions
        old = state.pop("_pending", None)
        if old is not None:
            state["_order"] = deque(old.values())
            state["_by_id"] = dict(old)
            first = state["_order"][0].expires if old else math.inf
            state["next_expiry"] = first
        self.__dict__.update(state)
