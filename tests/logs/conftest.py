"""Hand-made event rows for the event-log tests (small, explicit, no simulator needed)."""

from __future__ import annotations

import pandas as pd
import pytest

from loopml.logs.eventlog import EventLog

T0 = pd.Timestamp("2026-01-05T00:00:00Z")


def impressions(n: int, *, start: pd.Timestamp = T0, step_s: int = 3600, version: int = 2):
    """``n`` impressions one ``step_s`` apart; v2 rows carry a device."""
    rows = pd.DataFrame(
        {
            "event_id": [f"imp-{i}" for i in range(n)],
            "ts": [start + pd.Timedelta(seconds=step_s * i) for i in range(n)],
            "request_id": [f"req-{i // 2}" for i in range(n)],
            "user_id": [f"u{i % 3}" for i in range(n)],
            "item_id": [f"i{i % 4}" for i in range(n)],
            "position": [i % 2 for i in range(n)],
            "schema_version": version,
        }
    )
    if version == 2:
        rows["device"] = ["ios", "web"] * (n // 2) + ["ios"] * (n % 2)
    return rows


@pytest.fixture
def make_impressions():
    return impressions


@pytest.fixture
def log(tmp_path) -> EventLog:
    return EventLog(str(tmp_path / "events"))
