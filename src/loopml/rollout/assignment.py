"""Sticky assignment: a unit id (user, session) hashes to the same bucket every time.

The bucket is a number in ``[0, 1)`` from a keyed hash of ``salt + unit id``. The salt
is the experiment name, so two experiments split the same users independently, and
every server process (and replica) agrees without sharing any state. Because a canary
sends the units below ``pct / 100`` to the challenger, raising the percentage only
adds units: nobody flips back and forth while the ramp climbs.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from itertools import accumulate

_SCALE = float(1 << 64)
_blake2b = hashlib.blake2b


def bucket(salt: str, unit_id: str) -> float:
    """The unit's position in ``[0, 1)`` for this experiment (deterministic).

    >>> bucket("exp1", "u42") == bucket("exp1", "u42")
    True
    >>> round(bucket("exp1", "u42"), 6) != round(bucket("exp2", "u42"), 6)
    True
    """
    return keyed_bucket(salt_key(salt), unit_id)


def salt_key(salt: str) -> bytes:
    """The hash key of an experiment (computed once per experiment, not per request)."""
    return salt.encode()[:64]


def keyed_bucket(key: bytes, unit_id: str) -> float:
    """:func:`bucket` with the key already encoded (the router's per-request form).

    The function is part of what is stored: assignments already written (and every
    user's experience so far) depend on it, so changing it would silently move users
    between arms of a running experiment. Keep it as is.

    >>> keyed_bucket(salt_key("exp1"), "u42") == bucket("exp1", "u42")
    True
    """
    digest = _blake2b(unit_id.encode(), digest_size=8, key=key).digest()
    return int.from_bytes(digest, "big") / _SCALE


def cumulative(weights: Sequence[float]) -> list[float]:
    """Cumulative, normalised weights: the right edge of each arm's slice of ``[0, 1)``.

    >>> cumulative([1, 1, 2])
    [0.25, 0.5, 1.0]
    """
    total = float(sum(weights))
    edges = [w / total for w in accumulate(weights)]
    edges[-1] = 1.0
    return edges


def pick(position: float, edges: Sequence[float]) -> int:
    """The arm whose slice holds ``position``.

    >>> [pick(p, [0.25, 0.5, 1.0]) for p in (0.0, 0.3, 0.99)]
    [0, 1, 2]
    """
    return min(bisect.bisect_right(edges, position), len(edges) - 1)
