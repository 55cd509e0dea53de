"""Drift statistics on compact summaries, never on raw rows.

Every function here takes counts or weighted atoms (a position and a weight), so a
reference profile computed once and a window summarised once are all a test needs.
Numeric distributions arrive as atoms; categorical ones as aligned count vectors. The
formulas follow the usual definitions (and the conventions of the widely used drift
presets, e.g. Wasserstein normed by the reference standard deviation, zero bins filled
before PSI), so verdicts agree at the same thresholds.
"""

from __future__ import annotations

import math

import numpy as np


def fill_zeros(share: np.ndarray) -> np.ndarray:
    """Replace empty bins by a small share so that logarithms stay finite (PSI).

    The fill is 1e-4, or a millionth of the smallest non-zero share when that is smaller.

    >>> fill_zeros(np.array([0.5, 0.5, 0.0])).tolist()
    [0.5, 0.5, 0.0001]
    """
    out = np.asarray(share, dtype=np.float64).copy()
    nonzero = out[out != 0]
    if nonzero.size == 0:
        return np.full_like(out, 1e-4)
    smallest = float(nonzero.min())
    out[out == 0] = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return out


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Population stability index over aligned bins: sum((r - c) * ln(r / c)).

    >>> round(psi(np.array([50, 50]), np.array([50, 50])), 6)
    0.0
    >>> round(psi(np.array([50, 50]), np.array([90, 10])), 3)
    0.879
    """
    r = fill_zeros(_share(ref_counts))
    c = fill_zeros(_share(cur_counts))
    return float(np.sum((r - c) * np.log(r / c)))


def js_distance(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log) between two aligned count vectors.

    >>> js_distance(np.array([10, 0]), np.array([0, 10])) == math.sqrt(math.log(2))
    True
    """
    p = _share(ref_counts)
    q = _share(cur_counts)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return float(math.sqrt(max((kl_p + kl_q) / 2.0, 0.0)))


def chi2_pvalue(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Chi-square goodness of fit of the window's counts to the reference proportions.

    A category the reference never saw makes the statistic infinite (p = 0); a single
    category leaves nothing to test (p = 1).

    >>> chi2_pvalue(np.array([30, 30, 40]), np.array([30, 30, 40]))
    1.0
    >>> chi2_pvalue(np.array([30, 30, 0]), np.array([30, 30, 5]))
    0.0
    """
    from scipy.special import chdtrc

    r = np.asarray(ref_counts, dtype=np.float64)
    o = np.asarray(cur_counts, dtype=np.float64)
    keep = (r > 0) | (o > 0)
    r, o = r[keep], o[keep]
    if r.size <= 1 or r.sum() == 0 or o.sum() == 0:
        return 1.0
    e = r * (o.sum() / r.sum())
    if np.any((e == 0) & (o > 0)):
        return 0.0
    stat = float(np.sum((o - e) ** 2 / e))
    return float(chdtrc(r.size - 1, stat))


def z_pvalue(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Two-sided z-test for a difference in the share of the first of two categories.

    >>> z_pvalue(np.array([50, 50]), np.array([50, 50]))
    1.0
    >>> z_pvalue(np.array([50, 50]), np.array([90, 10])) < 0.001
    True
    """
    from scipy.special import ndtr

    r = np.asarray(ref_counts, dtype=np.float64)
    c = np.asarray(cur_counts, dtype=np.float64)
    n1, n2 = r.sum(), c.sum()
    if n1 == 0 or n2 == 0:
        return 1.0
    p1, p2 = r[0] / n1, c[0] / n2
    pooled = (r[0] + c[0]) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var <= 0:
        return 1.0
    z = (p1 - p2) / math.sqrt(var)
    return float(2 * ndtr(-abs(z)))


def ks_statistic(
    ref_pos: np.ndarray, ref_w: np.ndarray, cur_pos: np.ndarray, cur_w: np.ndarray
) -> float:
    """Largest gap between the two cumulative distributions, evaluated at every atom.

    Atoms carry weights (counts), so a binned distribution and raw values use one code
    path; equal positions are evaluated once, after both sides have stepped.

    >>> ks_statistic(np.array([1.0, 2.0]), np.array([1, 1]), np.array([1.0, 2.0]), np.array([1, 1]))
    0.0
    >>> ks_statistic(np.array([1.0]), np.array([1]), np.array([2.0]), np.array([1]))
    1.0
    """
    pos, wr, wc = _merge(ref_pos, ref_w, cur_pos, cur_w)
    if pos.size == 0 or wr.sum() == 0 or wc.sum() == 0:
        return 0.0
    fr = np.cumsum(wr) / wr.sum()
    fc = np.cumsum(wc) / wc.sum()
    last = np.r_[pos[1:] != pos[:-1], True]
    return float(np.max(np.abs(fr[last] - fc[last])))


def ks_pvalue(statistic: float, n: int, m: int) -> float:
    """Two-sided p-value of a two-sample KS statistic (effective sample size n*m/(n+m)).

    Small effective sizes use the exact one-sample distribution; large ones the
    Kolmogorov limit, which agrees to many digits there and costs microseconds.

    >>> ks_pvalue(0.0, 100, 100)
    1.0
    >>> ks_pvalue(0.5, 100, 100) < 1e-6
    True
    """
    if n == 0 or m == 0:
        return 1.0
    en = max(round(n * m / (n + m)), 1)
    if en <= 10_000:
        from scipy.stats import kstwo

        p = kstwo.sf(statistic, en)
    else:
        from scipy.special import kolmogorov

        p = kolmogorov(statistic * math.sqrt(en))
    return float(min(max(p, 0.0), 1.0))


def wasserstein(
    ref_pos: np.ndarray, ref_w: np.ndarray, cur_pos: np.ndarray, cur_w: np.ndarray
) -> float:
    """First Wasserstein distance between two weighted atom sets (exact for atoms).

    >>> wasserstein(np.array([0.0]), np.array([1]), np.array([3.0]), np.array([2]))
    3.0
    """
    pos, wr, wc = _merge(ref_pos, ref_w, cur_pos, cur_w)
    if pos.size < 2 or wr.sum() == 0 or wc.sum() == 0:
        return 0.0
    gap = np.cumsum(wr / wr.sum() - wc / wc.sum())
    return float(np.sum(np.abs(gap[:-1]) * np.diff(pos)))


def _merge(
    ref_pos: np.ndarray, ref_w: np.ndarray, cur_pos: np.ndarray, cur_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.concatenate([np.asarray(ref_pos, np.float64), np.asarray(cur_pos, np.float64)])
    wr = np.concatenate([np.asarray(ref_w, np.float64), np.zeros(len(cur_pos))])
    wc = np.concatenate([np.zeros(len(ref_pos)), np.asarray(cur_w, np.float64)])
    order = np.argsort(pos, kind="stable")
    return pos[order], wr[order], wc[order]


def _share(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    return c / total if total > 0 else c
