"""Reading event files (CSV, JSON lines, Parquet) without losing a line.

A malformed line (bad JSON, a CSV row with the wrong number of fields) does not fail
the whole file: it is returned separately, with its text and a reason, so the log
can dead-letter it while the good lines are ingested.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml.core.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("csv", "jsonl", "parquet")
_EXTENSIONS = {
    "csv": "csv",
    "tsv": "csv",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "jsonl",
    "parquet": "parquet",
    "pq": "parquet",
}


def detect_format(path: str, format: str | None = None) -> str:
    """The file format from ``format`` or the extension (``.gz`` is looked through).

    >>> detect_format("events/day1.jsonl.gz")
    'jsonl'
    >>> detect_format("events.txt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    loopml.core.errors.ValidationError: cannot tell the format of 'events.txt' from ...
    """
    if format is not None:
        if format not in FORMATS:
            raise ValidationError(
                f"format {format!r} is not supported; use one of {', '.join(map(repr, FORMATS))}",
                field="format",
            )
        return format
    name = path.lower().removesuffix(".gz")
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    if ext not in _EXTENSIONS:
        raise ValidationError(
            f"cannot tell the format of {path!r} from its extension; pass format= one of "
            f"{', '.join(map(repr, FORMATS))} (CLI: --format)",
            field="format",
        )
    return _EXTENSIONS[ext]


def read_events(path: str, format: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``(rows, unreadable)``: the parsed rows, and lines that could not be parsed
    (columns ``row`` with the raw text and ``reason``), or None when every line parsed."""
    kind = detect_format(path, format)
    data = _read_bytes(path)
    if kind == "parquet":
        import io

        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).to_pandas(), None
    if kind == "jsonl":
        return _read_jsonl(data)
    return _read_csv(data, delimiter="\t" if ".tsv" in path.lower() else ",")


def _read_bytes(path: str) -> bytes:
    import fsspec

    try:
        with fsspec.open(path, "rb", compression="infer") as fh:
            return fh.read()
    except FileNotFoundError:
        raise NotFoundError(f"no such file: {path}", path=path) from None


def _read_jsonl(data: bytes) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    import orjson
    import pandas as pd

    lines = [(i + 1, line) for i, line in enumerate(data.splitlines()) if line.strip()]
    try:  # fast path: the whole file at once
        records = orjson.loads(b"[" + b",".join(line for _, line in lines) + b"]")
        if all(isinstance(r, dict) for r in records):
            return pd.DataFrame(records), None
    except orjson.JSONDecodeError:
        pass
    good, bad = [], []
    for number, line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            bad.append((line, f"line {number}: not valid JSON ({exc.msg}); fix or remove it"))
            continue
        if not isinstance(record, dict):
            bad.append((line, f"line {number}: not a JSON object; send one object per line"))
            continue
        good.append(record)
    unreadable = pd.DataFrame(
        [(raw.decode("utf-8", "replace"), reason) for raw, reason in bad],
        columns=["row", "reason"],
    )
    return pd.DataFrame(good), (unreadable if bad else None)


def _read_csv(data: bytes, delimiter: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    import csv
    import io

    import pandas as pd
    import pyarrow as pa
    from pyarrow import csv as pacsv

    first = data.split(b"\n", 1)[0].decode("utf-8-sig").rstrip("\r")
    names = next(csv.reader([first], delimiter=delimiter), [])
    if not names:
        return pd.DataFrame(), None
    bad: list[tuple[str, str]] = []

    def on_bad(row: pacsv.InvalidRow) -> str:
        bad.append(
            (
                row.text or "",
                f"line {row.number}: {row.actual_columns} fields, the header has "
                f"{row.expected_columns}; fix the quoting or the delimiter",
            )
        )
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(data),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_bad),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=True
        ),
    )
    unreadable = pd.DataFrame(bad, columns=["row", "reason"]) if bad else None
    return table.to_pandas(), unreadable
