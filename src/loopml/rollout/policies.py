"""Routing policies: plain objects that pick an arm for a request, in one explicit table.

Every policy answers one question on the serving path, ``choose(position, rng)``: which
arm serves this request? ``position`` is the unit's sticky bucket in ``[0, 1)`` (see
:mod:`loopml.rollout.assignment`), or a fresh random number when the request names
no unit. The router handles what is special about two of them: a shadow policy also
mirrors the request to the challenger, and an interleaving policy asks both rankers
and merges their answers. Adding a policy is a class and one line in :data:`POLICIES`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loopml.rollout.assignment import cumulative, pick
from loopml.rollout.records import Experiment


class ABPolicy:
    """A/B/n: a fixed split by weight, sticky per unit.

    >>> p = ABPolicy(("production", "2"), (0.9, 0.1))
    >>> p.choose(0.5, None), p.choose(0.95, None)
    (0, 1)
    """

    kind = "ab"

    def __init__(self, arms: Sequence[str], weights: Sequence[float]) -> None:
        self.arms = tuple(arms)
        self.weights = tuple(weights)
        self._edges = cumulative(self.weights)

    def choose(self, position: float, rng: np.random.Generator | None) -> int:
        return pick(position, self._edges)


class ShadowPolicy:
    """The champion always answers; the challenger sees a mirrored copy off the path.

    >>> ShadowPolicy(("production", "challenger")).choose(0.99, None)
    0
    """

    kind = "shadow"

    def __init__(self, arms: Sequence[str], sample: float = 1.0) -> None:
        self.arms = tuple(arms)
        self.sample = sample

    def choose(self, position: float, rng: np.random.Generator | None) -> int:
        return 0

    def mirror(self, rng: np.random.Generator) -> bool:
        """Whether this request is mirrored (``sample`` of them are)."""
        return self.sample >= 1.0 or rng.random() < self.sample


class CanaryPolicy:
    """The challenger serves the units below the current ramp percentage.

    >>> p = CanaryPolicy(("production", "challenger"), (1, 5, 25), stage=1)
    >>> p.pct, p.choose(0.03, None), p.choose(0.07, None)
    (5.0, 1, 0)
    """

    kind = "canary"

    def __init__(self, arms: Sequence[str], ramp: Sequence[float], stage: int = 0) -> None:
        self.arms = tuple(arms)
        self.ramp = tuple(float(x) for x in ramp)
        self.stage = min(max(stage, 0), len(self.ramp) - 1)
        self.pct = self.ramp[self.stage]
        self._edge = self.pct / 100.0

    def choose(self, position: float, rng: np.random.Generator | None) -> int:
        return 1 if position < self._edge else 0


class InterleavePolicy:
    """Both rankers answer every request; the router merges them by team draft."""

    kind = "interleave"

    def __init__(self, arms: Sequence[str]) -> None:
        self.arms = tuple(arms)

    def choose(self, position: float, rng: np.random.Generator | None) -> int:
        return 0


class BanditPolicy:
    """Thompson sampling over versions: traffic follows the posterior of being best.

    Each arm's rate has a Beta(1 + successes, 1 + failures) posterior; every request
    draws once from each and goes to the highest draw. As feedback arrives the better
    version wins most draws, while a worse one still gets the occasional request in
    case the early evidence was unlucky.

    >>> p = BanditPolicy(("1", "2"), successes=[5, 60], trials=[1000, 1000])
    >>> rng = np.random.default_rng(0)
    >>> sum(p.choose(0.0, rng) for _ in range(200)) > 190
    True
    """

    kind = "bandit"

    def __init__(
        self,
        arms: Sequence[str],
        successes: Sequence[float] | None = None,
        trials: Sequence[float] | None = None,
    ) -> None:
        self.arms = tuple(arms)
        k = len(self.arms)
        self.successes = np.asarray(successes if successes is not None else [0] * k, float)
        self.trials = np.asarray(trials if trials is not None else [0] * k, float)

    def choose(self, position: float, rng: np.random.Generator | None) -> int:
        rng = rng if rng is not None else np.random.default_rng()
        failures = np.maximum(self.trials - self.successes, 0.0)
        return int(np.argmax(rng.beta(1.0 + self.successes, 1.0 + failures)))

    def observe(self, arm: int) -> None:
        """A request was served by ``arm`` (a trial)."""
        self.trials[arm] += 1.0

    def reward(self, arm: int, value: float) -> None:
        """Feedback for ``arm`` arrived; a positive value is a success."""
        if value > 0:
            self.successes[arm] += 1.0

    def set_counts(self, successes: Sequence[float], trials: Sequence[float]) -> None:
        """Replace the counts with the stored totals (every server process agrees)."""
        self.successes = np.asarray(successes, float)
        self.trials = np.maximum(np.asarray(trials, float), self.successes)


Policy = ABPolicy | ShadowPolicy | CanaryPolicy | InterleavePolicy | BanditPolicy

#: policy name -> how to build it from a stored experiment. One line per policy.
POLICIES = {
    "ab": lambda e: ABPolicy(e.spec.arms, e.spec.weights or ()),
    "bandit": lambda e: BanditPolicy(e.spec.arms, e.state.get("successes"), e.state.get("trials")),
    "canary": lambda e: CanaryPolicy(e.spec.arms, e.spec.ramp, e.stage),
    "interleave": lambda e: InterleavePolicy(e.spec.arms),
    "shadow": lambda e: ShadowPolicy(e.spec.arms, e.spec.shadow_sample),
}


def policy_for(experiment: Experiment) -> Policy:
    """The policy object a stored experiment routes with now."""
    return POLICIES[experiment.spec.policy](experiment)
