"""The statistics an experiment decides with: rates, intervals, tests and sample sizes.

Fixed-horizon tools (a Wilson interval per arm, the difference with its interval, the
pooled two-proportion z-test, the sample-size calculator) are right when the sample
size is fixed in advance and the result is read once. People watch dashboards, and
reading a z-test every hour until it says "significant" inflates false positives far
above ``alpha``. The mixture sequential probability ratio test (mSPRT, Johari et al.
2017, "Peeking at A/B tests") gives an *always-valid* p-value instead: it may be
read after every observation and stopped on at any time, and its false-positive rate
stays below ``alpha``. Only the standard library is needed (``statistics.NormalDist``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from loopml.core.errors import ValidationError

_NORMAL = NormalDist()


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValidationError(
            f"confidence level must be in (0, 1), got {level!r}; e.g. 0.95", field="level"
        )
    return _NORMAL.inv_cdf(0.5 + level / 2.0)


def _counts(successes: float, n: float, what: str) -> None:
    if n < 0 or successes < 0 or successes > n:
        raise ValidationError(
            f"{what}: need 0 <= successes <= n, got successes={successes}, n={n}", field=what
        )


def proportion_ci(successes: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a rate; sane at 0 and n successes, unlike the Wald one.

    >>> low, high = proportion_ci(30, 1000)
    >>> round(low, 4), round(high, 4)
    (0.0211, 0.0425)
    >>> proportion_ci(0, 0)
    (0.0, 1.0)
    """
    _counts(successes, n, "proportion")
    if n == 0:
        return 0.0, 1.0
    z = _z(level)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Difference:
    """``rate_b - rate_a`` with its interval and the fixed-horizon z-test."""

    diff: float
    low: float
    high: float
    z: float
    p_value: float

    @property
    def significant(self) -> bool:
        """The interval excludes zero (at the level it was computed with)."""
        return self.low > 0.0 or self.high < 0.0


def difference(s_a: float, n_a: float, s_b: float, n_b: float, level: float = 0.95) -> Difference:
    """The lift of arm B over arm A: Newcombe's interval, pooled two-proportion z-test.

    Newcombe's hybrid score interval combines the two Wilson intervals, so it stays
    honest when an arm has few requests or no successes yet (where the textbook Wald
    interval collapses to zero width).

    >>> d = difference(300, 10_000, 380, 10_000)
    >>> round(d.diff, 4), d.significant, round(d.p_value, 4)
    (0.008, True, 0.0018)
    """
    _counts(s_a, n_a, "arm A")
    _counts(s_b, n_b, "arm B")
    if n_a == 0 or n_b == 0:
        return Difference(0.0, -1.0, 1.0, 0.0, 1.0)
    p_a, p_b = s_a / n_a, s_b / n_b
    diff = p_b - p_a
    low_a, high_a = proportion_ci(s_a, n_a, level)
    low_b, high_b = proportion_ci(s_b, n_b, level)
    low = diff - math.sqrt((p_b - low_b) ** 2 + (high_a - p_a) ** 2)
    high = diff + math.sqrt((high_b - p_b) ** 2 + (p_a - low_a) ** 2)
    z, p = two_proportion_ztest(s_a, n_a, s_b, n_b)
    return Difference(diff, low, high, z, p)


