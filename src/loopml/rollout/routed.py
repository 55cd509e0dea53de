"""What the router hands back and keeps per request: the routed result, the active
experiment, and the small helpers the serving path shares (ids, scores, error text)."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.rollout.assignment import keyed_bucket, salt_key
from loopml.rollout.policies import Policy
from loopml.rollout.records import Experiment
from loopml.serve.online.dataplane import InferResult

_MAIN_OUTPUTS = ("probability", "prediction", "probabilities")
_SEQUENCES = (np.ndarray, list, tuple)
_PREFIX = os.urandom(5).hex()
_COUNTER = itertools.count(1)


@dataclass
class RoutedResult(InferResult):
    """A data-plane result plus the experiment and arm that produced it; transports put
    both in the response parameters (V2, gRPC) with no change of their own."""

    experiment: str | None = None
    arm: str | None = None

    def parameters(self) -> dict[str, Any]:
        out = super().parameters()
        if self.experiment:
            out["experiment"] = self.experiment
            out["arm"] = self.arm
        return out


#: Units whose arm an experiment remembers per process (then it forgets them all at once).
UNIT_CACHE = 65_536


class ActiveExperiment:
    """A running experiment as the router holds it, with everything the serving path needs
    worked out once when the experiment (re)loads: policy, version arguments, its own RNG,
    the hash key, and the arm already chosen for recent units.

    The unit cache holds what :func:`~loopml.rollout.assignment.keyed_bucket` would compute
    again (the assignment is a pure function of the unit), so a returning user costs a dict
    lookup instead of a keyed hash. It is only kept for the sticky policies, and a new
    canary stage starts with an empty one.
    """

    __slots__ = (
        "experiment",
        "policy",
        "versions",
        "rng",
        "name",
        "kind",
        "header",
        "arms",
        "key",
        "sticky",
        "units",
    )

    def __init__(
        self,
        experiment: Experiment,
        policy: Policy,
        versions: list[str | None],
        rng: np.random.Generator,
        units: dict[str, int] | None = None,
    ) -> None:
        spec = experiment.spec
        self.experiment = experiment
        self.policy = policy
        self.versions = versions
        self.rng = rng
        self.name = spec.name
        self.kind = policy.kind
        self.header = spec.unit_header
        self.arms = spec.arms
        self.key = salt_key(spec.name)
        self.sticky = policy.kind in ("ab", "canary")
        self.units: dict[str, int] = units if units is not None else {}

    def arm_for(self, unit: str | None) -> int:
        """The arm that serves this request (sticky per unit where the policy is)."""
        kind = self.kind
        if kind == "shadow" or kind == "interleave":
            return 0
        if unit is None:
            return self.policy.choose(float(self.rng.random()), self.rng)
        if not self.sticky:
            return self.policy.choose(0.0, self.rng)  # the bandit draws; position unused
        units = self.units
        arm = units.get(unit)
        if arm is None:
            arm = self.policy.choose(keyed_bucket(self.key, unit), self.rng)
            if len(units) >= UNIT_CACHE:
                units.clear()
            units[unit] = arm
        return arm

    def same_routing(self, other: ActiveExperiment) -> bool:
        """Whether ``other`` (the previous load) routes units exactly as this one does."""
        return (
            other.name == self.name
            and other.experiment.stage == self.experiment.stage
            and other.experiment.spec == self.experiment.spec
        )


def routed(result: InferResult, experiment: str, arm: str) -> RoutedResult:
    """``result`` as a RoutedResult.

    The data plane hands every request a fresh result, so a plain InferResult is
    re-tagged in place (no copy: this is per request); anything else is copied.
    """
    if type(result) is InferResult:
        result.__class__ = RoutedResult
        out = result
    else:
        out = RoutedResult.__new__(RoutedResult)
        out.__dict__.update(result.__dict__)
    out.experiment = experiment  # type: ignore[attr-defined]
    out.arm = arm  # type: ignore[attr-defined]
    return out  # type: ignore[return-value]


def next_request_id() -> str:
    """A unique request id without a syscall per request (process prefix + counter)."""
    return f"x{_PREFIX}-{next(_COUNTER)}"


def score_of(result: InferResult | None, row: int = 0) -> float | None:
    """A row's main output (the first by default), for comparing champion and challenger
    answers."""
    if result is None or not result.rows:
        return None
    outputs = result.outputs
    for key in _MAIN_OUTPUTS:
        value = outputs.get(key)
        if value is not None:
            first = value[row]
            if isinstance(first, _SEQUENCES):
                return float(np.max(first))
            return float(first)
    return None


def describe(error: Any) -> str | None:
    """The stored text of an arm's failure: a fallback reason or the exception."""
    if error is None:
        return None
    if isinstance(error, str):
        return f"fallback: {error}"
    return f"{type(error).__name__}: {error}"[:500]
