"""The three answers to a log-format change: old feature set, backfill, one model per schema."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from loopml.core.errors import NotFoundError, ValidationError
from loopml.logs.evolution import (
    backfill,
    common_fields,
    fields_by_version,
    register_backfill,
    rows_by_schema,
)

CHANGE = pd.Timestamp("2026-01-07T00:00:00Z")


@pytest.fixture
def changed_log(log, make_impressions):
    """Two days of v1 impressions, then two days of v2 with ``device``."""
    old = make_impressions(8, step_s=6 * 3600, version=1)  # 2026-01-05 .. 01-06
    new = make_impressions(8, step_s=6 * 3600, version=2, start=CHANGE)
    new["event_id"] = new["event_id"] + "-v2"
    log.append("impression", pd.concat([old, new], ignore_index=True))
    return log


def test_common_fields_is_the_old_feature_set_across_the_change(changed_log):
    everything = common_fields(changed_log, "impression")
    assert everything == ["event_id", "ts", "request_id", "user_id", "item_id", "position"]
    after = common_fields(changed_log, "impression", start=CHANGE)
    assert after[-1] == "device"
    before = common_fields(changed_log, "impression", end=CHANGE)  # end is exclusive
    assert "device" not in before
    with pytest.raises(NotFoundError, match="no impression events"):
        common_fields(changed_log, "impression", start="2027-01-01")


def test_rows_by_schema_gives_each_version_its_own_columns(changed_log):
    parts = rows_by_schema(changed_log, "impression")
    assert sorted(parts) == [1, 2]
    assert "device" not in parts[1].columns and len(parts[1]) == 8
    assert parts[2]["device"].notna().all() and len(parts[2]) == 8
    window = rows_by_schema(changed_log, "impression", start=CHANGE)
    assert sorted(window) == [2]
    assert fields_by_version("impression")[1] == list(parts[1].columns[:-1])


def _device_from_user(rows, log):
    """Backfill an old impression's device with the device the user was last seen on."""
    seen = log.sql(
        "SELECT user_id, arg_max(device, ts) AS device FROM impression "
        "WHERE device IS NOT NULL GROUP BY user_id"
    )
    lookup = dict(zip(seen["user_id"], seen["device"], strict=True))
    return [lookup.get(u) for u in rows["user_id"]]


def test_backfill_adds_the_field_to_old_partitions_and_is_idempotent(changed_log):
    register_backfill("impression", "device", _device_from_user)
    result = backfill(changed_log, "impression", "device")
    assert (result.files_rewritten, result.rows) == (2, 8)  # two old days, one file each
    assert result.files_already_done == 2
    assert common_fields(changed_log, "impression")[-1] == "device"
    old = changed_log.sql(
        "SELECT user_id, device, schema_version FROM impression WHERE ts < TIMESTAMPTZ "
        "'2026-01-07' ORDER BY ts"
    )
    assert old["device"].notna().all() and set(old["schema_version"]) == {1}
    assert old.set_index("user_id")["device"].to_dict() == {"u0": "ios", "u1": "web", "u2": "web"}
    assert changed_log.counts()["impression"] == 16
    again = backfill(changed_log, "impression", "device")
    assert (again.files_rewritten, again.files_already_done) == (0, 4)
    assert len(list(Path(changed_log.root).rglob("*.parquet"))) == 4


def test_backfill_crashing_midway_loses_nothing_and_a_rerun_finishes(changed_log):
    calls = []

    def flaky(rows, log):
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("worker died")
        return ["android"] * len(rows)

    with pytest.raises(RuntimeError, match="worker died"):
        backfill(changed_log, "impression", "device", fn=flaky)
    assert changed_log.counts()["impression"] == 16  # nothing lost or doubled
    result = backfill(changed_log, "impression", "device", fn=lambda rows, log: ["x"] * len(rows))
    assert (result.files_rewritten, result.files_already_done) == (1, 3)
    old = changed_log.sql("SELECT device FROM impression WHERE schema_version = 1")
    assert sorted(set(old["device"])) == ["android", "x"]
    assert changed_log.counts()["impression"] == 16


def test_backfill_rerun_finishes_when_old_and_new_files_coexist(changed_log):
    day5 = changed_log.partitions("impression")["2026-01-05"][0]
    original = Path(day5).read_bytes()
    backfill(changed_log, "impression", "device", fn=lambda rows, log: ["web"] * len(rows))
    Path(day5).write_bytes(original)  # the delete "never happened"
    assert changed_log.counts()["impression"] == 16  # the view de-duplicates meanwhile
    result = backfill(changed_log, "impression", "device", fn=lambda rows, log: ["x"] * len(rows))
    assert result.files_rewritten == 0
    assert not Path(day5).exists()
    assert changed_log.counts()["impression"] == 16
    assert set(changed_log.sql("SELECT device FROM impression")["device"]) == {"web", "ios"}


def test_backfill_errors_name_the_problem(changed_log):
    with pytest.raises(NotFoundError, match="no field 'colour'"):
        backfill(changed_log, "impression", "colour", fn=lambda rows, log: [])
    with pytest.raises(NotFoundError, match="no backfill registered for click.user_id"):
        backfill(changed_log, "click", "user_id")
    with pytest.raises(ValidationError, match="returned 0 values for 4 rows"):
        backfill(changed_log, "impression", "device", fn=lambda rows, log: [])
    with pytest.raises(ValidationError, match="must be a function"):
        register_backfill("impression", "device", "ios")
