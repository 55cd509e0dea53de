"""Data-quality checks on a window: missing values, ranges, unseen categories, schema.

They read the same window summary as drift, so quality costs nothing extra. A failed
check is not drift: it usually means a broken pipeline (a column renamed, a unit
changed, a client sending strings) and is worth an alert of its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from loopml.core.errors import ValidationError, did_you_mean
from loopml.monitor.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from loopml.monitor.summary import CategoricalSummary, NumericSummary, WindowSummary


@dataclass(frozen=True)
class QualityConfig:
    """Tolerances, from ``[monitor.quality]``: each is the largest acceptable share."""

    missing_increase: float = 0.05
    out_of_range: float = 0.01
    unseen: float = 0.01
    invalid: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityConfig:
        names = list(cls.__dataclass_fields__)
        for key, value in data.items():
            if key not in names:
                raise ValidationError(
                    f"monitor.quality.{key}: unknown key; {did_you_mean(key, names)}",
                    field=f"monitor.quality.{key}",
                )
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValidationError(
                    f"monitor.quality.{key} must be a share in [0, 1], got {value!r}",
                    field=f"monitor.quality.{key}",
                )
        return cls(**{k: float(v) for k, v in data.items()})


@dataclass
class QualityCheck:
    """One check on one column: the measured share, the tolerance, and the outcome."""

    column: str
    check: str
    value: float
    threshold: float
    failed: bool
    detail: str = ""


@dataclass
class QualityReport:
    checks: list[QualityCheck] = field(default_factory=list)

    @property
    def failed(self) -> list[QualityCheck]:
        return [c for c in self.checks if c.failed]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}

    def __str__(self) -> str:
        if self.ok:
            return f"data quality: ok ({len(self.checks)} checks)"
        lines = [f"data quality: {len(self.failed)} of {len(self.checks)} checks failed"]
        lines += [
            f"  {c.column}: {c.check} {c.value:.4g} > {c.threshold:.4g} {c.detail}"
            for c in self.failed
        ]
        return "\n".join(lines)


def check_quality(
    profile: ReferenceProfile, summary: WindowSummary, config: QualityConfig | None = None
) -> QualityReport:
    """Every check for every column of the window.

    >>> import numpy as np
    >>> from loopml.monitor.profile import build_profile
    >>> from loopml.monitor.summary import summarise
    >>> profile = build_profile({"x": np.arange(1000.0), "c": ["a", "b"] * 500})
    >>> window = summarise(profile, {"x": [5.0, 5000.0], "c": ["a", "new"]})
    >>> [(c.column, c.check) for c in check_quality(profile, window).failed]
    [('x', 'out_of_range'), ('c', 'unseen')]
    """
    config = config or QualityConfig()
    checks: list[QualityCheck] = []
    for name in summary.missing_columns:
        checks.append(QualityCheck(name, "schema", 1.0, 0.0, True, "column missing from window"))
    for name, col in profile.columns.items():
        win = summary.columns.get(name)
        if win is None:
            continue
        rows = win.n + win.n_missing + win.n_invalid
        ref_missing = col.n_missing / max(col.n + col.n_missing, 1)
        missing = win.n_missing / rows if rows else 0.0
        checks.append(
            QualityCheck(
                name,
                "missing",
                missing,
                ref_missing + config.missing_increase,
                missing > ref_missing + config.missing_increase,
                f"(reference {ref_missing:.2%})",
            )
        )
        invalid = win.n_invalid / rows if rows else 0.0
        checks.append(
            QualityCheck(
                name,
                "invalid",
                invalid,
                config.invalid,
                invalid > config.invalid,
                "(values not readable as numbers)",
            )
        )
        trending = name in profile.meta.get("unstable", ())
        if isinstance(col, NumericProfile) and isinstance(win, NumericSummary) and not trending:
            outside = win.tail_w[(win.tail_pos < col.min) | (win.tail_pos > col.max)].sum()
            share = float(outside / win.n) if win.n else 0.0
            checks.append(
                QualityCheck(
                    name,
                    "out_of_range",
                    share,
                    config.out_of_range,
                    share > config.out_of_range,
                    f"(reference [{col.min:.4g}, "
                    f"{col.max:.4g}], window [{win.min:.4g}, {win.max:.4g}])",
                )
            )
        elif isinstance(col, CategoricalProfile) and isinstance(win, CategoricalSummary):
            share = win.n_unseen / win.n if win.n else 0.0
            top = sorted(win.unseen.items(), key=lambda kv: -kv[1])[:5]
            checks.append(
                QualityCheck(
                    name,
                    "unseen",
                    share,
                    config.unseen,
                    share > config.unseen,
                    f"(new values: {', '.join(repr(k) for k, _ in top)})" if top else "",
                )
            )
    return QualityReport(checks)
