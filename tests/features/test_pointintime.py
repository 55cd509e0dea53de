"""Point-in-time correctness: a row at t sees events with ts < t and nothing else."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.core.errors import ValidationError
from loopml.features.pointintime import point_in_time
from loopml.features.training import build_training_set, latest_values
from loopml.features.views import Count, FeatureView, Latest, Recency, Sum, default_catalog
from loopml.features.windows import window_seconds
from loopml.logs.eventlog import EventLog

T = pd.Timestamp("2026-01-10T12:00:00Z")
VIEWS = list(default_catalog())


def _row_q(log):
    frame = build_training_set(log, VIEWS, start=T, end=T + pd.Timedelta(seconds=1))
    assert "q" in frame["event_id"].tolist() and "i-1h" not in frame["event_id"].tolist()
    return frame.set_index("event_id").loc["q"]


def test_hand_computed_example(hand_log):
    row = _row_q(hand_log)
    assert row["user_activity__impressions_7d"] == 3  # -7d (inclusive), -3h, -1h
    assert row["user_activity__clicks_7d"] == 2  # -2d, -2h; not -7d-1s, not the one at T
    assert row["user_activity__ctr_7d"] == pytest.approx((2 + 0.03 * 20) / (3 + 20))
    assert row["user_activity__clicks_1d"] == 1
    assert row["user_activity__secs_since_last_click"] == pytest.approx(7200.0)
    assert row["item_popularity__impressions_7d"] == 3
    assert row["item_popularity__age_days"] == pytest.approx(10.0)
    assert row["user_profile__country"] == "JP"  # the snapshot at exactly T is not visible
    assert row["item_profile__category"] == "news"
    assert row["label"] == 1


def _features(row):
    return {k: row[k] for k in row.index if "__" in k}


def test_future_and_simultaneous_events_do_not_leak(hand_log):
    before = _features(_row_q(hand_log))
    hand_log.append(
        "click",
        [
            {
                "event_id": "late-1",
                "ts": T,
                "impression_id": "i-3h",
                "user_id": "u1",
                "item_id": "x1",
            },
            {
                "event_id": "late-2",
                "ts": T + pd.Timedelta(hours=3),
                "impression_id": "q",
                "user_id": "u1",
                "item_id": "x1",
            },
        ],
    )
    hand_log.append(
        "impression",
        [
            {
                "event_id": "late-3",
                "ts": T,
                "request_id": "r",
                "user_id": "u1",
                "item_id": "x1",
                "position": 1,
            },
        ],
    )
    hand_log.append(
        "user",
        [
            {
                "event_id": "late-4",
                "ts": T + pd.Timedelta(microseconds=1),
                "user_id": "u1",
                "country": "FR",
                "age_band": "25-34",
                "segment": "promo",
                "signup_ts": T,
            },
        ],
    )
    after = _features(_row_q(hand_log))
    assert after == before
    # and the check is sensitive: one click a microsecond before t does change the row
    hand_log.append(
        "click",
        [
            {
                "event_id": "early",
                "ts": T - pd.Timedelta(microseconds=1),
                "impression_id": "i-1h",
                "user_id": "u1",
                "item_id": "x1",
            },
        ],
    )
    changed = _features(_row_q(hand_log))
    assert changed["user_activity__clicks_1d"] == before["user_activity__clicks_1d"] + 1
    assert changed["user_activity__secs_since_last_click"] == pytest.approx(1e-6)


def test_latest_values_equal_the_point_in_time_values(hand_log):
    row = _row_q(hand_log)
    row["event_id"] = "q"
    for view in VIEWS:
        entity = row[view.entity]
        online = latest_values(hand_log, view, as_of=T, entity_ids=[entity])
        assert online[view.entity].tolist() == [entity]
        for column in view.columns:
            got, want = online[column].iloc[0], row[column]
            if isinstance(want, float):
                assert got == pytest.approx(want, nan_ok=True), column
            else:
                assert got == want, column


def test_latest_values_without_ids_lists_entities_seen_before_as_of(hand_log):
    hand_log.append(
        "user",
        [
            {
                "event_id": "u2-late",
                "ts": T + pd.Timedelta(days=1),
                "user_id": "u2",
                "country": "FR",
                "age_band": "18-24",
                "segment": "promo",
                "signup_ts": T,
            },
        ],
    )
    profile = default_catalog().get("user_profile")
    now = latest_values(hand_log, profile, as_of=T)
    assert now.to_dict("records") == [
        {
            "user_id": "u1",
            "user_profile__country": "JP",
            "user_profile__age_band": "25-34",
            "user_profile__segment": "organic",
        }
    ]
    later = latest_values(hand_log, profile, as_of=T + pd.Timedelta(days=2))
    assert later["user_id"].tolist() == ["u1", "u2"]
    assert later["user_profile__country"].tolist() == ["US", "FR"]
    unknown = latest_values(hand_log, profile, as_of=T, entity_ids=["nobody"])
    assert unknown["user_profile__country"].isna().all()


def test_point_in_time_keeps_order_index_and_handles_missing_entities(hand_log):
    view = default_catalog().get("user_activity")
    entities = pd.DataFrame(
        {
            "user_id": ["u1", None, "u1", "ghost"],
            "ts": [T, T, T - pd.Timedelta(days=9), "2026-01-10T12:00:00+09:00"],
        },
        index=[10, 11, 12, 13],
    )
    out = point_in_time(hand_log, [view], entities)
    assert list(out.index) == [10, 11, 12, 13]
    assert out["user_activity__impressions_7d"].tolist() == [3, 0, 0, 0]
    assert out["user_activity__ctr_7d"].tolist()[1] == pytest.approx(0.03)
    assert np.isnan(out["user_activity__secs_since_last_click"].tolist()[2])
    # +09:00 is 03:00 UTC: before the clicks at -2h, after the one at -2d
    assert out["user_activity__clicks_7d"].tolist()[3] == 0
    with pytest.raises(ValidationError, match="need a 'ts' column"):
        point_in_time(hand_log, [view], entities.drop(columns=["ts"]))
    with pytest.raises(ValidationError, match="keyed by 'item_id'"):
        point_in_time(hand_log, [default_catalog().get("item_profile")], entities)


def _random_log(tmp_path, seed: int) -> tuple[EventLog, dict[str, pd.DataFrame]]:
    """A few users/items, events on a coarse 10-minute grid so ties at t and t - 1d abound."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-05T00:00:00Z")
    grid = lambda n: start + pd.to_timedelta(rng.integers(0, 4 * 144, n) * 600, unit="s")  # noqa: E731
    users, items = [f"u{i}" for i in range(4)], [f"x{i}" for i in range(3)]
    n = 400
    imps = pd.DataFrame(
        {
            "event_id": [f"i{k}" for k in range(n)],
            "ts": grid(n),
            "request_id": [f"r{k}" for k in range(n)],
            "user_id": rng.choice(users, n),
            "item_id": rng.choice(items, n),
            "position": rng.integers(0, 5, n),
        }
    )
    pick = rng.choice(n, 120)
    clicks = pd.DataFrame(
        {
            "event_id": [f"c{k}" for k in range(120)],
            "ts": imps["ts"].iloc[pick].reset_index(drop=True)
            + pd.to_timedelta(rng.integers(0, 13, 120) * 600, unit="s"),
            "impression_id": imps["event_id"].to_numpy()[pick],
            "user_id": imps["user_id"].to_numpy()[pick],
            "item_id": imps["item_id"].to_numpy()[pick],
        }
    )
    conv = pd.DataFrame(
        {
            "event_id": [f"v{k}" for k in range(40)],
            "ts": grid(40),
            "impression_id": "i0",
            "user_id": rng.choice(users, 40),
            "item_id": "x0",
            "value": rng.integers(1, 100, 40) / 4,
        }
    )
    snaps = pd.DataFrame(
        {
            "event_id": [f"s{k}" for k in range(16)],
            "ts": grid(16),
            "user_id": rng.choice(users, 16),
            "country": rng.choice(["KR", "JP", "US"], 16),
            "age_band": "25-34",
            "segment": rng.choice(["a", "b"], 16),
            "signup_ts": start,
        }
    )
    log = EventLog(str(tmp_path / f"events-{seed}"))
    for kind, frame in (
        ("impression", imps),
        ("click", clicks),
        ("conversion", conv),
        ("user", snaps),
    ):
        assert log.append(kind, frame).accepted == len(frame)
    # a redelivered click must not count twice
    log.append("click", clicks.iloc[:5])
    return log, {"impression": imps, "click": clicks, "conversion": conv, "user": snaps}


