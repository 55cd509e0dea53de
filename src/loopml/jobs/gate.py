"""The evaluation gate: a candidate must beat the champion on the same recent window.

Both models score the most recent labelled window, which the candidate never trained
on (a backtest). The margin is taken in the metric's good direction, so a positive
margin always means "the candidate is better"; it must exceed ``min_improvement``.
The gate and both models' metrics are recorded on the registered version.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from loopml.core.clock import to_utc

#: Gate metrics and whether larger is better.
GATE_METRICS = {"roc_auc": True, "pr_auc": True, "log_loss": False, "normalized_entropy": False}


@dataclass
class GateResult:
    """The backtest: both models on the same most recent labelled window.

    >>> import datetime as dt
    >>> t = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    >>> g = compare_scores("log_loss", {"log_loss": 0.20}, {"log_loss": 0.18}, 0.0, t, t, 10)
    >>> round(g.margin, 2), g.passed
    (0.02, True)
    """

    metric: str
    champion: float
    challenger: float
    margin: float
    min_improvement: float
    passed: bool
    start: dt.datetime
    end: dt.datetime
    n: int
    champion_metrics: dict[str, float] = field(default_factory=dict)
    challenger_metrics: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return (
            f"gate {verdict}: {self.metric} {self.challenger:.4f} (candidate) vs "
            f"{self.champion:.4f} (champion), margin {self.margin:+.4f} (needs > "
            f"{self.min_improvement:g}) on {self.n:,} rows {self.start:%Y-%m-%d %H:%M}.."
            f"{self.end:%Y-%m-%d %H:%M}"
        )

    def record(self) -> dict[str, Any]:
        """What is stored in the registered version's ``metrics["gate"]``."""
        return {
            "metric": self.metric,
            "champion": self.champion,
            "challenger": self.challenger,
            "margin": self.margin,
            "min_improvement": self.min_improvement,
            "passed": self.passed,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "n": self.n,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> GateResult:
        return cls(
            data["metric"],
            data["champion"],
            data["challenger"],
            data["margin"],
            data.get("min_improvement", 0.0),
            data["passed"],
            to_utc(data["start"]),
            to_utc(data["end"]),
            data["n"],
        )


def compare_scores(
    metric: str,
    champion: dict[str, Any],
    challenger: dict[str, Any],
    min_improvement: float,
    start: dt.datetime,
    end: dt.datetime,
    n: int,
) -> GateResult:
    """The gate verdict from both models' metric dicts on the holdout."""
    a, b = float(champion[metric]), float(challenger[metric])
    margin = (b - a) if GATE_METRICS[metric] else (a - b)
    return GateResult(
        metric,
        a,
        b,
        margin,
        min_improvement,
        margin > min_improvement,
        start,
        end,
        n,
        {k: float(v) for k, v in champion.items() if isinstance(v, int | float)},
        {k: float(v) for k, v in challenger.items() if isinstance(v, int | float)},
    )


def backtest(
    champion: Any,
    challenger: Any,
    holdout: Any,
    features: list[str],
    label: str,
    metric: str,
    min_improvement: float,
    start: dt.datetime,
    end: dt.datetime,
) -> GateResult:
    """Score two loaded Predictors on ``holdout`` and compare them on ``metric``."""
    from loopml.train.metrics import evaluate

    y = holdout[label].to_numpy()
    champ = evaluate("binary", y, champion.predict(holdout[features]))
    chall = evaluate("binary", y, challenger.predict(holdout[features]))
    return compare_scores(metric, champ, chall, min_improvement, start, end, len(holdout))
