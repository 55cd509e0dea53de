"""Range scans: the days that overlap, the rows in [start, end), each event once."""

from __future__ import annotations

import pandas as pd

from loopml.logs.scan import scan


def test_scan_reads_a_range_once_per_event_with_missing_columns_as_null(log, make_impressions):
    old = make_impressions(6, step_s=12 * 3600, version=1)  # 01-05 00:00 .. 01-07 12:00
    log.append("impression", old)
    log.append("impression", old.iloc[:2])  # redelivered: dropped at write time
    # a racing writer's copy that slipped past the write-time check
    log.files.write("impression/date=2026-01-06", _arrow(log, "imp-2"))
    con = log.connect()
    table = scan(
        log,
        con,
        "impression",
        ["user_id", "device"],
        start="2026-01-05T12:00:00Z",
        end="2026-01-07T00:00:00Z",
    )
    con.close()
    frame = table.to_pandas()
    assert frame["event_id"].tolist() == ["imp-1", "imp-2", "imp-3"]
    assert frame["device"].isna().all()  # v1 files have no device column
    assert list(frame.columns) == ["event_id", "ts", "user_id", "device", "_t"]
    assert frame["_t"].tolist() == [pd.Timestamp(t).value // 1000 for t in frame["ts"]]


def test_scan_of_an_empty_range_is_typed_and_empty(log, make_impressions):
    log.append("impression", make_impressions(2))
    con = log.connect()
    table = scan(log, con, "impression", ["position"], start="2030-01-01", end="2030-01-02")
    con.close()
    assert table.num_rows == 0
    assert table.column_names == ["event_id", "ts", "position", "_t"]


def _arrow(log, event_id):
    import pyarrow as pa

    rows = log.sql(f"SELECT * FROM impression WHERE event_id = '{event_id}'")
    return pa.Table.from_pandas(rows.drop(columns=["device"]), preserve_index=False)
