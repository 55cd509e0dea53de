"""Small hand-made event logs for the feature tests."""

from __future__ import annotations

import pandas as pd
import pytest

from loopml.logs.eventlog import EventLog

T = pd.Timestamp("2026-01-10T12:00:00Z")


def at(**delta) -> pd.Timestamp:
    return T + pd.Timedelta(**delta)


def impression(event_id, ts, user="u1", item="x1", position=0, device=None):
    row = {
        "event_id": event_id,
        "ts": ts,
        "request_id": f"r-{event_id}",
        "user_id": user,
        "item_id": item,
        "position": position,
    }
    if device is not None:
        row["device"] = device
    else:
        row["schema_version"] = 1
    return row


def click(event_id, ts, impression_id, user="u1", item="x1"):
    return {
        "event_id": event_id,
        "ts": ts,
        "impression_id": impression_id,
        "user_id": user,
        "item_id": item,
    }


def user(event_id, ts, user_id="u1", country="KR", segment="organic"):
    return {
        "event_id": event_id,
        "ts": ts,
        "user_id": user_id,
        "country": country,
        "age_band": "25-34",
        "segment": segment,
        "signup_ts": T - pd.Timedelta(days=60),
    }


def item(event_id, ts, item_id="x1", category="news", created=None):
    return {
        "event_id": event_id,
        "ts": ts,
        "item_id": item_id,
        "category": category,
        "publisher": "pub1",
        "length_s": 30.0,
        "created_ts": created or ts,
    }


@pytest.fixture
def hand_log(tmp_path) -> EventLog:
    """The worked example of test_pointintime: u1's history around the impression 'q' at T."""
    log = EventLog(str(tmp_path / "events"))
    log.append(
        "user",
        [
            user("usr-a", at(days=-30), country="KR"),
            user("usr-b", at(days=-1), country="JP"),
            user("usr-c", T, country="US"),  # at exactly T: must not be seen by a row at T
        ],
    )
    log.append(
        "item",
        [
            item("itm-a", at(days=-10), category="news"),
            item("itm-b", T, category="sports"),
        ],
    )
    log.append(
        "impression",
        [
            impression("i-8d", at(days=-8)),
            impression("i-7d", at(days=-7)),  # exactly t - 7d: inside [t - 7d, t)
            impression("i-3h", at(hours=-3)),
            impression("i-1h", at(hours=-1)),
            impression("q", T),
            impression("i+1h", at(hours=1), device="ios"),
        ],
    )
    log.append(
        "click",
        [
            click("c-7d-1s", at(days=-7, seconds=-1), "i-8d"),
            click("c-2d", at(days=-2), "i-8d"),
            click("c-2h", at(hours=-2), "i-3h"),
            click("c-at-T", T, "i-1h"),  # exactly T: excluded from the row at T
            click("c-q", at(minutes=5), "q"),  # the label of q
        ],
    )
    return log
