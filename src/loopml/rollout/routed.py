"""What the router hands back and keeps per request: the routed result, the active
experiment, and the small helpers the serving path shares (ids, scores, error text)."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.rollout.policies import Policy
from loopml.rollout.records import Experiment
from loopml.serve.online.dataplane import InferResult

_MAIN_OUTPUTS = ("probability", "prediction", "probabilities")
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


@dataclass
class ActiveExperiment:
    """A running experiment as the router holds it: policy, version args, its own RNG."""

    experiment: Experiment
    policy: Policy
    versions: list[str | None]
    rng: np.random.Generator


def routed(result: InferResult, experiment: str, arm: str) -> RoutedResult:
    """``result`` as a RoutedResult (a field copy, no re-validation: this is per request)."""
    out = RoutedResult.__new__(RoutedResult)
    out.__dict__.update(result.__dict__)
    out.experiment = experiment
    out.arm = arm
    return out


def next_request_id() -> str:
    """A unique request id without a syscall per request (process prefix + counter)."""
    return f"x{_PREFIX}-{next(_COUNTER)}"


def score_of(result: InferResult | None) -> float | None:
    """The first row's main output, for comparing champion and challenger answers."""
    if result is None or not result.rows:
        return None
    for key in _MAIN_OUTPUTS:
        value = result.outputs.get(key)
        if value is not None:
            first = value[0]
            return float(first) if np.ndim(first) == 0 else float(np.max(first))
    return None


def describe(error: Any) -> str | None:
    """The stored text of an arm's failure: a fallback reason or the exception."""
    if error is None:
        return None
    if isinstance(error, str):
        return f"fallback: {error}"
    return f"{type(error).__name__}: {error}"[:500]
