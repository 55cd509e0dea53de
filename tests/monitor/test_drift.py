"""Drift verdicts: binned statistics match scipy on the raw rows, methods follow the rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss
from scipy.spatial.distance import jensenshannon

from loopml.core.errors import NotFoundError, ValidationError
from loopml.monitor.drift import DriftConfig, check_drift, compare
from loopml.monitor.profile import ReferenceProfile, build_profile
from loopml.monitor.summary import summarise

N = 60_000


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame(
        {
            "normal": rng.normal(5, 2, N),
            "lognormal": rng.lognormal(0, 1.5, N),
            "heavy": rng.standard_t(2, N),
            "counts": rng.poisson(30, N).astype(float),
            "flag": (rng.random(N) < 0.3).astype(float),
            "country": rng.choice(["kr", "us", "jp", "de"], N, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )
    cur = pd.DataFrame(
        {
            "normal": rng.normal(5.5, 2, N),
            "lognormal": rng.lognormal(0.02, 1.5, N),
            "heavy": rng.standard_t(2, N) + 3.0,
            "counts": rng.poisson(30, N).astype(float),
            "flag": (rng.random(N) < 0.5).astype(float),
            "country": rng.choice(["kr", "us", "jp", "de", "fr"], N, p=[0.3, 0.3, 0.2, 0.1, 0.1]),
        }
    )
    return ref, cur


def test_binned_wasserstein_and_ks_match_scipy_on_raw_rows(frames):
    ref, cur = frames
    report = check_drift(build_profile(ref), cur)
    for name in ("normal", "lognormal", "heavy", "counts"):
        r, c = ref[name].to_numpy(), cur[name].to_numpy()
        exact_w = ss.wasserstein_distance(r, c) / r.std()
        exact_ks = ss.ks_2samp(r, c).statistic
        col = report.column(name)
        assert col.stats["wasserstein"] == pytest.approx(exact_w, rel=2e-3, abs=2e-4), name
        assert col.stats["ks"] == pytest.approx(exact_ks, abs=2e-3), name


def test_categorical_js_matches_scipy_and_unseen_category_counts(frames):
    ref, cur = frames
    report = check_drift(build_profile(ref), cur)
    keys = sorted(set(ref.country) | set(cur.country))
    p = ref.country.value_counts().reindex(keys, fill_value=0).to_numpy()
    q = cur.country.value_counts().reindex(keys, fill_value=0).to_numpy()
    col = report.column("country")
    assert col.method == "jensenshannon"
    assert col.score == pytest.approx(jensenshannon(p / p.sum(), q / q.sum()), rel=1e-9)
    assert col.stats["unseen_share"] == pytest.approx((cur.country == "fr").mean())
    assert col.stats["chisquare"] == 0.0  # a category the reference never saw


def test_methods_are_chosen_by_type_and_reference_size(frames):
    ref, cur = frames
    big = check_drift(build_profile(ref), cur)
    assert {c.column: c.method for c in big.columns} == {
        "normal": "wasserstein",
        "lognormal": "wasserstein",
        "heavy": "wasserstein",
        "counts": "wasserstein",
        "flag": "jensenshannon",
        "country": "jensenshannon",
    }
    small = check_drift(build_profile(ref.iloc[:800]), cur.iloc[:800])
    assert {c.column: c.method for c in small.columns} == {
        "normal": "ks",
        "lognormal": "ks",
        "heavy": "ks",
        "counts": "ks",
        "flag": "z",
        "country": "chisquare",
    }


def test_small_references_are_tested_exactly(frames):
    ref, cur = frames
    r, c = ref.normal.iloc[:500].to_numpy(), cur.normal.iloc[:700].to_numpy()
    report = check_drift(build_profile({"x": r}), {"x": c})
    exact = ss.ks_2samp(r, c)
    assert report.column("x").score == pytest.approx(exact.pvalue, rel=1e-9)
    assert report.column("x").drifted == (exact.pvalue <= 0.05)


def test_verdicts_flag_shifted_columns_only(frames):
    ref, cur = frames
    report = check_drift(build_profile(ref), cur)
    assert set(report.drifted) == {"normal", "heavy", "flag", "country"}
    assert report.dataset_drift  # 4 of 6 >= 0.5
    same = check_drift(build_profile(ref), ref.sample(frac=0.5, random_state=1))
    assert same.drifted == [] and not same.dataset_drift


def test_prediction_column_is_reported_apart_from_features(frames):
    ref, cur = frames
    ref = ref.assign(score=1 / (1 + np.exp(-ref.normal)))
    cur = cur.assign(score=1 / (1 + np.exp(-cur.normal + 2)))
    report = check_drift(build_profile(ref, output="score"), cur)
    assert report.prediction is not None and report.prediction.drifted
    assert "score" not in [c.column for c in report.columns]


def test_summaries_merge_like_the_concatenated_window(frames):
    ref, cur = frames
    profile = build_profile(ref)
    halves = [summarise(profile, cur.iloc[: N // 2]), summarise(profile, cur.iloc[N // 2 :])]
    merged = compare(profile, halves[0].merge(halves[1]))
    whole = check_drift(profile, cur)
    for a, b in zip(merged.columns, whole.columns, strict=True):
        assert a.score == pytest.approx(b.score, rel=1e-9, abs=1e-12), a.column


def test_profile_round_trips_through_bytes(frames):
    ref, cur = frames
    profile = build_profile(ref, meta={"model": "ctr", "version": 3})
    again = ReferenceProfile.from_bytes(profile.to_bytes())
    assert again.meta["version"] == 3
    assert (
        check_drift(again, cur).to_dict()["columns"]
        == check_drift(profile, cur).to_dict()["columns"]
    )


def test_config_overrides_method_and_threshold(frames):
    ref, cur = frames
    cfg = DriftConfig.from_dict({"method": "psi", "thresholds": {"psi": 0.05}})
    report = check_drift(build_profile(ref), cur, cfg)
    assert {c.method for c in report.columns} == {"psi"}
    assert all(c.drifted == (c.score >= 0.05) for c in report.columns)
    bad = DriftConfig(column_methods={"country": "wasserstein"})
    with pytest.raises(ValidationError, match="does not apply to categorical column 'country'"):
        check_drift(build_profile(ref), cur, bad)


def test_missing_values_and_strings_are_counted_not_tested(frames):
    ref, _ = frames
    profile = build_profile(ref[["normal"]])
    window = summarise(profile, {"normal": ["1.0", None, "oops", 5.0, float("inf")]})
    col = window.columns["normal"]
    assert (col.n, col.n_missing, col.n_invalid) == (2, 2, 1)


def test_unknown_column_names_the_choices(frames):
    ref, _ = frames
    with pytest.raises(NotFoundError, match="did you mean 'normal'"):
        build_profile(ref)["normall"]
