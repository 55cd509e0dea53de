"""The statistics against scipy, against simulation, and A/A false-positive rates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from tests.rollout.helpers import truth

from loopml.core.errors import ValidationError
from loopml.rollout.stats import (
    always_valid_pvalues,
    beta_prob_best,
    difference,
    mean_difference,
    msprt_likelihood_ratio,
    proportion_ci,
    sample_size,
    sample_size_means,
    sequential_mean,
    sequential_mean_difference,
    sequential_two_proportions,
    two_proportion_ztest,
)


@pytest.mark.parametrize(("k", "n"), [(0, 50), (3, 50), (300, 10_000), (50, 50)])
def test_wilson_interval_matches_scipy(k, n):
    ours = proportion_ci(k, n)
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert ours == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_ztest_squared_is_the_uncorrected_chi_square():
    table = np.array([[300, 9700], [370, 9630]])
    chi2 = sps.chi2_contingency(table, correction=False)[0]
    z, p = two_proportion_ztest(300, 10_000, 370, 10_000)
    assert z > 0
    assert z * z == pytest.approx(chi2, rel=1e-9)
    assert p == pytest.approx(sps.chi2.sf(chi2, 1), rel=1e-9)


def test_difference_interval_covers_the_truth_at_its_level():
    rng = np.random.default_rng(0)
    n, pa, pb = 2000, 0.05, 0.07
    covered = 0
    for _ in range(400):
        d = difference(rng.binomial(n, pa), n, rng.binomial(n, pb), n)
        covered += d.low <= pb - pa <= d.high
    assert 0.92 <= covered / 400 <= 0.98


def test_mean_difference_matches_welch_for_large_samples():
    rng = np.random.default_rng(1)
    a, b = rng.exponential(1.0, 3000), rng.exponential(1.1, 3000)
    d = mean_difference(a.mean(), a.var(ddof=1), a.size, b.mean(), b.var(ddof=1), b.size)
    ref = sps.ttest_ind(b, a, equal_var=False)
    assert d.p_value == pytest.approx(ref.pvalue, rel=0.02)


def test_sample_size_gives_the_planned_power():
    n = sample_size(0.10, 0.03)
    rng = np.random.default_rng(2)
    sa, sb = rng.binomial(n, 0.10, 3000), rng.binomial(n, 0.13, 3000)
    pooled = (sa + sb) / (2 * n)
    z = (sb - sa) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
    power = float(np.mean(np.abs(z) > 1.959964))
    assert 0.76 <= power <= 0.84
    assert sample_size(0.10, 0.3, relative=True) == n


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"baseline": 0.0, "mde": 0.01}, "baseline"),
        ({"baseline": 0.5, "mde": 0.6}, "mde"),
        ({"baseline": 0.1, "mde": 0.01, "power": 1.0}, "alpha"),
    ],
)
def test_sample_size_refuses_impossible_plans(kwargs, field):
    with pytest.raises(ValidationError) as info:
        sample_size(**kwargs)
    assert info.value.fields["field"] == field


def test_bad_counts_and_levels_are_refused():
    with pytest.raises(ValidationError, match="successes <= n"):
        proportion_ci(5, 3)
    with pytest.raises(ValidationError, match="level"):
        proportion_ci(1, 3, level=1.5)
    with pytest.raises(ValidationError, match="tau"):
        msprt_likelihood_ratio(0.1, 0.01, tau=0)


def test_always_valid_p_never_rises_and_is_one_without_data():
    p = always_valid_pvalues([0.0, 0.05, 0.0, 0.0], [0.0, 1e-4, 1e-4, 1e-4], tau=0.02)
    assert p[0] == 1.0
    assert np.all(np.diff(p) <= 0)
    assert p[-1] == p[1] < 1.0


def _aa_paths(runs: int, per_arm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Click outcomes of two identical arms: each request a random user and item of the
    simulated world, clicked with its true probability."""
    t = truth()
    rng = np.random.default_rng(seed)
    ctr = t.ctr[:, :, 0]
    shape = (runs, per_arm)

    def arm() -> np.ndarray:
        p = ctr[rng.integers(0, ctr.shape[0], shape), rng.integers(0, ctr.shape[1], shape)]
        return (rng.random(shape) < p).astype(np.float64)

    return arm(), arm()


