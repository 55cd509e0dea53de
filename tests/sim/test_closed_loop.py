"""The closed loop: true_ctr is the documented formula, respond draws from it, and the
oracle and traffic helpers give policies a known truth to be scored against."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.core.errors import NotFoundError, ValidationError
from loopml.sim import World
from loopml.sim.truth import DEVICE_EFFECT, DEVICES, sigmoid

EVENING = "2026-01-07T20:00:00Z"


def test_true_ctr_is_the_documented_formula(small_world):
    lat, cfg = small_world.latent, small_world.config
    users, items = np.array([5, 17, 300]), np.array([0, 9, 44])
    positions = np.array([0, 2, 4])
    hours = np.array([20.0, 8.0, 14.0])
    ts = [small_world.day_start(1) + pd.Timedelta(hours=h) for h in hours]
    got = small_world.true_ctr(
        small_world.users["user_id"].to_numpy()[users],
        small_world.items["item_id"].to_numpy()[items],
        positions,
        ts,
        devices=["ios", "web", None],
    )
    device = np.array([0, 2, lat.device[users[2]]])
    expected = sigmoid(
        small_world.bias
        + lat.preference[users, lat.item_category[items]]
        + lat.item_quality[items]
        - 0.55 * np.log1p(positions)
        + 0.25 * np.cos(2 * np.pi * (hours - 20) / 24)
        + DEVICE_EFFECT[device]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert cfg.shift_day > 1  # day 1 is before the shift: unshifted tastes apply


def test_shifted_users_use_their_new_tastes_from_shift_day(small_world):
    lat = small_world.latent
    user = int(np.flatnonzero(lat.shifted)[0])
    up = int(np.argmax(lat.shift_delta))
    item = int(np.flatnonzero(lat.item_category == up)[0])
    uid, iid = small_world.users["user_id"].iloc[user], small_world.items["item_id"].iloc[item]
    shift = small_world.day_start(small_world.config.shift_day)
    before, after = small_world.true_ctr(
        uid, iid, 0, [shift - pd.Timedelta(days=1), shift], devices="ios"
    )
    gain = lat.preference_shifted[user, up] - lat.preference[user, up]
    logit = np.log(np.array([before, after]) / (1 - np.array([before, after])))
    assert logit[1] - logit[0] == pytest.approx(gain, abs=1e-9)
    assert after > before


def test_respond_frequencies_converge_to_true_ctr(small_world):
    users = small_world.users["user_id"].to_numpy()[[1, 2, 3, 4, 5, 6]]
    items = small_world.items["item_id"].to_numpy()[[0, 10, 20, 30, 40, 50]]
    positions = np.array([0, 1, 2, 3, 4, 0])
    p = small_world.true_ctr(users, items, positions, EVENING)
    n = 40_000
    rng = np.random.default_rng(123)
    clicks = small_world.respond(
        np.repeat(users, n), np.repeat(items, n), np.repeat(positions, n), EVENING, rng=rng
    )
    freq = clicks.reshape(6, n).mean(axis=1)
    bound = 4.5 * np.sqrt(p * (1 - p) / n) + 1e-4
    assert (np.abs(freq - p) < bound).all(), (freq, p)
    assert clicks.dtype == bool


def test_respond_is_deterministic_by_seed(small_world):
    users = small_world.sample_users(500, EVENING, rng=np.random.default_rng(1))
    items = small_world.candidates(1, rng=np.random.default_rng(1))
    a = small_world.respond(users, items, 0, EVENING, rng=np.random.default_rng(9))
    b = small_world.respond(users, items, 0, EVENING, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    # without an rng, fresh worlds replay the same closed-loop stream
    fresh = [World(small_world.config) for _ in range(2)]
    draws = [w.respond(users, items, 0, EVENING) for w in fresh]
    np.testing.assert_array_equal(draws[0], draws[1])


def test_best_items_is_the_argmax_of_true_ctr(small_world):
    rng = np.random.default_rng(5)
    users = small_world.sample_users(50, EVENING, rng=rng)
    cands = small_world.candidates(20, rng=rng)
    best = small_world.best_items(users, cands, EVENING)
    grid = small_world.true_ctr(np.repeat(users, 20), np.tile(cands, 50), 0, EVENING)
    expected = cands[grid.reshape(50, 20).argmax(axis=1)]
    np.testing.assert_array_equal(best, expected)
    assert len(set(best)) > 1  # personal tastes matter, not only item quality
    # one row of candidates per user
    per_user = np.stack([small_world.candidates(5, rng=rng) for _ in range(50)])
    best_rows = small_world.best_items(users, per_user, EVENING)
    assert all(b in row for b, row in zip(best_rows, per_user, strict=True))


def test_sample_users_only_returns_users_signed_up_by_then(small_world):
    cfg = small_world.config
    signup = small_world.users.set_index("user_id")["signup_ts"]
    segment = small_world.users.set_index("user_id")["segment"]
    before = small_world.sample_users(3_000, small_world.day_start(cfg.shift_day))
    assert (segment.loc[before] != cfg.new_segment).all()
    late = small_world.day_start(cfg.days)
    after = small_world.sample_users(3_000, late, rng=np.random.default_rng(2))
    assert (signup.loc[after] <= late).all()
    assert (segment.loc[after] == cfg.new_segment).mean() > 0.05
    # heavy users are drawn more often: activity drives the draw
    counts = pd.Series(after).value_counts()
    rows = pd.Index(small_world.users["user_id"]).get_indexer(counts.index)
    activity = small_world.latent.activity[rows]
    assert np.corrcoef(counts.to_numpy(), activity)[0, 1] > 0.5


def test_candidates_are_distinct_items(small_world):
    cands = small_world.candidates(small_world.config.n_items, rng=np.random.default_rng(0))
    assert len(set(cands)) == small_world.config.n_items
    with pytest.raises(ValidationError, match="exceeds"):
        small_world.candidates(small_world.config.n_items + 1)
    with pytest.raises(ValidationError, match="positive integer"):
        small_world.candidates(0)


def test_device_argument_moves_the_probability(small_world):
    uid, iid = small_world.users["user_id"].iloc[0], small_world.items["item_id"].iloc[0]
    p = small_world.true_ctr(uid, iid, 0, EVENING, devices=list(DEVICES))
    assert p[0] > p[1] > p[2]  # ios > android > web


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"user_ids": ["nobody"]}, NotFoundError, "user_ids"),
        ({"item_ids": ["i9999"]}, NotFoundError, "item_ids"),
        ({"positions": [-1]}, ValidationError, "positions"),
        ({"positions": [0.5]}, ValidationError, "positions"),
        ({"ts": 1767571200}, ValidationError, "ts"),
        ({"ts": "soon"}, ValidationError, "ts"),
        ({"devices": "nokia"}, ValidationError, "devices"),
        ({"user_ids": ["u000001", "u000002"], "item_ids": ["i0001"] * 3}, ValidationError, None),
    ],
)
def test_bad_closed_loop_input_names_the_argument(small_world, kwargs, error, field):
    args = {"user_ids": ["u000001"], "item_ids": ["i0001"], "positions": [0], "ts": EVENING}
    args.update(kwargs)
    with pytest.raises(error) as info:
        small_world.true_ctr(**args)
    if field is not None:
        assert info.value.fields["field"] == field
        assert field in str(info.value)
    else:
        assert "different lengths" in str(info.value)


def test_sample_users_refuses_a_time_before_anyone_signed_up(small_world):
    with pytest.raises(ValidationError, match="no user has signed up"):
        small_world.sample_users(3, "2000-01-01")
    with pytest.raises(ValidationError, match="one ts"):
        small_world.sample_users(3, [EVENING, EVENING])


def test_every_timestamp_spelling_means_the_same_instant(small_world):
    import datetime as dt

    spellings = [
        "2026-01-07T20:00:00Z",
        "2026-01-07 20:00",
        pd.Timestamp("2026-01-07 21:00", tz="Europe/Berlin"),
        dt.datetime(2026, 1, 7, 20, tzinfo=dt.UTC),
        np.datetime64("2026-01-07T20:00:00"),
        pd.Series(pd.to_datetime(["2026-01-07T20:00:00Z"])),
        [pd.Timestamp("2026-01-07T20:00:00Z")],
    ]
    got = [small_world.true_ctr("u000001", "i0001", 0, ts)[0] for ts in spellings]
    assert np.ptp(got) == 0.0
    morning = small_world.true_ctr("u000001", "i0001", 0, "2026-01-07T08:00:00Z")[0]
    assert got[0] > morning
