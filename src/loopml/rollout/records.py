"""What an experiment is: its spec (set at start) and its state (changed while it runs).

The spec is validated once, when the experiment starts, so a typo in a policy name,
a weight count that does not match the arms, or a ramp that goes down is a 400 that
names the field, never a half-started experiment.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from typing import Any

from loopml.core.errors import ValidationError, did_you_mean
from loopml.core.names import check_name
from loopml.rollout.guardrails import Guardrails

#: The routing policies, one per testing-in-production technique.
POLICY_KINDS = ("ab", "bandit", "canary", "interleave", "shadow")
#: ``running`` routes traffic; every other status serves the model's default version.
STATUSES = ("running", "stopped", "rolled_back", "promoted")
DEFAULT_RAMP = (1.0, 5.0, 25.0, 50.0, 100.0)

_TWO_ARMS = ("shadow", "canary", "interleave")


@dataclass(frozen=True)
class ExperimentSpec:
    """The settings of one experiment in front of one model name.

    ``arms`` are version refs of ``model`` (an alias such as ``production`` or a
    number); the first arm is the control / champion. ``metric`` names the feedback
    the decision is made on; ``mde`` (absolute: a rate difference, or an amount in
    the metric's units) sizes the fixed-horizon test and tunes the sequential one.
    Behaviour events in the event log count for a request when they happen at most
    ``attribution_window_s`` after it (see :mod:`loopml.rollout.eventjoin`).

    >>> ExperimentSpec("e1", "ctr", "ab", ("production", "challenger")).checked().weights
    (0.5, 0.5)
    >>> ExperimentSpec("e1", "ctr", "a/b", ("production", "2")).checked()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    loopml.core.errors.ValidationError: policy 'a/b' is unknown; did you mean 'ab'? ...
    """

    name: str
    model: str
    policy: str
    arms: tuple[str, ...]
    weights: tuple[float, ...] | None = None
    ramp: tuple[float, ...] = DEFAULT_RAMP
    metric: str = "click"
    alpha: float = 0.05
    mde: float | None = None
    guardrails: Guardrails = field(default_factory=Guardrails)
    unit_header: str = "x-unit-id"
    item_column: str = "item_id"
    shadow_sample: float = 1.0
    auto_promote: bool = False
    seed: int | None = None
    attribution_window_s: float = 86_400.0

    def checked(self) -> ExperimentSpec:
        """This spec with defaults filled in, or a ValidationError naming the field."""
        check_name(self.name, "experiment name")
        check_name(self.model, "model name")
        if self.policy not in POLICY_KINDS:
            raise ValidationError(
                f"policy {self.policy!r} is unknown; {did_you_mean(self.policy, POLICY_KINDS)}",
                field="policy",
            )
        arms = tuple(str(a).strip() for a in self.arms)
        for arm in arms:
            check_name(arm, "arm")
        if len(arms) < 2 or len(set(arms)) != len(arms):
            raise ValidationError(
                f"arms {list(arms)}: need at least two distinct version refs, e.g. "
                "--arms production,challenger",
                field="arms",
            )
        if self.policy in _TWO_ARMS and len(arms) != 2:
            raise ValidationError(
                f"policy {self.policy!r} compares exactly two arms (champion, challenger); "
                f"got {len(arms)}: {list(arms)}",
                field="arms",
            )
        weights = self._weights(len(arms))
        ramp = self._ramp()
        for key, value, low, high in (
            ("alpha", self.alpha, 0.0, 1.0),
            ("shadow_sample", self.shadow_sample, 0.0, 1.0 + 1e-12),
        ):
            if not low < value < high:
                raise ValidationError(
                    f"{key} must be in ({low}, {high:g}], got {value!r}", field=key
                )
        if self.mde is not None and not (0.0 < self.mde < math.inf):
            raise ValidationError(
                f"mde (minimum detectable effect, absolute: 0.005 for half a point of a rate, "
                f"or in the metric's units for an amount) must be > 0, got {self.mde!r}",
                field="mde",
            )
        window = self.attribution_window_s
        if isinstance(window, bool) or not isinstance(window, int | float) or not window > 0:
            raise ValidationError(
                f"attribution_window_s (how long after a request its user's events count for "
                f"it) must be a number of seconds > 0, e.g. 86400, got {window!r}",
                field="attribution_window_s",
            )
        check_name(self.metric, "metric")
        header = self.unit_header.strip().lower()
        if not header:
            raise ValidationError(
                "unit_header must name a header, e.g. x-unit-id", field="unit_header"
            )
        return replace(
            self,
            arms=arms,
            weights=weights,
            ramp=ramp,
            unit_header=header,
            attribution_window_s=float(window),
        )

    def _weights(self, k: int) -> tuple[float, ...]:
        if self.weights is None:
            return tuple(1.0 / k for _ in range(k))
        w = tuple(float(x) for x in self.weights)
        if len(w) != k or any(not math.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
            raise ValidationError(
                f"weights {list(self.weights)} must be {k} non-negative numbers (one per arm) "
                "with a positive sum, e.g. --weights 90,10",
                field="weights",
            )
        return tuple(x / sum(w) for x in w)

    def _ramp(self) -> tuple[float, ...]:
        ramp = tuple(float(x) for x in self.ramp)
        ok = bool(ramp) and all(0.0 < x <= 100.0 for x in ramp)
        if not ok or any(b <= a for a, b in zip(ramp, ramp[1:], strict=False)):
            raise ValidationError(
                f"ramp {list(self.ramp)} must be increasing percentages in (0, 100], e.g. "
                "1,5,25,50,100",
                field="ramp",
            )
        return ramp

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "policy": self.policy,
            "arms": list(self.arms),
            "weights": list(self.weights) if self.weights is not None else None,
            "ramp": list(self.ramp),
            "metric": self.metric,
            "alpha": self.alpha,
            "mde": self.mde,
            "guardrails": self.guardrails.to_dict(),
            "unit_header": self.unit_header,
            "item_column": self.item_column,
            "shadow_sample": self.shadow_sample,
            "auto_promote": self.auto_promote,
            "seed": self.seed,
            "attribution_window_s": self.attribution_window_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentSpec:
        """Parse a JSON body; unknown keys are refused with the valid ones listed."""
        if not isinstance(data, dict):
            raise ValidationError("an experiment must be a JSON object", field="body")
        known = set(cls.__dataclass_fields__)
        for key in data:
            if key not in known:
                raise ValidationError(
                    f"unknown experiment setting {key!r}; {did_you_mean(key, sorted(known))}",
                    field=key,
                )
        for key in ("name", "model", "policy", "arms"):
            if key not in data:
                raise ValidationError(f"experiment needs {key!r}", field=key)
        arms = data["arms"]
        if isinstance(arms, str):
            arms = arms.split(",")
        if not isinstance(arms, list | tuple):
            raise ValidationError("'arms' must be a list of version refs", field="arms")
        kwargs = {k: v for k, v in data.items() if k not in ("arms", "guardrails")}
        for key in ("weights", "ramp"):
            if isinstance(kwargs.get(key), str):
                kwargs[key] = kwargs[key].split(",")
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(_number(x, key) for x in kwargs[key])
        return cls(
            arms=tuple(str(a) for a in arms),
            guardrails=Guardrails.from_dict(data.get("guardrails")),
            **kwargs,
        ).checked()


def _number(value: Any, key: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{key}: {value!r} is not a number", field=key) from None


@dataclass(frozen=True)
class Experiment:
    """A stored experiment: its spec plus where it stands now."""

    spec: ExperimentSpec
    status: str = "running"
    stage: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    revision: int = 1
    created_at: float = 0.0
    updated_at: float = 0.0
    stage_started_at: float = 0.0
    ended_at: float | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self.status == "running"

    def traffic_pct(self) -> float | None:
        """For a canary: the challenger's share now (0 once it is no longer running)."""
        if self.spec.policy != "canary":
            return None
        if not self.running:
            return 100.0 if self.status == "promoted" else 0.0
        return self.spec.ramp[min(self.stage, len(self.spec.ramp) - 1)]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.spec.to_dict(),
            "status": self.status,
            "stage": self.stage,
            "traffic_pct": self.traffic_pct(),
            "state": self.state,
            "reason": self.reason,
            "revision": self.revision,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "stage_started_at": _iso(self.stage_started_at),
            "ended_at": _iso(self.ended_at),
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")