def test_aa_sequential_test_keeps_false_positives_below_alpha_while_peeking():
    """300 seeded A/A runs of 4,000 requests per arm, looked at every 100: the always-valid
    test declares a winner in at most alpha of them, while reading a plain z-test at
    every look does far worse (the reason the sequential test exists)."""
    runs, per_arm, alpha = 300, 4000, 0.05
    a, b = _aa_paths(runs, per_arm, seed=3)
    looks = np.arange(99, per_arm, 100)
    sa, sb = np.cumsum(a, axis=1)[:, looks], np.cumsum(b, axis=1)[:, looks]
    n = np.broadcast_to(looks + 1.0, sa.shape)
    seq_p = np.array(
        [sequential_two_proportions(sa[r], n[r], sb[r], n[r], tau=0.02)[-1] for r in range(runs)]
    )
    seq_fp = float(np.mean(seq_p < alpha))
    pooled = (sa + sb) / (2 * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (sb - sa) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
    peeking_fp = float(np.mean(np.any(np.abs(np.nan_to_num(z)) > 1.959964, axis=1)))
    final_fp = float(np.mean(np.abs(np.nan_to_num(z[:, -1])) > 1.959964))
    assert seq_fp <= alpha + 0.02  # binomial noise over 300 runs: sd ~ 0.013
    assert 0.01 <= final_fp <= 0.09  # one read at the planned horizon: about alpha
    assert peeking_fp > 2 * alpha  # peeking at a fixed-horizon test inflates false positives


def test_sequential_test_finds_a_real_difference():
    rng = np.random.default_rng(4)
    a = rng.random(6000) < 0.10
    b = rng.random(6000) < 0.13
    n = np.arange(1, 6001)
    p = sequential_two_proportions(np.cumsum(a), n, np.cumsum(b), n, tau=0.03)
    assert p[-1] < 0.01
    first = int(np.argmax(p < 0.05))
    assert 0 < first < 6000


def test_sequential_mean_on_interleaving_preferences():
    rng = np.random.default_rng(5)
    wins = rng.choice([-1.0, 0.0, 1.0], p=[0.1, 0.75, 0.15], size=2000)
    n = np.arange(1, 2001)
    p = sequential_mean(np.cumsum(wins), np.cumsum(wins * wins), n, tau=0.05)
    assert p[-1] < 0.05
    ties = np.zeros(2000)
    assert sequential_mean(np.cumsum(ties), np.cumsum(ties), n, tau=0.05)[-1] == 1.0


def test_prob_best_prefers_the_better_arm():
    probs = beta_prob_best([100, 130, 90], [1000, 1000, 1000])
    assert sum(probs) == pytest.approx(1.0)
    assert int(np.argmax(probs)) == 1


def _feed_revenue(rng: np.random.Generator, shape: tuple[int, int], lift: float = 1.0):
    """Revenue per feed request in the simulated world: five random items in five slots,
    each clicked at its true rate, converting at the item's rate, for a lognormal amount
    (as the world draws them). Mostly zeros, a heavy right tail."""
    t = truth()
    conv = t.world.latent.item_conversion
    users = rng.integers(0, t.ctr.shape[0], (*shape, 1))
    items = rng.integers(0, t.ctr.shape[1], (*shape, 5))
    bought = (rng.random((*shape, 5)) < t.ctr[users, items, np.arange(5)]) & (
        rng.random((*shape, 5)) < conv[items]
    )
    amount = rng.lognormal(np.log(20.0), 0.7, (*shape, 5)) * lift
    return (bought * amount).sum(axis=-1)


def _mean_paths(a: np.ndarray, b: np.ndarray, every: int) -> tuple[np.ndarray, ...]:
    looks = np.arange(every - 1, a.shape[1], every)
    sums = [np.cumsum(x, axis=1)[:, looks] for x in (a, a * a, b, b * b)]
    return (*sums, np.broadcast_to(looks + 1.0, sums[0].shape))


def test_aa_sequential_test_for_means_keeps_false_positives_below_alpha_while_peeking():
    """300 seeded A/A runs of revenue per request (6,000 per arm, read every 100): the
    always-valid test for means declares a difference in at most alpha of them, while a
    Welch z-test read at every look does far worse."""
    runs, alpha = 300, 0.05
    rng = np.random.default_rng(11)
    a, b = _feed_revenue(rng, (runs, 6000)), _feed_revenue(rng, (runs, 6000))
    ta, qa, tb, qb, n = _mean_paths(a, b, 100)
    p = np.array(
        [
            sequential_mean_difference(ta[r], qa[r], n[r], tb[r], qb[r], n[r])[-1]
            for r in range(runs)
        ]
    )
    assert float(np.mean(p < alpha)) <= alpha + 0.02  # binomial sd over 300 runs ~ 0.013
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (qa - ta * ta / n) / (n - 1) / n + (qb - tb * tb / n) / (n - 1) / n
        z = np.nan_to_num((tb - ta) / n / np.sqrt(var))
    assert float(np.mean(np.any(np.abs(z) > 1.959964, axis=1))) > 2 * alpha


def test_sequential_test_for_means_finds_more_revenue():
    """A challenger earning 50% more per request is found in most of 40 seeded runs of
    30,000 requests per arm, and the found difference has the right sign."""
    runs = 40
    rng = np.random.default_rng(12)
    a, b = _feed_revenue(rng, (runs, 30_000)), _feed_revenue(rng, (runs, 30_000), lift=1.5)
    ta, qa, tb, qb, n = _mean_paths(a, b, 500)
    found = 0
    for r in range(runs):
        p = sequential_mean_difference(ta[r], qa[r], n[r], tb[r], qb[r], n[r])
        assert np.all(np.diff(p) <= 0)  # always-valid: it never rises
        found += bool(p[-1] < 0.05 and tb[r, -1] > ta[r, -1])
    assert found / runs >= 0.7


def test_sequential_test_for_means_ignores_too_few_units_and_checks_tau():
    p = sequential_mean_difference([5.0], [30.0], [50], [50.0], [3000.0], [50])
    assert p[-1] == 1.0  # 50 units per arm: below the minimum, no evidence yet
    with pytest.raises(ValidationError, match="tau"):
        sequential_mean_difference([1.0], [1.0], [200], [1.0], [1.0], [200], tau=0.0)


def test_sample_size_for_means_gives_the_planned_power():
    n = sample_size_means(sd=2.0, mde=0.25)
    rng = np.random.default_rng(13)
    a = rng.normal(0.0, 2.0, (2000, n)).mean(axis=1)
    b = rng.normal(0.25, 2.0, (2000, n)).mean(axis=1)
    power = float(np.mean(np.abs(b - a) / (2.0 * np.sqrt(2.0 / n)) > 1.959964))
    assert 0.76 <= power <= 0.84
