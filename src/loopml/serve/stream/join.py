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

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loopml.core.errors import ValidationError


@dataclass(slots=True)
class Pending:
    """An example waiting for its label; ``y_pred`` is the prediction made on arrival."""

    example_id: str
    x: dict[str, Any]
    y: Any
    expires: float
    y_pred: Any = None
    labelled: bool = False
    raw: dict[str, Any] | None = None  # the untransformed features, kept only for traces


class LabelJoin:
    """Examples in, ``(example, label)`` out once their window has passed.

    >>> join = LabelJoin(window=10.0)
    >>> _ = join.add("imp1", ts=0.0, x={"item": "a"})
    >>> _ = join.add("imp2", ts=5.0, x={"item": "b"})
    >>> join.label("imp2", ts=8.0, y=True)
    'joined'
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
        # OrderedDict: its oldest entry is found in O(1) after deletions at the front, where a
        # plain dict would rescan the holes those deletions leave behind
        self._pending: OrderedDict[str, Pending] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self, example_id: str, ts: float, x: dict[str, Any], y: Any = None, y_pred: Any = None
    ) -> Pending:
        """Hold an example until ``ts + window``; ``y`` is its answer if already known."""
        known = y is not None
        item = Pending(
            example_id, x, y if known else self.default_label, ts + self.window, y_pred, known
        )
        self._pending[example_id] = item
        return item

    def label(self, example_id: str, ts: float, y: Any) -> str:
        """Attach a label: ``joined``, ``late`` (window closed) or ``unmatched`` (unknown id)."""
        item = self._pending.get(example_id)
        if item is None:
            return "unmatched"
        if ts >= item.expires:
            return "late"
        item.y = y
        item.labelled = True
        return "joined"

    def due(self, now: float) -> Iterator[Pending]:
        """Pop, in arrival order, every example whose window closed at or before ``now``."""
        pending = self._pending
        while pending:
            key = next(iter(pending))
            item = pending[key]
            if item.expires > now:
                return
            pending.popitem(last=False)
            yield item

    def drain(self) -> Iterator[Pending]:
        """Pop everything (end of a finite stream), in arrival order."""
        while self._pending:
            yield self._pending.popitem(last=False)[1]
