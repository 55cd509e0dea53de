"""Generated logs: schema shapes, determinism, the format change and event timing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from loopml.core.errors import ValidationError
from loopml.logs.schemas import get_schema
from loopml.sim import World, WorldConfig

TINY = WorldConfig(seed=3, n_users=300, n_items=40, days=3, impressions_per_day=1_500)


def test_package_exports_world_and_config():
    import loopml
    import loopml.sim

    assert loopml.sim.__all__ == ["World", "WorldConfig"]
    assert loopml.World is World


def test_same_seed_gives_identical_frames_and_another_seed_differs():
    first, second = World(TINY).generate(), World(TINY).generate()
    assert set(first) == {"user", "item", "impression", "click", "conversion"}
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name])
    other = World(dataclasses.replace(TINY, seed=4)).generate()
    assert not first["impression"]["user_id"].equals(other["impression"]["user_id"])


def test_frames_have_exactly_the_schema_columns(small_logs):
    versions = {"user": 1, "item": 1, "impression": 2, "click": 1, "conversion": 1}
    for event_type, version in versions.items():
        frame = small_logs[event_type]
        schema = get_schema(event_type, version)
        assert list(frame.columns) == [*schema.columns, "schema_version"], event_type
        assert frame["schema_version"].dtype == np.int64
        assert frame["event_id"].is_unique, event_type
        for f in schema.fields:
            dtype = frame[f.name].dtype
            if f.type == "timestamp":
                assert str(dtype) == "datetime64[us, UTC]", (event_type, f.name)
            elif f.type == "string":
                assert pd.api.types.is_string_dtype(dtype), (event_type, f.name)
            elif f.type == "int64":
                assert dtype == np.int64
            elif f.type == "float64":
                assert dtype == np.float64
            if f.required:
                assert not frame[f.name].isna().any(), (event_type, f.name)


def test_ids_are_readable_and_deterministic(small_logs):
    assert small_logs["user"]["user_id"].str.fullmatch(r"u\d{6}").all()
    assert small_logs["item"]["item_id"].str.fullmatch(r"i\d{4}").all()
    imp = small_logs["impression"]
    assert imp["event_id"].str.fullmatch(r"imp-\d{3}-\d{7}").all()
    assert imp["request_id"].str.fullmatch(r"req-\d{3}-\d{6}").all()
    assert small_logs["click"]["event_id"].str.fullmatch(r"clk-\d{3}-\d{7}").all()
    assert imp["event_id"].iloc[0] == "imp-000-0000000"


def test_each_request_is_one_slate_for_one_user(small_world, small_logs):
    cfg = small_world.config
    imp = small_logs["impression"]
    slates = imp.groupby("request_id").agg(
        n=("item_id", "size"),
        distinct=("item_id", "nunique"),
        users=("user_id", "nunique"),
        times=("ts", "nunique"),
        positions=("position", lambda p: tuple(sorted(p))),
    )
    k = cfg.slate_size
    assert (slates["n"] == k).all() and (slates["distinct"] == k).all()
    assert (slates["users"] == 1).all() and (slates["times"] == 1).all()
    assert (slates["positions"] == tuple(range(k))).all()
    per_day = imp.groupby(imp["ts"].dt.floor("D")).size()
    assert (per_day == cfg.impressions_per_day).all()


def test_impression_format_switches_to_v2_with_device_on_the_change_day(small_world, small_logs):
    change_day = small_world.config.format_change_day
    imp = small_logs["impression"]
    change = small_world.day_start(change_day)
    before, after = imp[imp["ts"] < change], imp[imp["ts"] >= change]
    assert len(before) and len(after)
    assert (before["schema_version"] == 1).all() and before["device"].isna().all()
    assert (after["schema_version"] == 2).all()
    assert set(after["device"]) == {"ios", "android", "web"}
    day_before = small_world.generate_day(change_day - 1)["impression"]
    day_of = small_world.generate_day(change_day)["impression"]
    assert list(day_before.columns) == [*get_schema("impression", 1).columns, "schema_version"]
    assert list(day_of.columns) == [*get_schema("impression", 2).columns, "schema_version"]


def test_clicks_follow_their_impressions_by_seconds_to_minutes(small_logs):
    imp = small_logs["impression"].set_index("event_id")
    clicks = small_logs["click"]
    assert clicks["impression_id"].is_unique
    shown = imp.loc[clicks["impression_id"]]
    delay = (clicks["ts"].to_numpy() - shown["ts"].to_numpy()) / np.timedelta64(1, "s")
    assert delay.min() >= 1.0 and delay.max() <= 1800.0
    assert 5.0 < np.median(delay) < 60.0
    assert (clicks["user_id"].to_numpy() == shown["user_id"].to_numpy()).all()
    assert (clicks["item_id"].to_numpy() == shown["item_id"].to_numpy()).all()
    assert clicks["ts"].is_monotonic_increasing


def test_conversions_follow_clicks_by_hours_to_days(small_logs):
    clicks = small_logs["click"].set_index("impression_id")
    conv = small_logs["conversion"]
    assert len(conv) > 0
    assert conv["impression_id"].isin(clicks.index).all()
    delay = (conv["ts"].to_numpy() - clicks.loc[conv["impression_id"], "ts"].to_numpy()) / (
        np.timedelta64(1, "h")
    )
    assert delay.min() >= 1 / 3 and delay.max() <= 7 * 24
    assert 2.0 < np.median(delay) < 24.0
    assert 0.03 < len(conv) / len(clicks) < 0.15
    assert (conv["value"] > 0).all()


def test_generate_day_is_a_slice_of_generate(small_world, small_logs):
    cfg = small_world.config
    day = small_world.generate_day(cfg.shift_day)
    imp = small_logs["impression"]
    start = small_world.day_start(cfg.shift_day)
    in_day = imp[(imp["ts"] >= start) & (imp["ts"] < small_world.day_start(cfg.shift_day + 1))]
    pd.testing.assert_frame_equal(in_day.reset_index(drop=True), day["impression"])
    assert day["click"]["event_id"].isin(small_logs["click"]["event_id"]).all()
    # the new segment signs up on and after shift_day, so the day has its sign-ups
    assert len(day["user"]) > 0 and (day["user"]["segment"] == cfg.new_segment).all()
    assert (day["user"]["signup_ts"] >= start).all()


def test_users_are_a_snapshot_at_the_end_of_the_last_day(small_world):
    cfg = small_world.config
    early = small_world.generate(days=range(0, 2))
    end = small_world.day_start(2)
    assert (early["user"]["signup_ts"] < end).all()
    assert cfg.new_segment not in set(early["user"]["segment"])
    assert len(early["item"]) == cfg.n_items
    full_users = small_world.users
    assert len(full_users) == cfg.n_users + cfg.n_new_users
    assert (full_users["segment"] == cfg.new_segment).sum() == cfg.n_new_users
    assert full_users["signup_ts"].is_monotonic_increasing
    assert early["impression"]["user_id"].isin(early["user"]["user_id"]).all()


def test_impressions_never_precede_the_users_signup(small_world, small_logs):
    imp = small_logs["impression"]
    signup = small_world.users.set_index("user_id")["signup_ts"]
    assert (imp["ts"].to_numpy() >= signup.loc[imp["user_id"]].to_numpy()).all()


@pytest.mark.parametrize(
    ("days", "hint"),
    [(range(3, 9), "outside"), ([1, 1], "repeats"), (range(0), "empty"), (["1"], "integer")],
)
def test_bad_day_ranges_are_refused(small_world, days, hint):
    with pytest.raises(ValidationError, match=hint):
        small_world.generate(days=days)


def test_progress_bar_does_not_change_the_frames(capsys):
    world = World(dataclasses.replace(TINY, days=1))
    quiet, shown = world.generate(), world.generate(progress=True)
    pd.testing.assert_frame_equal(quiet["impression"], shown["impression"])
    capsys.readouterr()


def test_no_traffic_still_gives_typed_empty_frames():
    logs = World(dataclasses.replace(TINY, impressions_per_day=0, days=1)).generate()
    assert len(logs["impression"]) == 0 and len(logs["click"]) == 0
    assert list(logs["click"].columns) == [*get_schema("click").columns, "schema_version"]
    assert str(logs["click"]["ts"].dtype) == "datetime64[us, UTC]"
