"""Drift verdicts: a window's summary against the reference profile, column by column.

Every statistic is computed for every column (they cost microseconds on summaries);
the verdict uses the method chosen by column type and reference size, as the common
drift presets do, unless configured otherwise:

===================  ==================================  ===============================
reference rows       numeric (more than 5 values)        categorical, or at most 5 values
===================  ==================================  ===============================
<= ``small_sample``  Kolmogorov-Smirnov p-value <= 0.05  chi-square p < 0.05 (z if 2 values)
> ``small_sample``   Wasserstein / reference std >= 0.1  Jensen-Shannon distance >= 0.1
===================  ==================================  ===============================

PSI (threshold 0.2 by default) is available for both kinds. The model's output column
is tested the same way and reported as prediction drift, apart from the feature share.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from loopml.core.errors import ValidationError, did_you_mean
from loopml.monitor import stats
from loopml.monitor.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from loopml.monitor.summary import CategoricalSummary, NumericSummary, WindowSummary, summarise

#: Methods whose score is a p-value (drift when small) rather than a distance.
PVALUE_METHODS = ("chisquare", "ks", "z")
METHODS = ("chisquare", "jensenshannon", "ks", "psi", "wasserstein", "z")
DEFAULT_THRESHOLDS = {
    "chisquare": 0.05,
    "jensenshannon": 0.1,
    "ks": 0.05,
    "psi": 0.2,
    "wasserstein": 0.1,
    "z": 0.05,
}
_NUMERIC_ONLY = ("ks", "wasserstein")


@dataclass(frozen=True)
class DriftConfig:
    """How verdicts are made; read from the ``[monitor.drift]`` table of ``loopml.toml``.

    >>> DriftConfig.from_dict({"method": "psi", "thresholds": {"psi": 0.25}}).threshold("psi")
    0.25
    >>> DriftConfig.from_dict({"method": "kss"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    loopml.core.errors.ValidationError: monitor.drift.method 'kss' is unknown; ...
    """

    method: str = "auto"
    thresholds: dict[str, float] = field(default_factory=dict)
    column_methods: dict[str, str] = field(default_factory=dict)
    small_sample: int = 1000
    categorical_max_values: int = 5
    drift_share: float = 0.5
    bins: int = 10
    min_rows: int = 1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftConfig:
        allowed = {f for f in cls.__dataclass_fields__}
        for key in data:
            if key not in allowed:
                raise ValidationError(
                    f"monitor.drift.{key}: unknown key; {did_you_mean(key, sorted(allowed))}",
                    field=f"monitor.drift.{key}",
                )
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        choices = ["auto", *METHODS]
        for where, method in [("method", self.method), *self.column_methods.items()]:
            if method not in choices:
                key = "method" if where == "method" else f"column_methods.{where}"
                raise ValidationError(
                    f"monitor.drift.{key} {method!r} is unknown; {did_you_mean(method, choices)}",
                    field=f"monitor.drift.{key}",
                )
        for name, value in self.thresholds.items():
            if name not in METHODS:
                raise ValidationError(
                    f"monitor.drift.thresholds.{name}: unknown method; "
                    f"{did_you_mean(name, list(METHODS))}",
                    field=f"monitor.drift.thresholds.{name}",
                )
            if not isinstance(value, int | float) or value < 0:
                raise ValidationError(
                    f"monitor.drift.thresholds.{name} must be a number >= 0, got {value!r}",
                    field=f"monitor.drift.thresholds.{name}",
                )
        if not 0 < self.drift_share <= 1:
            raise ValidationError(
                f"monitor.drift.drift_share must be in (0, 1], got {self.drift_share}",
                field="monitor.drift.drift_share",
            )
        if self.bins < 2:
            raise ValidationError(
                f"monitor.drift.bins must be >= 2, got {self.bins}", field="monitor.drift.bins"
            )

    def threshold(self, method: str) -> float:
        return float(self.thresholds.get(method, DEFAULT_THRESHOLDS[method]))


@dataclass
class ColumnDrift:
    """One column's verdict, the score that decided it, and every other statistic."""

    column: str
    kind: str
    method: str
    score: float
    threshold: float
    drifted: bool
    n_ref: int
    n_cur: int
    stats: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DriftReport:
    """A window's verdicts: per feature, for the output, and for the dataset as a whole."""

    columns: list[ColumnDrift]
    prediction: ColumnDrift | None
    n_ref: int
    n_cur: int
    drift_share: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def unstable(self) -> list[str]:
        """Trend columns: they drift inside their own reference window, so their drift is
        reported but left out of the share and of alerts."""
        return list(self.meta.get("unstable", []))

    @property
    def share(self) -> float:
        skip = set(self.unstable)
        tested = [c for c in self.columns if c.method != "none" and c.column not in skip]
        return len([c for c in tested if c.drifted]) / len(tested) if tested else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.share >= self.drift_share

    def column(self, name: str) -> ColumnDrift:
        for col in [*self.columns, *([self.prediction] if self.prediction else [])]:
            if col.column == name:
                return col
        names = [c.column for c in self.columns]
        raise ValidationError(f"no drift result for {name!r}; {did_you_mean(name, names)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_ref": self.n_ref,
            "n_cur": self.n_cur,
            "share": self.share,
            "dataset_drift": self.dataset_drift,
            "drifted": self.drifted,
            "columns": [c.to_dict() for c in self.columns],
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "meta": self.meta,
        }

    def __str__(self) -> str:
        lines = [f"{'column':<24}{'method':<15}{'score':>10}{'thr':>8}  drift"]
        for c in [*self.columns, *([self.prediction] if self.prediction else [])]:
            flag = "YES" if c.drifted else "-"
            lines.append(f"{c.column:<24}{c.method:<15}{c.score:>10.4g}{c.threshold:>8.3g}  {flag}")
        lines.append(
            f"dataset drift: {self.dataset_drift} ({len(self.drifted)}/{len(self.columns)} "
            f"features, share {self.share:.2f} vs {self.drift_share})"
        )
        return "\n".join(lines)


def check_drift(
    profile: ReferenceProfile, frame: Any, config: DriftConfig | None = None
) -> DriftReport:
    """Summarise ``frame`` and compare it with ``profile`` in one call.

    >>> import numpy as np
    >>> from loopml.monitor.profile import build_profile
    >>> rng = np.random.default_rng(1)
    >>> profile = build_profile({"x": rng.normal(0, 1, 20_000)})
    >>> check_drift(profile, {"x": rng.normal(0, 1, 20_000)}).dataset_drift
    False
    >>> report = check_drift(profile, {"x": rng.normal(0.5, 1, 20_000)})
    >>> report.dataset_drift, report.columns[0].method
    (True, 'wasserstein')
    """
    return compare(profile, summarise(profile, frame), config)


def compare(
    profile: ReferenceProfile, summary: WindowSummary, config: DriftConfig | None = None
) -> DriftReport:
    """Verdicts for an already summarised window (e.g. a merge of daily summaries)."""
    config = config or DriftConfig()
    results: list[ColumnDrift] = []
    prediction = None
    for name, col in profile.columns.items():
        window = summary.columns.get(name)
        if window is None:
            continue
        result = _column(col, window, config)
        if name == profile.output:
            prediction = result
        else:
            results.append(result)
    meta = {"unstable": list(profile.meta.get("unstable", []))}
    return DriftReport(
        results, prediction, profile.n_rows, summary.n_rows, config.drift_share, meta
    )


def _column(
    col: NumericProfile | CategoricalProfile,
    win: NumericSummary | CategoricalSummary,
    config: DriftConfig,
) -> ColumnDrift:
    if win.n < max(config.min_rows, 1) or col.n == 0:
        return ColumnDrift(col.name, col.kind, "none", math.nan, math.nan, False, col.n, win.n)
    if isinstance(col, NumericProfile):
        values = _numeric_stats(col, win, config)  # type: ignore[arg-type]
        n_values = math.inf
    else:
        values, n_values = _categorical_stats(col, win)  # type: ignore[arg-type]
    method = config.column_methods.get(col.name, config.method)
    if method == "auto":
        method = _auto(col, n_values, config)
    if method not in values:
        allowed = sorted(k for k in values if k in METHODS)
        raise ValidationError(
            f"drift method {method!r} does not apply to {col.kind} column {col.name!r}; "
            f"use one of {allowed} in monitor.drift.column_methods",
            field=col.name,
        )
    score = values["ks_pvalue" if method == "ks" else method]
    threshold = config.threshold(method)
    if method == "ks":
        drifted = score <= threshold
    elif method in PVALUE_METHODS:
        drifted = score < threshold
    else:
        drifted = score >= threshold
    return ColumnDrift(
        col.name, col.kind, method, float(score), threshold, bool(drifted), col.n, win.n, values
    )


def _auto(col: NumericProfile | CategoricalProfile, n_values: float, config: DriftConfig) -> str:
    numeric = col.kind in ("numeric", "discrete") and n_values > config.categorical_max_values
    if col.n <= config.small_sample:
        if numeric:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    return "wasserstein" if numeric else "jensenshannon"


def _numeric_stats(col: NumericProfile, win: NumericSummary, config: DriftConfig) -> dict:
    norm = max(col.std, 0.001)
    if col.raw is not None and win.raw is not None:
        from scipy.stats import ks_2samp, wasserstein_distance

        test = ks_2samp(col.raw, win.raw)
        ks, ks_p = float(test.statistic), float(test.pvalue)
        wd = float(wasserstein_distance(col.raw, win.raw))
    else:
        ks = stats.ks_statistic(*col.edges(), *win.edges(col))
        ks_p = stats.ks_pvalue(ks, col.n, win.n)
        wd = stats.wasserstein(*col.atoms(), *win.atoms(col))
    ref_bins, cur_bins = _bins(col, win, config.bins)
    return {
        "ks": ks,
        "ks_pvalue": ks_p,
        "wasserstein": wd / norm,
        "psi": stats.psi(ref_bins, cur_bins),
        "jensenshannon": stats.js_distance(ref_bins, cur_bins),
        "mean_ref": col.mean,
        "mean_cur": win.mean,
    }


def _bins(col: NumericProfile, win: NumericSummary, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference quantile bins snapped to grid cells, so both sides bin exactly."""
    cum = len(col.low) + np.cumsum(col.counts)
    cuts = np.searchsorted(cum / col.n, np.arange(1, bins) / bins, side="left") + 1
    cuts = np.unique(np.clip(cuts, 1, col.cells))
    starts = np.r_[0, cuts[cuts < col.cells]]
    ref = np.add.reduceat(col.counts, starts).astype(np.float64)
    cur = np.add.reduceat(win.counts, starts).astype(np.float64)
    ref[0] += len(col.low)
    ref[-1] += len(col.high)
    below = win.tail_pos < col.lo
    cur[0] += win.tail_w[below].sum()
    cur[-1] += win.tail_w[~below].sum()
    return ref, cur


def _categorical_stats(col: CategoricalProfile, win: CategoricalSummary) -> tuple[dict, int]:
    unseen = np.array(list(win.unseen.values()), dtype=np.float64)
    ref = np.r_[col.counts.astype(np.float64), float(col.other), np.zeros(len(unseen))]
    cur = np.r_[win.counts.astype(np.float64), float(win.other), unseen]
    keep = (ref > 0) | (cur > 0)
    ref, cur = ref[keep], cur[keep]
    n_values = int(keep.sum())
    values: dict[str, float] = {
        "psi": stats.psi(ref, cur),
        "jensenshannon": stats.js_distance(ref, cur),
        "chisquare": stats.chi2_pvalue(ref, cur),
        "unseen_share": float(unseen.sum() / win.n) if win.n else 0.0,
    }
    if n_values <= 2:
        values["z"] = stats.z_pvalue(ref, cur) if n_values == 2 else 1.0
    if col.kind == "discrete":
        pos = col.values.astype(np.float64)
        cur_pos = np.r_[pos, np.array(list(win.unseen), dtype=np.float64)]
        cur_w = np.r_[win.counts.astype(np.float64), unseen]
        ks = stats.ks_statistic(pos, col.counts, cur_pos, cur_w)
        values["ks"] = ks
        values["ks_pvalue"] = stats.ks_pvalue(ks, col.n, win.n)
        wd = stats.wasserstein(pos, col.counts, cur_pos, cur_w)
        values["wasserstein"] = wd / max(col.std, 0.001)
    return values, n_values


def trend_columns(
    reference: Any,
    config: DriftConfig | None = None,
    categorical: tuple[str, ...] = (),
    output: str | None = None,
    sensitivity: float = 0.5,
) -> list[str]:
    """Columns whose second half moves away from their first half (rows in time order).

    A feature such as an item's age, or a 7-day count while the log warms up, changes
    steadily, so every later window drifts from any reference: that is its nature,
    not news. A column is a trend when its half-to-half distance already reaches
    ``sensitivity`` times the drift threshold (it would cross it a reference-length
    or two later) and the change is significant (p < 0.001), or when a p-value test
    (small samples) flags it. Give the
    reference whole days in even number, so daily cycles (the hour) split evenly.

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"age_days": np.linspace(0, 30, 4000), "x": rng.normal(size=4000)})
    >>> trend_columns(frame)
    ['age_days']
    """
    from loopml.monitor.profile import build_profile

    if not hasattr(reference, "iloc") or len(reference) < 200:
        return []
    half = len(reference) // 2
    first = build_profile(reference.iloc[:half], categorical=categorical, output=output)
    report = check_drift(first, reference.iloc[half:], config)

    def significant(c: ColumnDrift) -> bool:  # not just sampling noise
        return c.stats.get("ks_pvalue", c.stats.get("chisquare", 1.0)) < 1e-3

    return [
        c.column
        for c in report.columns
        if c.method != "none"
        and (c.drifted if c.method in PVALUE_METHODS else c.score >= sensitivity * c.threshold)
        and significant(c)
    ]


def with_config(config: DriftConfig, **changes: Any) -> DriftConfig:
    """A copy of ``config`` with some fields changed, validated."""
    cfg = replace(config, **changes)
    cfg.validate()
    return cfg
