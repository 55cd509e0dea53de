"""Bounded memory of recently seen event ids, so a redelivered event counts once.

At-least-once delivery means the same event can arrive twice: a producer retried a
publish, or a consumer crashed before acknowledging. Consumers keep the ids they have
processed in a :class:`SeenIds` and skip repeats. It is bounded (oldest ids fall out
first) and picklable, so it travels inside a consumer's checkpoint.
"""

from __future__ import annotations

from collections import OrderedDict

from loopml.core.errors import ValidationError


class SeenIds:
    """The last ``capacity`` distinct ids, with O(1) membership.

    >>> seen = SeenIds(capacity=2)
    >>> [seen.add(i) for i in ["a", "b", "a", "c", "a"]]
    [True, True, False, True, True]
    >>> len(seen), "b" in seen
    (2, False)
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValidationError(
                f"capacity must be a positive integer, got {capacity!r}", field="capacity"
            )
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> bool:
        """Remember ``event_id``; True if it was new, False if it is a repeat."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)
