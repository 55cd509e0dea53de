"""Bandit policies: choose which item to show, learn from the click that follows.

All share one small protocol: ``select(candidates, context) -> item`` and
``update(item, reward, context)``. The non-contextual ones (epsilon-greedy, UCB1,
Thompson sampling) keep per-item click statistics; LinUCB keeps a ridge regression per
item over the user's context, so different users can get different best items.
Every policy is seeded and picklable, so a bandit service can checkpoint it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from loopml.core.errors import ValidationError


class Policy(ABC):
    """Base: per-arm pull and reward counts, and the protocol."""

    name = "policy"
    contextual = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.rng_ = np.random.default_rng(seed)
        self.pulls_: dict[str, int] = {}
        self.rewards_: dict[str, float] = {}
        self.t_ = 0

    def select(self, candidates: Sequence[str], context: dict[str, Any] | None = None) -> str:
        if len(candidates) == 0:
            raise ValidationError(
                "candidates is empty; offer at least one item", field="candidates"
            )
        return self._select(list(candidates), context or {})

    @abstractmethod
    def _select(self, candidates: list[str], context: dict[str, Any]) -> str:
        """Pick one of ``candidates`` (never empty)."""

    def update(self, arm: str, reward: float, context: dict[str, Any] | None = None) -> None:
        """Record the outcome of showing ``arm`` (1.0 = click)."""
        self.t_ += 1
        self.pulls_[arm] = self.pulls_.get(arm, 0) + 1
        self.rewards_[arm] = self.rewards_.get(arm, 0.0) + float(reward)
        self._update(arm, float(reward), context or {})

    def _update(self, arm: str, reward: float, context: dict[str, Any]) -> None:
        """Policies with more state than counts override this; counts are already kept."""
        return None

    def mean(self, arm: str) -> float:
        n = self.pulls_.get(arm, 0)
        return self.rewards_.get(arm, 0.0) / n if n else 0.0

    def _argmax(self, candidates: list[str], scores: np.ndarray) -> str:
        best = np.flatnonzero(scores == scores.max())
        return candidates[int(best[0] if len(best) == 1 else self.rng_.choice(best))]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed})"


class UniformRandom(Policy):
    """The baseline every policy must beat: show a candidate at random."""

    name = "random"

    def _select(self, candidates: list[str], context: dict[str, Any]) -> str:
        return candidates[int(self.rng_.integers(len(candidates)))]


class EpsilonGreedy(Policy):
    """Show the best-looking item, except a random one with probability ``epsilon``.

    >>> p = EpsilonGreedy(epsilon=0.0)
    >>> p.update("a", 0.0); p.update("b", 1.0)
    >>> p.select(["a", "b"])
    'b'
    """

    name = "epsilon_greedy"

    def __init__(self, epsilon: float = 0.05, seed: int = 0) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValidationError(f"epsilon must be in [0, 1], got {epsilon!r}", field="epsilon")
        super().__init__(seed)
        self.epsilon = epsilon

    def _select(self, candidates: list[str], context: dict[str, Any]) -> str:
        unseen = [c for c in candidates if c not in self.pulls_]
        if unseen:
            return unseen[int(self.rng_.integers(len(unseen)))]
        if self.rng_.random() < self.epsilon:
            return candidates[int(self.rng_.integers(len(candidates)))]
        return self._argmax(candidates, np.array([self.mean(c) for c in candidates]))


class UCB1(Policy):
    """Optimism under uncertainty: mean + c * sqrt(2 ln t / n); unseen items first."""

    name = "ucb"

    def __init__(self, c: float = 0.05, seed: int = 0) -> None:
        if c < 0:
            raise ValidationError(f"c must be >= 0, got {c!r}", field="c")
        super().__init__(seed)
        self.c = c

    def _select(self, candidates: list[str], context: dict[str, Any]) -> str:
        log_t = math.log(max(self.t_, 1))
        scores = np.array(
            [
                self.mean(a) + self.c * math.sqrt(2.0 * log_t / self.pulls_[a])
                if a in self.pulls_
                else math.inf
                for a in candidates
            ]
        )
        return self._argmax(candidates, scores)


class ThompsonSampling(Policy):
    """Sample each item's click rate from its Beta posterior; show the highest sample.

    ``prior`` (alpha, beta) encodes what a new item is believed to do before any data;
    a click-rate-like prior such as (1, 20) explores less wastefully than (1, 1).
    """

    name = "thompson"

    def __init__(self, prior: tuple[float, float] = (1.0, 20.0), seed: int = 0) -> None:
        if min(prior) <= 0:
            raise ValidationError(
                f"prior must be two positive numbers, got {prior!r}", field="prior"
            )
        super().__init__(seed)
        self.prior = tuple(prior)

    def _select(self, candidates: list[str], context: dict[str, Any]) -> str:
        a0, b0 = self.prior
        wins = np.array([self.rewards_.get(c, 0.0) for c in candidates])
        pulls = np.array([self.pulls_.get(c, 0) for c in candidates])
        samples = self.rng_.beta(a0 + wins, b0 + pulls - wins)
        return self._argmax(candidates, samples)


class LinUCB(Policy):
    """Disjoint LinUCB (Li et al., 2010): a ridge regression of reward on context per item.

    The context is one-hot encoded over ``features`` (e.g. the user's segment, age band
    and country) plus a bias; the score is ``theta . x + alpha * sqrt(x' A^-1 x)``.
    ``A^-1`` is kept up to date with Sherman-Morrison, so a step is O(d^2).
    """

    name = "linucb"
    contextual = True

    def __init__(
        self,
        features: Sequence[str] = ("segment", "age_band", "country"),
        alpha: float = 0.05,
        seed: int = 0,
    ) -> None:
        if alpha < 0:
            raise ValidationError(f"alpha must be >= 0, got {alpha!r}", field="alpha")
        super().__init__(seed)
        self.features = tuple(features)
        self.alpha = alpha
        self.index_: dict[str, int] = {"bias": 0}
        self.a_inv_: dict[str, np.ndarray] = {}
        self.b_: dict[str, np.ndarray] = {}
        self.theta_: dict[str, np.ndarray] = {}

    def _indices(self, context: dict[str, Any], grow: bool) -> list[int]:
        """Positions of the context's one-hot features (the bias is always 0)."""
        keys = [f"{f}={context[f]}" for f in self.features if f in context]
        if grow:
            for k in keys:
                if k not in self.index_:
                    self.index_[k] = len(self.index_)
        return [0] + [self.index_[k] for k in keys if k in self.index_]

    def _state(self, arm: str, d: int) -> tuple[np.ndarray, np.ndarray]:
        a_inv = self.a_inv_.get(arm)
        if a_inv is None:
            return np.eye(d), np.zeros(d)
        b = self.b_[arm]
        if a_inv.shape[0] < d:  # new context values appeared: extend with identity
            grown = np.eye(d)
            grown[: a_inv.shape[0], : a_inv.shape[0]] = a_inv
            a_inv = grown
            b = np.concatenate([b, np.zeros(d - len(b))])
        return a_inv, b

    def _select(self, candidates: list[str], context: dict[str, Any]) -> str:
        idx = self._indices(context, grow=False)
        scores = np.empty(len(candidates))
        for i, arm in enumerate(candidates):
            a_inv = self.a_inv_.get(arm)
            if a_inv is None:  # A = I: theta = 0 and x' A^-1 x = |x|^2
                scores[i] = self.alpha * math.sqrt(len(idx))
                continue
            # x is 0/1 on idx, so theta . x and x' A^-1 x are sums over idx
            known = [j for j in idx if j < a_inv.shape[0]]
            fresh = len(idx) - len(known)
            var = a_inv.take(known, 0).take(known, 1).sum() + fresh
            mean = self.theta_[arm].take(known).sum()
            scores[i] = mean + self.alpha * math.sqrt(max(var, 0.0))
        return self._argmax(candidates, scores)

    def _update(self, arm: str, reward: float, context: dict[str, Any]) -> None:
        idx = self._indices(context, grow=True)
        x = np.zeros(len(self.index_))
        x[idx] = 1.0
        a_inv, b = self._state(arm, len(x))
        ax = a_inv @ x
        a_inv = a_inv - np.outer(ax, ax) / (1.0 + x @ ax)
        b = b + reward * x
        self.a_inv_[arm] = a_inv
        self.b_[arm] = b
        self.theta_[arm] = a_inv @ b


POLICIES: dict[str, type[Policy]] = {
    "epsilon_greedy": EpsilonGreedy,
    "linucb": LinUCB,
    "random": UniformRandom,
    "thompson": ThompsonSampling,
    "ucb": UCB1,
}


def make_policy(name: str, seed: int = 0, **params: Any) -> Policy:
    """A policy by name: ``epsilon_greedy``, ``ucb``, ``thompson``, ``linucb``, ``random``.

    >>> make_policy("thompson", seed=1).name
    'thompson'
    """
    from loopml.core.errors import did_you_mean

    kind = POLICIES.get(name)
    if kind is None:
        raise ValidationError(
            f"bandit policy {name!r} is unknown; {did_you_mean(name, sorted(POLICIES))}",
            field="policy",
        )
    try:
        return kind(seed=seed, **params)
    except TypeError as exc:
        raise ValidationError(f"policy {name!r}: bad parameter ({exc})", field="policy") from None
