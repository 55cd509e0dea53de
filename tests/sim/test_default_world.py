"""The default world (14 days x 100k impressions) shows every effect it promises."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_default_world_generates_fast_and_at_full_size(default_world, default_run):
    logs, seconds = default_run
    cfg = default_world.config
    assert len(logs["impression"]) == cfg.days * cfg.impressions_per_day
    # a generous bound on a shared 2-core machine; typical is 1-3 s. A per-row Python
    # loop would take minutes.
    assert seconds < 45, f"generating the default world took {seconds:.1f} s"


def test_click_rate_is_a_few_percent(default_impressions):
    ctr = default_impressions["clicked"].mean()
    assert 0.01 <= ctr <= 0.06
    pre_shift = default_impressions[default_impressions["day"] < 10]["clicked"].mean()
    assert abs(pre_shift - 0.03) < 0.003  # the bias is calibrated to base_ctr


def test_top_slot_is_clicked_more_than_the_fifth(default_impressions):
    by_position = default_impressions.groupby("position")["clicked"].mean()
    assert by_position[0] > 1.8 * by_position[4]
    assert by_position.is_monotonic_decreasing


def test_evening_hours_are_busier_and_clickier(default_impressions):
    by_hour = default_impressions.groupby("hour")["clicked"].agg(["mean", "size"])
    evening, morning = by_hour.loc[18:22], by_hour.loc[5:9]
    assert evening["size"].mean() > 3 * morning["size"].mean()
    assert evening["mean"].mean() > 1.3 * morning["mean"].mean()


def test_device_is_logged_from_v2_and_matters(default_impressions):
    v2 = default_impressions[default_impressions["day"] >= 7]
    by_device = v2.groupby("device")["clicked"].mean()
    assert by_device["ios"] > by_device["web"] * 1.2
    assert default_impressions[default_impressions["day"] < 7]["device"].isna().all()


def test_shift_changes_per_category_click_rates_of_shifted_users(
    default_world, default_impressions
):
    delta = default_world.latent.shift_delta
    up, down = np.flatnonzero(delta > 0), np.flatnonzero(delta < 0)
    assert up.size and down.size

    def rates(frame: pd.DataFrame) -> pd.Series:
        return frame.groupby("category")["clicked"].mean()

    old = default_impressions[default_impressions["segment"] != "promo_2026"]
    shifted, kept = old[old["shifted"]], old[~old["shifted"]]
    before_s, after_s = rates(shifted[shifted["day"] < 10]), rates(shifted[shifted["day"] >= 10])
    ratio_shifted = after_s / before_s
    assert (ratio_shifted[up] > 1.5).all(), ratio_shifted
    assert (ratio_shifted[down] < 0.75).all(), ratio_shifted
    # users who were not shifted keep their tastes
    ratio_kept = rates(kept[kept["day"] >= 10]) / rates(kept[kept["day"] < 10])
    assert ratio_kept.between(0.8, 1.25).all(), ratio_kept


def test_new_segment_appears_on_shift_day(default_impressions):
    share = (
        default_impressions.assign(new=default_impressions["segment"] == "promo_2026")
        .groupby("day")["new"]
        .mean()
    )
    assert (share.loc[:9] == 0).all()
    assert (share.loc[10:] > 0.02).all() and share.loc[13] > 0.1
    assert share.loc[10:].is_monotonic_increasing


def test_logging_policy_favours_good_items_so_popularity_has_signal(
    default_world, default_impressions
):
    counts = default_impressions["item_id"].value_counts()
    assert counts.max() > 5 * counts.min()  # not uniform
    first = default_impressions[default_impressions["day"] < 7]
    second = default_impressions[default_impressions["day"] >= 7]
    clicks_first = first.groupby("item_id")["clicked"].sum()
    ctr_second = second.groupby("item_id")["clicked"].mean()
    common = clicks_first.index.intersection(ctr_second.index)
    # items popular in week one are clicked more often per impression in week two
    corr = np.corrcoef(clicks_first[common], ctr_second[common])[0, 1]
    assert corr > 0.3


def test_logged_clicks_agree_with_true_ctr(default_world, default_run):
    logs, _ = default_run
    imp = logs["impression"].iloc[::7]  # 200k rows spread over all days
    p = default_world.true_ctr(
        imp["user_id"], imp["item_id"], imp["position"], imp["ts"], devices=imp["device"]
    )
    clicked = imp["event_id"].isin(logs["click"]["impression_id"]).to_numpy()
    se = np.sqrt(p.mean() * (1 - p.mean()) / len(p))
    assert abs(clicked.mean() - p.mean()) < 4 * se
    # and the truth ranks: the clicked rows had a much higher true ctr
    assert p[clicked].mean() > 1.5 * p[~clicked].mean()
