"""Row validation: every bad row is caught with a reason naming the field and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd

from loopml.logs.validation import _coerce, validate


def _clicks(**overrides):
    rows = {
        "event_id": ["c1", "c2", "c3"],
        "ts": ["2026-01-05T10:00:00Z", "2026-01-05T12:00:00+09:00", "2026-01-05 11:00:00"],
        "impression_id": ["i1", "i2", "i3"],
        "user_id": ["u1", "u2", "u3"],
        "item_id": ["x1", "x2", "x3"],
    }
    rows.update(overrides)
    return pd.DataFrame(rows)


def test_valid_rows_are_typed_and_timestamps_become_utc():
    out = validate(_clicks(), "click")
    assert out.rejected is None
    good = out.valid[1]
    assert list(good.columns) == [
        "event_id",
        "ts",
        "impression_id",
        "user_id",
        "item_id",
        "schema_version",
    ]
    assert str(good["ts"].dtype) == "datetime64[us, UTC]"
    # +09:00 is converted, a naive time is taken as UTC
    assert good["ts"].tolist() == [
        pd.Timestamp("2026-01-05T10:00:00Z"),
        pd.Timestamp("2026-01-05T03:00:00Z"),
        pd.Timestamp("2026-01-05T11:00:00Z"),
    ]


def test_bad_timestamp_null_required_and_missing_column_are_rejected_with_reasons():
    out = validate(_clicks(ts=["2026-01-05T10:00:00Z", "tomorrow", None]), "click")
    assert out.accepted == 1
    reasons = out.reasons.tolist()
    assert "field 'ts' must be a timestamp" in reasons[0] and "ISO-8601" in reasons[0]
    assert "required field 'ts' is null; send a value" in reasons[1]
    missing = validate(_clicks().drop(columns=["user_id"]), "click")
    assert missing.accepted == 0
    assert set(missing.reasons) == {
        "click v1: missing required field 'user_id' (string); add the column"
    }


def test_numeric_timestamps_are_refused_rather_than_guessed():
    out = validate(_clicks(ts=[1767607200, 1767607200, 1767607200]), "click")
    assert out.accepted == 0
    assert "must be a timestamp" in out.reasons.iloc[0]


def test_types_are_coerced_or_rejected_per_row():
    rows = pd.DataFrame(
        {
            "event_id": ["a", "b", "c", "d"],
            "ts": ["2026-01-05T00:00:00Z"] * 4,
            "request_id": ["r"] * 4,
            "user_id": [7, 8, 9, 10],  # numbers are fine as text ids
            "item_id": ["x"] * 4,
            "position": ["3", 2.0, 1.5, "top"],  # text and whole floats coerce; 1.5 and 'top' fail
        }
    )
    out = validate(rows, "impression")
    good = out.valid[2]
    assert good["user_id"].tolist() == ["7", "8"]
    assert good["position"].tolist() == [3, 2]
    assert out.rejected["event_id"].tolist() == ["c", "d"]
    assert all("field 'position' must be a whole number (int64)" in r for r in out.reasons)


def test_unknown_column_rejects_the_row_naming_it_but_all_null_columns_are_ignored():
    rows = _clicks(referrer=[None, "google", None])
    out = validate(rows, "click")
    assert out.accepted == 2
    assert out.rejected["event_id"].tolist() == ["c2"]
    assert "unknown column 'referrer'" in out.reasons.iloc[0]
    assert "loopml.logs.schemas" in out.reasons.iloc[0]


def test_a_newer_version_field_on_an_older_row_is_kept_not_rejected():
    rows = pd.DataFrame(
        {
            "event_id": ["a", "b"],
            "ts": ["2026-01-05T00:00:00Z"] * 2,
            "request_id": ["r", "r"],
            "user_id": ["u", "u"],
            "item_id": ["x", "y"],
            "position": [0, 1],
            "schema_version": [1, 1],
            "device": ["ios", None],
        }
    )
    out = validate(rows, "impression")
    assert out.rejected is None
    assert out.valid[1]["device"].tolist()[0] == "ios"


def test_schema_version_is_per_row_defaults_to_latest_and_unknown_versions_are_rejected():
    rows = pd.DataFrame(
        {
            "event_id": ["a", "b", "c", "d"],
            "ts": ["2026-01-05T00:00:00Z"] * 4,
            "request_id": ["r"] * 4,
            "user_id": ["u"] * 4,
            "item_id": ["x"] * 4,
            "position": [0, 1, 2, 3],
            "schema_version": [1, None, 2, 9],
            "device": [None, "web", "ios", None],
        }
    )
    out = validate(rows, "impression")
    assert out.valid[1]["event_id"].tolist() == ["a"]
    assert out.valid[2]["event_id"].tolist() == ["b", "c"]
    assert out.reasons.tolist() == [
        "impression: unknown schema_version; valid: 1, 2 (omit it for the latest)"
    ]


def test_unknown_event_type_rejects_every_row_with_a_suggestion():
    out = validate(_clicks(), "clik")
    assert out.accepted == 0 and len(out.rejected) == 3
    assert "did you mean 'click'" in out.reasons.iloc[0]


def test_empty_event_id_is_rejected():
    out = validate(_clicks(event_id=["", "c2", "c3"]), "click")
    assert out.reasons.tolist() == ["click v1: field 'event_id' is empty; send a unique id"]


def test_coercion_of_bool_float_and_string_columns():
    typed, bad = _coerce(pd.Series(["true", "No", 1, "maybe", None], dtype=object), "bool")
    assert typed.tolist()[:3] == [True, False, True] and bad.tolist() == [
        False,
        False,
        False,
        True,
        False,
    ]
    typed, bad = _coerce(pd.Series([1.5, "2", "x", np.nan], dtype=object), "float64")
    assert typed.tolist()[:2] == [1.5, 2.0] and bad.tolist() == [False, False, True, False]
    typed, bad = _coerce(pd.Series(["a", {"k": 1}, 3.0], dtype=object), "string")
    assert (
        typed.tolist()[0] == "a"
        and typed.tolist()[2] == "3.0"
        and bad.tolist() == [False, True, False]
    )
    typed, bad = _coerce(pd.Series([3.0, 4.5]), "string")
    assert typed.tolist() == ["3", "4.5"] and not bad.any()


def test_validation_is_vectorised_for_large_batches():
    n = 200_000
    rows = pd.DataFrame(
        {
            "event_id": pd.Series(np.arange(n)).astype(str),
            "ts": pd.Timestamp("2026-01-05", tz="UTC") + pd.to_timedelta(np.arange(n), "s"),
            "impression_id": "i",
            "user_id": "u",
            "item_id": "x",
        }
    )
    import time

    began = time.perf_counter()
    out = validate(rows, "click")
    assert out.accepted == n
    assert time.perf_counter() - began < 5.0  # per-row Python would take far longer