def two_proportion_ztest(s_a: float, n_a: float, s_b: float, n_b: float) -> tuple[float, float]:
    """Pooled z statistic and two-sided p-value for ``H0: rate_a == rate_b``.

    Valid once, at a sample size fixed in advance (see :func:`sample_size`).

    >>> z, p = two_proportion_ztest(50, 1000, 50, 1000)
    >>> z, p
    (0.0, 1.0)
    """
    _counts(s_a, n_a, "arm A")
    _counts(s_b, n_b, "arm B")
    if n_a == 0 or n_b == 0:
        return 0.0, 1.0
    pooled = (s_a + s_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0.0:
        return 0.0, 1.0
    z = (s_b / n_b - s_a / n_a) / se
    return z, 2.0 * (1.0 - _NORMAL.cdf(abs(z)))


def mean_difference(
    mean_a: float,
    var_a: float,
    n_a: float,
    mean_b: float,
    var_b: float,
    n_b: float,
    level: float = 0.95,
) -> Difference:
    """Welch-style (normal) interval and test for a difference of means (revenue, time).

    >>> d = mean_difference(1.0, 4.0, 400, 1.5, 4.0, 400)
    >>> round(d.low, 3), round(d.high, 3)
    (0.223, 0.777)
    """
    if n_a < 2 or n_b < 2:
        return Difference(mean_b - mean_a, -math.inf, math.inf, 0.0, 1.0)
    se = math.sqrt(max(var_a, 0.0) / n_a + max(var_b, 0.0) / n_b)
    diff = mean_b - mean_a
    if se == 0.0:
        return Difference(diff, diff, diff, 0.0, 1.0 if diff == 0 else 0.0)
    z = diff / se
    half = _z(level) * se
    return Difference(diff, diff - half, diff + half, z, 2.0 * (1.0 - _NORMAL.cdf(abs(z))))


# -- always-valid inference ------------------------------------------------------------------
def msprt_likelihood_ratio(estimate: Any, variance: Any, tau: Any) -> np.ndarray:
    """The Gaussian mixture likelihood ratio for ``H0: theta == 0``.

    ``estimate`` is the observed effect (e.g. a difference of rates) and ``variance``
    its sampling variance; the mixing prior on the effect is ``N(0, tau**2)``, so
    ``tau`` is the size of effect the test is most sensitive to. Arrays are taken
    element-wise (a path of looks), ``tau`` too. Where the variance is 0 (no data yet)
    it is 1.
    """
    t = np.asarray(tau, dtype=np.float64)
    if not np.all(t > 0):
        raise ValidationError(
            f"tau must be > 0 (the effect size the test is tuned for), got {tau!r}",
            field="tau",
        )
    est = np.asarray(estimate, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    t2 = t * t
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_lr = 0.5 * np.log(var / (var + t2)) + est * est * t2 / (2.0 * var * (var + t2))
        out = np.exp(np.minimum(log_lr, 700.0))
    return np.where((var > 0) & np.isfinite(log_lr), out, 1.0)


def always_valid_pvalues(estimate: Any, variance: Any, tau: float) -> np.ndarray:
    """The always-valid p-value after each look: ``min(1, min over looks of 1 / LR)``.

    Reading it at every look and stopping the first time it is below ``alpha`` keeps
    the false-positive rate below ``alpha``.

    >>> p = always_valid_pvalues([0.0, 0.01, 0.02], [1e-4, 5e-5, 2.5e-5], tau=0.01)
    >>> [round(float(x), 3) for x in p]
    [1.0, 0.889, 0.004]
    """
    lr = msprt_likelihood_ratio(estimate, variance, tau)
    return np.minimum.accumulate(np.minimum(1.0, 1.0 / np.atleast_1d(lr)))


def two_proportion_variance(s_a: Any, n_a: Any, s_b: Any, n_b: Any) -> np.ndarray:
    """Sampling variance of ``rate_b - rate_a``, element-wise; 0 where an arm is empty.

    A pooled rate keeps the plug-in estimate away from 0 early on, when one arm has
    no successes yet.
    """
    s_a, n_a, s_b, n_b = (np.asarray(x, dtype=np.float64) for x in (s_a, n_a, s_b, n_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (s_a + s_b) / (n_a + n_b)
        var = pooled * (1 - pooled) * (1.0 / n_a + 1.0 / n_b)
    return np.where((n_a > 0) & (n_b > 0) & np.isfinite(var), var, 0.0)


def sequential_two_proportions(
    s_a: Any, n_a: Any, s_b: Any, n_b: Any, tau: float = 0.01
) -> np.ndarray:
    """Always-valid p-values over a path of cumulative counts (one entry per look).

    >>> p = sequential_two_proportions([30, 60], [1000, 2000], [60, 130], [1000, 2000])
    >>> bool(p[-1] < 0.05), bool(p[-1] <= p[0])
    (True, True)
    """
    s_a, n_a, s_b, n_b = (
        np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (s_a, n_a, s_b, n_b)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.where((n_a > 0) & (n_b > 0), s_b / n_b - s_a / n_a, 0.0)
    return always_valid_pvalues(est, two_proportion_variance(s_a, n_a, s_b, n_b), tau)


def sequential_mean(total: Any, total_sq: Any, n: Any, tau: float) -> np.ndarray:
    """Always-valid p-values for ``H0: mean == 0`` from cumulative sums, e.g. the
    per-impression win (+1), loss (-1) or tie (0) of an interleaving experiment."""
    total, total_sq, n = (
        np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (total, total_sq, n)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, total / n, 0.0)
        var = np.where(n > 1, (total_sq - n * mean * mean) / (n - 1), 0.0)
        var_mean = np.where(n > 1, np.maximum(var, 1e-12) / n, 0.0)
    return always_valid_pvalues(mean, var_mean, tau)


#: Looks with fewer units than this per arm are not read: a variance estimated from a
#: handful of (mostly zero) amounts is too unstable for the normal approximation.
MIN_UNITS_FOR_MEANS = 100
#: Without an absolute ``tau`` the mixture is tuned to an effect of this many standard
#: deviations of the metric (revenue per unit: small effects on a noisy amount).
DEFAULT_EFFECT_SD = 0.05


def sequential_mean_difference(
    total_a: Any,
    total_sq_a: Any,
    n_a: Any,
    total_b: Any,
    total_sq_b: Any,
    n_b: Any,
    tau: float | None = None,
    effect_sd: float = DEFAULT_EFFECT_SD,
) -> np.ndarray:
    """Always-valid p-values for ``H0: mean_b == mean_a`` of an amount (revenue per
    unit, time spent), from each arm's cumulative sum, sum of squares and count, one
    entry per look.

    The mSPRT of Johari et al. for a difference of means: the observed difference
    against a normal mixture ``N(0, tau**2)`` over the true one, its variance the
    plug-in ``var_a / n_a + var_b / n_b`` (each arm's own variance, as Welch's test).
    ``tau`` is in the metric's units; left None it is ``effect_sd`` times the pooled
    standard deviation at that look, which makes the test scale-free (it then depends
    on the data only through the z statistic and the counts). Looks with fewer than
    :data:`MIN_UNITS_FOR_MEANS` per arm count as no evidence.

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.exponential(1.0, 20_000), rng.exponential(1.1, 20_000)
    >>> n = np.arange(1, 20_001)
    >>> p = sequential_mean_difference(
    ...     np.cumsum(a), np.cumsum(a * a), n, np.cumsum(b), np.cumsum(b * b), n
    ... )
    >>> bool(p[-1] < 0.01), bool(np.all(np.diff(p) <= 0))
    (True, True)
    """
    if tau is not None and not tau > 0:
        raise ValidationError(f"tau must be > 0 (in the metric's units), got {tau!r}", field="tau")
    if not effect_sd > 0:
        raise ValidationError(f"effect_sd must be > 0, got {effect_sd!r}", field="effect_sd")
    ta, qa, na, tb, qb, nb = (
        np.atleast_1d(np.asarray(x, dtype=np.float64))
        for x in (total_a, total_sq_a, n_a, total_b, total_sq_b, n_b)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_a, mean_b = ta / na, tb / nb
        ss_a = np.maximum(qa - na * mean_a * mean_a, 0.0)  # sums of squared deviations
        ss_b = np.maximum(qb - nb * mean_b * mean_b, 0.0)
        var = ss_a / (na - 1) / na + ss_b / (nb - 1) / nb
        pooled_sd = np.sqrt((ss_a + ss_b) / (na + nb - 2))
    ok = (na >= MIN_UNITS_FOR_MEANS) & (nb >= MIN_UNITS_FOR_MEANS) & np.isfinite(var) & (var > 0)
    est = np.where(ok, mean_b - mean_a, 0.0)
    var = np.where(ok, var, 0.0)
    scale = np.full_like(var, float(tau)) if tau is not None else effect_sd * pooled_sd
    scale = np.where(ok & (scale > 0), scale, 1.0)
    return always_valid_pvalues(est, var, scale)


def mean_sums(mean: float | None, var: float | None, n: float) -> tuple[float, float]:
    """``(sum, sum of squares)`` of ``n`` values back from their mean and sample variance.

    >>> mean_sums(2.0, 1.0, 3)
    (6.0, 14.0)
    """
    if not n or mean is None:
        return 0.0, 0.0
    return mean * n, (var or 0.0) * (n - 1) + n * mean * mean


# -- planning -----------------------------------------------------------------------------------
def sample_size(
    baseline: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    relative: bool = False,
) -> int:
    """Units per arm for a two-sided two-proportion test to detect ``mde``.

    ``mde`` is absolute (0.005 = half a point) unless ``relative`` (0.1 = +10%).

    >>> sample_size(0.03, 0.005)
    19743
    >>> sample_size(0.10, 0.10, relative=True)
    14751
    """
    if not 0.0 < baseline < 1.0:
        raise ValidationError(
            f"baseline rate must be in (0, 1), got {baseline!r}; e.g. 0.03 for a 3% CTR",
            field="baseline",
        )
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValidationError(
            f"alpha and power must be in (0, 1), got alpha={alpha!r}, power={power!r}",
            field="alpha",
        )
    effect = baseline * mde if relative else mde
    target = baseline + effect
    if effect <= 0 or not 0.0 < target < 1.0:
        raise ValidationError(
            f"minimum detectable effect {mde!r} must be > 0 and keep the rate in (0, 1) "
            f"(baseline {baseline!r} -> {target!r})",
            field="mde",
        )
    z_a = _NORMAL.inv_cdf(1 - alpha / 2)
    z_b = _NORMAL.inv_cdf(power)
    mean = (baseline + target) / 2
    top = z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(
        baseline * (1 - baseline) + target * (1 - target)
    )
    return math.ceil(top * top / (effect * effect))


def sample_size_means(sd: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm for a two-sided test of a difference of means to detect ``mde``
    (absolute, in the metric's units) when the metric's standard deviation is ``sd``.

    >>> sample_size_means(sd=10.0, mde=1.0)
    1570
    """
    if not sd > 0 or not mde > 0:
        raise ValidationError(
            f"sd and mde must be > 0, got sd={sd!r}, mde={mde!r}", field="mde" if sd > 0 else "sd"
        )
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValidationError(
            f"alpha and power must be in (0, 1), got alpha={alpha!r}, power={power!r}",
            field="alpha",
        )
    z = _NORMAL.inv_cdf(1 - alpha / 2) + _NORMAL.inv_cdf(power)
    return math.ceil(2.0 * (z * sd / mde) ** 2)


def percentiles(values: Sequence[float] | np.ndarray, qs: Sequence[float]) -> list[float | None]:
    """Percentiles of latencies, None when there are none.

    >>> percentiles([1.0, 2.0, 3.0, 4.0], [50, 99])
    [2.5, 3.97]
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return [None for _ in qs]
    return [round(float(v), 6) for v in np.percentile(arr, list(qs))]


def beta_prob_best(
    successes: Sequence[float], trials: Sequence[float], draws: int = 4000, seed: int = 0
) -> list[float]:
    """Posterior probability that each arm has the highest rate (Beta(1, 1) priors).

    >>> [round(p, 2) for p in beta_prob_best([10, 40], [1000, 1000])]
    [0.0, 1.0]
    """
    rng = np.random.default_rng(seed)
    s = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    samples = rng.beta(1.0 + s[:, None], 1.0 + np.maximum(n - s, 0.0)[:, None], (s.size, draws))
    best = np.bincount(np.argmax(samples, axis=0), minlength=s.size)
    return [float(b) / draws for b in best]
