"""Training sets: one row per impression in [start, end), the label window, lineage attrs,
and an end-to-end run on the simulated world."""

from __future__ import annotations

import pandas as pd
import pytest

from loopml.core.errors import ValidationError
from loopml.features.training import BASE_COLUMNS, build_training_set, latest_values
from loopml.features.views import default_catalog
from loopml.logs.eventlog import EventLog

T = pd.Timestamp("2026-01-10T12:00:00Z")
VIEWS = list(default_catalog())


def _imp(event_id, minutes, device=None):
    row = {
        "event_id": event_id,
        "ts": T + pd.Timedelta(minutes=minutes),
        "request_id": "r",
        "user_id": "u1",
        "item_id": "x1",
        "position": 2,
    }
    if device:
        row["device"] = device
    else:
        row["schema_version"] = 1
    return row


def _click(event_id, impression_id, minutes):
    return {
        "event_id": event_id,
        "ts": T + pd.Timedelta(minutes=minutes),
        "impression_id": impression_id,
        "user_id": "u1",
        "item_id": "x1",
    }


@pytest.fixture
def small_log(tmp_path):
    log = EventLog(str(tmp_path / "events"))
    log.append(
        "impression",
        [
            _imp("a", 0),
            _imp("b", 10),
            _imp("c", 20, device="ios"),
            _imp("d", 30, device="web"),
            _imp("e", 24 * 60),
        ],
    )
    log.append(
        "click",
        [
            _click("k-a", "a", 59),  # within 1h of a
            _click("k-b", "b", 10 + 61),  # too late for b
            _click("k-c", "c", 19),  # before c was shown: not a label
            _click("k-d", "d", 30),  # at the same instant: counts
        ],
    )
    return log


def test_rows_columns_labels_and_lineage(small_log):
    frame = build_training_set(small_log, VIEWS, start=T, end=T + pd.Timedelta(hours=1))
    assert frame["event_id"].tolist() == ["a", "b", "c", "d"]  # e is outside [start, end)
    expected = [*BASE_COLUMNS, *(c for v in VIEWS for c in v.columns), "label"]
    assert list(frame.columns) == expected
    assert frame["label"].tolist() == [1, 0, 0, 1]
    assert frame["device"].isna().tolist() == [True, True, False, False]
    assert frame["position"].tolist() == [2, 2, 2, 2]
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    meta = frame.attrs["loopml"]
    assert meta["views"] == {
        "user_activity": 1,
        "item_popularity": 1,
        "user_profile": 1,
        "item_profile": 1,
    }
    assert meta["start"] == "2026-01-10T12:00:00+00:00" and meta["label_window"] == "1h"
    assert meta["rows"] == 4 and meta["positive_rate"] == 0.5
    # features see earlier impressions of the same user only
    assert frame["user_activity__impressions_7d"].tolist() == [0, 1, 2, 3]
    # k-c (+19m) precedes c and d; k-d happens at the instant of d, so d does not see it
    assert frame["user_activity__clicks_7d"].tolist() == [0, 0, 1, 1]


def test_longer_label_window_and_conversion_labels(small_log):
    frame = build_training_set(
        small_log, VIEWS[:1], start=T, end=T + pd.Timedelta(hours=1), label_window="2h"
    )
    assert frame["label"].tolist() == [1, 1, 0, 1]
    small_log.append("conversion", [{**_click("v-a", "a", 600), "value": 9.5}])
    conv = build_training_set(
        small_log,
        VIEWS[:1],
        start=T,
        end=T + pd.Timedelta(hours=1),
        label="conversion",
        label_window="1d",
    )
    assert conv["label"].tolist() == [1, 0, 0, 0]


def test_bad_arguments_are_refused_with_the_fix(small_log):
    with pytest.raises(ValidationError, match="cannot label impressions"):
        build_training_set(small_log, VIEWS, start=T, end=T + pd.Timedelta(hours=1), label="user")
    with pytest.raises(ValidationError, match="must be after start"):
        build_training_set(small_log, VIEWS, start=T, end=T)
    with pytest.raises(ValidationError, match="FeatureView objects"):
        build_training_set(small_log, ["user_activity"], start=T, end=T + pd.Timedelta(hours=1))
    with pytest.raises(ValidationError, match="listed twice"):
        build_training_set(small_log, [VIEWS[0], VIEWS[0]], start=T, end=T + pd.Timedelta(hours=1))
    with pytest.raises(ValidationError, match="label_window"):
        build_training_set(
            small_log, VIEWS, start=T, end=T + pd.Timedelta(hours=1), label_window="soon"
        )


def test_an_empty_range_gives_an_empty_frame_with_all_columns(small_log):
    frame = build_training_set(small_log, VIEWS, start="2030-01-01", end="2030-01-02")
    assert len(frame) == 0
    assert frame.columns[-1] == "label" and "user_profile__country" in frame.columns


def test_end_to_end_on_the_simulated_world(tmp_path):
    from loopml.sim.config import WorldConfig
    from loopml.sim.world import World

    cfg = WorldConfig(n_users=300, n_items=40, days=9, impressions_per_day=2000)
    logs = World(cfg).generate()
    log = EventLog(str(tmp_path / "events"))
    for kind, frame in logs.items():
        result = log.append(kind, frame)
        assert (result.accepted, result.rejected) == (len(frame), 0), kind
    start = pd.Timestamp(cfg.start, tz="UTC")
    frame = build_training_set(
        log,
        VIEWS,
        start=start + pd.Timedelta(days=1),
        end=start + pd.Timedelta(days=9),
        progress=True,
    )
    imps = logs["impression"]
    in_range = imps[imps["ts"] >= start + pd.Timedelta(days=1)]
    assert len(frame) == len(in_range)
    # v1 before the format change day, v2 (with device) after it
    change = start + pd.Timedelta(days=cfg.format_change_day)
    assert frame.loc[frame["ts"] < change, "device"].isna().all()
    assert frame.loc[frame["ts"] >= change, "device"].notna().all()
    # labels agree with a plain SQL join of clicks to impressions
    sql = log.sql(
        "SELECT count(DISTINCT i.event_id) AS n FROM impression i JOIN click c "
        "ON c.impression_id = i.event_id AND c.ts >= i.ts "
        "AND c.ts <= i.ts + INTERVAL 1 HOUR WHERE i.ts >= TIMESTAMPTZ '2026-01-06'"
    )
    assert int(frame["label"].sum()) == int(sql["n"][0])
    assert 0.01 < frame["label"].mean() < 0.1
    assert frame["user_profile__country"].notna().all()
    assert frame["item_profile__category"].notna().all()
    # the online values for a user at the end equal a training row computed at that time
    user = frame["user_id"].iloc[-1]
    online = latest_values(log, VIEWS[0], as_of=frame["ts"].iloc[-1], entity_ids=[user])
    row = frame[frame["user_id"] == user].iloc[-1]
    assert online["user_activity__impressions_7d"].iloc[0] == row["user_activity__impressions_7d"]
    assert online["user_activity__clicks_7d"].iloc[0] == row["user_activity__clicks_7d"]