def _micros(values) -> np.ndarray:
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("us").asi8


def _brute(row, events, entity, f):
    """The definition, computed the slow obvious way over the raw rows."""
    t = int(_micros([row["ts"]])[0])

    def mine(kind, window=None):
        e = events[kind]
        hit = (e[entity] == row[entity]) & (e["_t"] < t)
        if window is not None:
            hit &= e["_t"] >= t - window_seconds(window) * 1_000_000
        return {k: v[hit] for k, v in e.items()}

    if isinstance(f, Count):
        return len(mine(f.event, f.window)["_t"])
    if isinstance(f, Sum):
        return float(mine(f.event, f.window)[f.column].sum())
    if isinstance(f, Recency):
        before = mine(f.event)["_t"]
        return (t - before.max()) / 1e6 if len(before) else np.nan
    if isinstance(f, Latest):
        before = mine(f.event)
        if not len(before["_t"]):
            return None
        last = np.lexsort((before["event_id"], before["_t"]))[-1]
        return before[f.column][last]
    num = len(mine(f.numerator, f.window)["_t"])
    den = len(mine(f.denominator, f.window)["_t"])
    return (num + f.prior * f.weight) / (den + f.weight)


@pytest.mark.parametrize("seed", [1, 2])
def test_randomised_rows_match_a_brute_force_computation(tmp_path, seed):
    log, events = _random_log(tmp_path, seed)
    views = [
        default_catalog().get("user_activity"),
        FeatureView(
            "spend",
            1,
            "user_id",
            "conversion value",
            (
                Sum("value_1d", "conversion", "value", "1d"),
                Count("conversions_1d", "conversion", "1d"),
            ),
        ),
        FeatureView(
            "item_clicks",
            1,
            "item_id",
            "",
            (
                Count("clicks_1d", "click", "1d"),
                Recency("since_click", "click"),
            ),
        ),
        FeatureView("who", 1, "user_id", "", (Latest("country", "user", "country"),)),
    ]
    frame = build_training_set(log, views, start="2026-01-06", end="2026-01-09")
    assert len(frame) > 200
    arrays = {
        kind: {**{c: e[c].to_numpy() for c in e.columns}, "_t": _micros(e["ts"])}
        for kind, e in events.items()
    }
    sample = frame.sample(150, random_state=seed)  # 300 rows over the two seeds
    for row in sample.to_dict("records"):
        for view in views:
            for f, column in zip(view.features, view.columns, strict=True):
                want = _brute(row, arrays, view.entity, f)
                got = row[column]
                if isinstance(want, str) or want is None:
                    assert (got if isinstance(got, str) else None) == want, (
                        column,
                        row["event_id"],
                    )
                else:
                    assert got == pytest.approx(want, nan_ok=True), (column, row["event_id"])
        label = events["click"][
            (events["click"]["impression_id"] == row["event_id"])
            & (events["click"]["ts"] >= row["ts"])
            & (events["click"]["ts"] <= row["ts"] + pd.Timedelta("1h"))
        ]
        assert row["label"] == int(len(label) > 0), row["event_id"]
