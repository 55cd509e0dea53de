"""Canary guardrails: when a ramp may advance, must hold, or must roll back.

Each stage of a canary compares the challenger with the champion on the traffic of
that stage. Three guardrails, each stated so that noise alone rarely trips them:

- errors: roll back when the challenger's error rate is, with confidence (the lower
  end of its Wilson interval), above the champion's rate plus ``max_error_rate``;
- latency: roll back when the challenger's p99 exceeds ``max_p99_ratio`` times the
  champion's p99 plus ``p99_slack_ms`` (a slow model hurts users even if it is right);
- the online metric: roll back when the challenger's rate is confidently below the
  champion's by more than ``max_metric_drop`` (relative), i.e. the upper end of the
  difference's interval is below ``-max_metric_drop * champion rate``.

A stage advances once the challenger has served ``min_requests`` in it with every
guardrail holding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from loopml.core.errors import ValidationError, did_you_mean
from loopml.rollout.stats import difference, proportion_ci


@dataclass(frozen=True)
class Guardrails:
    """Limits a canary's challenger must stay within at every stage."""

    max_error_rate: float = 0.01
    max_p99_ratio: float = 1.5
    p99_slack_ms: float = 5.0
    max_metric_drop: float = 0.05
    min_requests: int = 200
    min_errors: int = 3
    min_latency_samples: int = 20
    level: float = 0.95

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Guardrails:
        """Validated guardrails from JSON; unknown keys list the valid ones."""
        data = dict(data or {})
        names = {f.name: f for f in fields(cls)}
        clean: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                raise ValidationError(
                    f"guardrails: unknown key {key!r}; {did_you_mean(key, sorted(names))}",
                    field=f"guardrails.{key}",
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValidationError(
                    f"guardrails.{key} must be a number >= 0, got {value!r}",
                    field=f"guardrails.{key}",
                )
            clean[key] = type(names[key].default)(value)
        if not 0.0 < clean.get("level", 0.95) < 1.0:
            raise ValidationError("guardrails.level must be in (0, 1), e.g. 0.95", field="level")
        return cls(**clean)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ArmWindow:
    """What one arm did during the current stage."""

    requests: int = 0
    errors: int = 0
    latencies_ms: np.ndarray | None = None
    metric_n: int = 0
    metric_successes: int = 0

    def p99(self) -> float | None:
        lat = self.latencies_ms
        if lat is None or lat.size == 0:
            return None
        return float(np.percentile(lat, 99))


@dataclass(frozen=True)
class Verdict:
    """``advance``, ``hold`` or ``rollback``, and why (recorded with the decision)."""

    action: str
    reason: str


def judge(champion: ArmWindow, challenger: ArmWindow, rails: Guardrails) -> Verdict:
    """The verdict for the current stage.

    >>> ok = ArmWindow(1000, 1, np.full(100, 2.0), 1000, 50)
    >>> judge(ok, ArmWindow(40, 40, np.full(40, 2.0)), Guardrails()).action
    'rollback'
    >>> judge(ok, ArmWindow(300, 0, np.full(300, 2.0), 300, 16), Guardrails()).action
    'advance'
    """
    breach = _errors(champion, challenger, rails) or _latency(champion, challenger, rails)
    breach = breach or _metric(champion, challenger, rails)
    if breach:
        return Verdict("rollback", breach)
    if challenger.requests < rails.min_requests:
        return Verdict(
            "hold",
            f"challenger has served {challenger.requests} of the {rails.min_requests} "
            "requests this stage needs",
        )
    return Verdict("advance", f"guardrails held over {challenger.requests} challenger requests")


def _errors(champion: ArmWindow, challenger: ArmWindow, rails: Guardrails) -> str:
    if challenger.errors < rails.min_errors:
        return ""
    low, _ = proportion_ci(challenger.errors, challenger.requests, rails.level)
    base = champion.errors / champion.requests if champion.requests else 0.0
    limit = base + rails.max_error_rate
    if low > limit:
        return (
            f"error rate: challenger failed {challenger.errors} of {challenger.requests} "
            f"requests ({challenger.errors / challenger.requests:.1%}, at least {low:.1%} "
            f"with {rails.level:.0%} confidence) vs the limit {limit:.1%} (champion "
            f"{base:.1%} + max_error_rate {rails.max_error_rate:.1%})"
        )
    return ""


def _latency(champion: ArmWindow, challenger: ArmWindow, rails: Guardrails) -> str:
    lat = challenger.latencies_ms
    if lat is None or lat.size < rails.min_latency_samples:
        return ""
    base = champion.p99()
    if base is None:
        return ""
    mine = challenger.p99()
    limit = rails.max_p99_ratio * base + rails.p99_slack_ms
    if mine is not None and mine > limit:
        return (
            f"p99 latency: challenger {mine:.1f} ms vs the limit {limit:.1f} ms "
            f"({rails.max_p99_ratio:g} x champion {base:.1f} ms + {rails.p99_slack_ms:g} ms) "
            f"over {lat.size} requests"
        )
    return ""


def _metric(champion: ArmWindow, challenger: ArmWindow, rails: Guardrails) -> str:
    if champion.metric_n == 0 or challenger.metric_n == 0:
        return ""
    d = difference(
        champion.metric_successes,
        champion.metric_n,
        challenger.metric_successes,
        challenger.metric_n,
        rails.level,
    )
    base = champion.metric_successes / champion.metric_n
    if d.high < -rails.max_metric_drop * base:
        return (
            f"online metric: challenger {challenger.metric_successes / challenger.metric_n:.2%}"
            f" vs champion {base:.2%}; the difference is at most {d.high:+.2%} "
            f"({rails.level:.0%} interval), worse than the allowed drop of "
            f"{rails.max_metric_drop:.0%}"
        )
    return ""
