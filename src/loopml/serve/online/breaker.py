"""A per-model circuit breaker: stop calling a failing model for a while, then probe it.

While the breaker is open the data plane answers with the model's configured fallback
(flagged as such) immediately, instead of queueing requests behind a model that keeps
failing or timing out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Opens after ``failures`` consecutive failures; lets one probe through after ``reset_s``.

    >>> clock = iter([0.0, 1.0, 10.0]).__next__
    >>> b = CircuitBreaker(failures=2, reset_s=5.0, clock=clock)
    >>> b.failure(); b.failure(); b.state
    'open'
    >>> b.allow()
    False
    >>> b.allow(), b.state
    (True, 'half_open')
    """

    def __init__(
        self, failures: int = 5, reset_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self.state = CLOSED
        self._count = 0
        self._opened_at = 0.0
        self._probing = False

    def allow(self) -> bool:
        """May a request call the model now?"""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if self._clock() - self._opened_at >= self.reset_s:
                self.state = HALF_OPEN
                self._probing = True
                return True
            return False
        # half-open: exactly one probe in flight
        if self._probing:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        self._count = 0
        self._probing = False
        self.state = CLOSED

    def failure(self) -> None:
        self._count += 1
        self._probing = False
        if self.state == HALF_OPEN or self._count >= self.failures:
            self.state = OPEN
            self._opened_at = self._clock()

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.state}, failures={self._count}/{self.failures})"
