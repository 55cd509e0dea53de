"""The event log: layout, SQL views, de-duplication, dead letters, file ingest, fsspec roots."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pytest

from loopml.core.config import ProjectConfig
from loopml.core.errors import NotFoundError, ValidationError
from loopml.logs.eventlog import EventLog


def test_append_writes_parquet_partitioned_by_type_and_day(log, make_impressions):
    rows = make_impressions(30, step_s=3600)  # 30 hours -> two days
    result = log.append("impression", rows)
    assert (result.accepted, result.rejected, result.duplicates) == (30, 0, 0)
    root = Path(log.root)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))
    assert [f.split("/")[:2] for f in files] == [
        ["impression", "date=2026-01-05"],
        ["impression", "date=2026-01-06"],
    ]
    assert all(f.split("/")[2].startswith("part-") for f in files)
    assert not list(root.rglob("*.tmp"))
    assert log.counts()["impression"] == 30
    assert list(log.partitions("impression")) == ["2026-01-05", "2026-01-06"]


def test_sql_view_unions_schema_versions_by_name(log, make_impressions):
    log.append("impression", make_impressions(4, version=1))
    v2 = make_impressions(4, version=2, start=pd.Timestamp("2026-01-12T00:00:00Z"))
    v2["event_id"] = v2["event_id"] + "-v2"
    log.append("impression", v2)
    frame = log.sql(
        "SELECT schema_version, count(*) AS n, count(device) AS with_device "
        "FROM impression GROUP BY 1 ORDER BY 1"
    )
    assert frame.to_dict("records") == [
        {"schema_version": 1, "n": 4, "with_device": 0},
        {"schema_version": 2, "n": 4, "with_device": 4},
    ]
    ts = log.sql("SELECT ts FROM impression ORDER BY ts LIMIT 1")["ts"]
    assert str(ts.dt.tz) == "UTC"


def test_views_of_types_never_written_are_empty_and_typed(log):
    frame = log.sql("SELECT * FROM conversion")
    assert len(frame) == 0
    assert list(frame.columns) == [
        "event_id",
        "ts",
        "impression_id",
        "user_id",
        "item_id",
        "value",
        "schema_version",
    ]
    assert len(log.dead_letters()) == 0
    assert log.counts() == {
        "click": 0,
        "conversion": 0,
        "feedback": 0,
        "impression": 0,
        "item": 0,
        "prediction": 0,
        "user": 0,
    }


def test_duplicates_count_once_within_a_batch_across_batches_and_in_views(log, make_impressions):
    rows = make_impressions(6)
    first = log.append("impression", pd.concat([rows, rows.iloc[:2]]))
    assert (first.accepted, first.duplicates) == (6, 2)
    again = log.append("impression", rows.iloc[3:])  # redelivery of stored events
    assert (again.accepted, again.duplicates) == (0, 3)
    # two writers racing past the write-time check: the view still counts each id once
    table = pa.Table.from_pandas(
        log.sql("SELECT * FROM impression WHERE event_id = 'imp-0'"), preserve_index=False
    )
    log.files.write("impression/date=2026-01-05", table)
    assert len(list(Path(log.root).rglob("*.parquet"))) == 2
    assert log.counts()["impression"] == 6
    assert log.sql("SELECT count(DISTINCT event_id) AS n FROM impression")["n"][0] == 6


def test_rejected_rows_go_to_the_dead_letter_log_with_row_reason_and_source(log, make_impressions):
    rows = make_impressions(4)
    rows["ts"] = rows["ts"].astype(object)
    rows.loc[1, "ts"] = "not a time"
    rows.loc[2, "position"] = None
    result = log.append("impression", rows, source="collector-7")
    assert (result.accepted, result.rejected) == (2, 2)
    assert sum(result.reasons.values()) == 2
    assert result.dead_letter_path and result.dead_letter_path.endswith(".parquet")
    assert "/_dead_letter/date=" in result.dead_letter_path
    dead = log.dead_letters()
    assert len(dead) == 2
    assert set(dead["source"]) == {"collector-7"} and set(dead["event_type"]) == {"impression"}
    by_id = {
        json.loads(r)["event_id"]: (json.loads(r), reason)
        for r, reason in zip(dead["row"], dead["reason"], strict=True)
    }
    assert by_id["imp-1"][0]["ts"] == "not a time"  # the original value is preserved
    assert "field 'ts' must be a timestamp" in by_id["imp-1"][1]
    assert by_id["imp-2"][0]["position"] is None
    assert "required field 'position' is null" in by_id["imp-2"][1]
    assert log.sql("SELECT count(*) AS n FROM dead_letter")["n"][0] == 2


def test_unknown_event_type_is_dead_lettered_not_lost(log, make_impressions):
    result = log.append("impresion", make_impressions(3))
    assert (result.accepted, result.rejected) == (0, 3)
    assert "did you mean 'impression'" in next(iter(result.reasons))
    assert len(log.dead_letters()) == 3


def test_list_of_dicts_and_bad_data_argument(log):
    rows = [
        {
            "event_id": "c1",
            "ts": "2026-01-05T10:00:00Z",
            "impression_id": "i",
            "user_id": "u",
            "item_id": "x",
        },
        {
            "event_id": "c2",
            "ts": "2026-01-05T11:00:00Z",
            "impression_id": "i",
            "user_id": "u",
            "item_id": "x",
            "schema_version": 1,
        },
    ]
    assert log.append("click", rows).accepted == 2
    with pytest.raises(ValidationError, match="DataFrame or a list of dicts"):
        log.append("click", "c1,c2")


def test_ingest_jsonl_with_event_type_column_and_a_broken_line(log, tmp_path):
    lines = [
        {
            "event_type": "click",
            "event_id": "c1",
            "ts": "2026-01-05T10:00:00Z",
            "impression_id": "i1",
            "user_id": "u1",
            "item_id": "x1",
        },
        {
            "event_type": "user",
            "event_id": "u1",
            "ts": "2025-01-01T00:00:00Z",
            "user_id": "u1",
            "country": "KR",
            "age_band": "25-34",
            "segment": "organic",
            "signup_ts": "2025-01-01T00:00:00Z",
        },
        {"event_type": "clack", "event_id": "z", "ts": "2026-01-05T10:00:00Z"},
    ]
    path = tmp_path / "events.jsonl"
    body = b"\n".join(orjson.dumps(r) for r in lines[:2]) + b'\n{"event_id": oops\n'
    path.write_bytes(body + orjson.dumps(lines[2]) + b"\n")
    result = log.ingest_file(str(path))
    assert (result.accepted, result.rejected) == (2, 2)
    assert log.counts()["click"] == 1 and log.counts()["user"] == 1
    dead = log.dead_letters()
    assert set(dead["source"]) == {f"file:{path}"}
    reasons = " | ".join(dead["reason"])
    assert "line 3: not valid JSON" in reasons and "did you mean 'click'" in reasons
    assert '{"event_id": oops' in set(dead["row"])


def test_ingest_csv_keeps_ids_as_text_and_dead_letters_ragged_rows(log, tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text(
        "event_id,ts,impression_id,user_id,item_id\n"
        "c1,2026-01-05T10:00:00Z,i1,007,x1\n"
        "c2,2026-01-05T10:00:00Z,i2,u2\n"
        "c3,2026-01-05T11:00:00Z,i3,u3,x3\n"
    )
    result = log.ingest_file(str(path), event_type="click")
    assert (result.accepted, result.rejected) == (2, 1)
    assert "4 fields, the header has 5" in next(iter(result.reasons))
    assert log.sql("SELECT user_id FROM click ORDER BY event_id")["user_id"].tolist() == [
        "007",
        "u3",
    ]


def test_ingest_parquet_and_format_errors(log, tmp_path, make_impressions):
    path = tmp_path / "imps.parquet"
    make_impressions(5).to_parquet(path)
    assert log.ingest_file(str(path), event_type="impression").accepted == 5
    with pytest.raises(ValidationError, match="has no 'event_type' column"):
        log.ingest_file(str(path))
    with pytest.raises(ValidationError, match="cannot tell the format"):
        log.ingest_file(str(tmp_path / "x.txt"), event_type="click")
    with pytest.raises(NotFoundError, match="no such file"):
        log.ingest_file(str(tmp_path / "missing.csv"), event_type="click")


def test_a_crashed_write_leaves_no_visible_partial_file(log, make_impressions):
    log.append("impression", make_impressions(3))
    day = Path(log.root) / "impression" / "date=2026-01-05"
    # what a crash mid-write leaves behind: a truncated temp file
    (day / f".part-{uuid.uuid4().hex}.parquet.0a1b2c3d.tmp").write_bytes(b"PAR1\x00half")
    assert log.counts()["impression"] == 3
    assert len(log.sql("SELECT * FROM impression")) == 3


def test_sql_errors_name_the_tables(log):
    with pytest.raises(ValidationError, match="Tables: click, conversion"):
        log.sql("SELECT * FROM clicks")


def test_from_config_uses_the_project_events_store(project_dir):
    cfg = ProjectConfig.load(project_dir)
    log = EventLog.from_config(cfg)
    assert Path(log.root) == (project_dir / ".loopml" / "events").resolve()


def test_fsspec_root_works_end_to_end(make_impressions):
    log = EventLog(f"memory://loopml-test-{uuid.uuid4().hex[:8]}/events")
    log.append("impression", make_impressions(5))
    bad = make_impressions(1)
    bad["position"] = "left"
    log.append("impression", bad.assign(event_id="bad"))
    assert log.counts()["impression"] == 5
    assert log.sql("SELECT max(position) AS p FROM impression")["p"][0] == 1
    assert len(log.dead_letters()) == 1
    assert log.append("impression", make_impressions(5)).duplicates == 5


def test_progress_bar_can_be_shown(log, make_impressions, capsys):
    result = log.append("impression", make_impressions(30), progress=True)
    assert result.accepted == 30


def test_append_generated_writes_queryable_rows_and_refuses_missing_required(tmp_path):
    import datetime as dt

    from loopml.core.errors import ValidationError
    from loopml.logs.eventlog import EventLog

    log = EventLog(str(tmp_path / "events"))
    day1 = dt.datetime(2026, 1, 5, 23, 59, tzinfo=dt.UTC)
    day2 = day1 + dt.timedelta(minutes=2)
    rows = [
        {
            "event_id": f"p{i}",
            "ts": ts,
            "request_id": f"r{i}",
            "model": "ctr",
            "version": 3,
            "inputs": "{}",
            "output": 0.25 * i,
            "arm": "challenger" if i else None,
        }
        for i, ts in enumerate((day1, day2))
    ]
    result = log.append_generated("prediction", rows)
    assert result.accepted == 2 and len(result.files) == 2  # one file per day
    got = log.sql("SELECT event_id, version, output, arm FROM prediction ORDER BY event_id")
    assert got["event_id"].tolist() == ["p0", "p1"]
    assert got["output"].tolist() == [0.0, 0.25] and got["arm"].tolist()[1] == "challenger"
    with pytest.raises(ValidationError, match="required field 'model'"):
        log.append_generated("prediction", [{**rows[0], "model": None}])


def test_connect_builds_only_the_views_asked_for(log):
    rows = [
        {
            "event_id": f"c{i}",
            "ts": "2026-01-01T10:00:00Z",
            "impression_id": f"i{i}",
            "user_id": "u1",
            "item_id": "x1",
        }
        for i in (1, 2)
    ]
    log.append("click", rows)
    con = log.connect(["click"])
    try:
        views = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    finally:
        con.close()
    assert views == {"click"}
    everything = log.connect()
    try:
        views = {
            r[0]
            for r in everything.execute(
                "SELECT table_name FROM information_schema.tables"
            ).fetchall()
        }
    finally:
        everything.close()
    assert {"click", "impression", "prediction", "dead_letter"} <= views
    # a query names its tables; one that names none (SHOW TABLES) sees every view
    assert int(log.sql("SELECT count(*) AS n FROM click")["n"].iloc[0]) == 2
    assert "impression" in set(log.sql("SHOW TABLES")["name"])
