"""The event log: validated, de-duplicated events in Parquet, queried with SQL (seed 000 §4.3).

Layout under the root (a local directory or any fsspec URL)::

    <root>/<event_type>/date=YYYY-MM-DD/part-<uuid>.parquet      one file per batch, day, version
    <root>/_dead_letter/date=YYYY-MM-DD/part-<uuid>.parquet      rejected rows, as JSON + reason
    <root>/_spool/<event_type>/*.jsonl                          served predictions, not yet Parquet

Rows are validated column-wise against the schema version they declare; rejected rows
go to the dead-letter log with the reason, so nothing is silently dropped. Redelivered
events (same ``event_id``) are dropped at write time within the batch and against the
days already stored, and the SQL views de-duplicate again, so a race between two
writers still counts each event once. Events a serving worker generates go through a
JSON-lines spool (:mod:`loopml.logs.spool`) and become Parquet when the log is next read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.core.clock import utcnow
from loopml.core.errors import ValidationError
from loopml.core.progress import progress_bar
from loopml.logs.deadletter import DEAD_COLUMNS, DEAD_LETTER, dead_letter_table, dead_rows
from loopml.logs.files import LogFiles
from loopml.logs.schemas import SQL_TYPES, all_fields, arrow_type, event_types, get_schema
from loopml.logs.spool import SpoolWriter, pending, settle
from loopml.logs.validation import VERSION_COLUMN, validate

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from loopml.core.config import ProjectConfig

_DAY_US = 86_400_000_000


@dataclass
class IngestResult:
    """What one append or file ingest did; ``reasons`` counts rejected rows per reason."""

    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    dead_letter_path: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def add(self, other: IngestResult) -> None:
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.duplicates += other.duplicates
        self.files.extend(other.files)
        for reason, count in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count

    def __str__(self) -> str:
        text = f"accepted {self.accepted}, rejected {self.rejected}, duplicates {self.duplicates}"
        if self.dead_letter_path:
            text += f"; rejected rows in {self.dead_letter_path}"
        return text


class EventLog:
    """Append, ingest and query events under one root.

    >>> import tempfile
    >>> log = EventLog(tempfile.mkdtemp())
    >>> log.append("click", [{"event_id": "c1", "ts": "2026-01-01T10:00:00Z",
    ...     "impression_id": "i1", "user_id": "u1", "item_id": "x1"}]).accepted
    1
    >>> int(log.sql("SELECT count(*) AS n FROM click")["n"].iloc[0])
    1
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.files = LogFiles(root)

    @classmethod
    def from_config(cls, cfg: ProjectConfig) -> EventLog:
        """The project's event log (``[storage] events``)."""
        return cls(cfg.path("events"))

    def __repr__(self) -> str:
        return f"EventLog({self.root!r})"

    # -- writing -----------------------------------------------------------------------
    def append(
        self,
        event_type: str,
        data: pd.DataFrame | list[dict[str, Any]],
        *,
        source: str = "python",
        progress: bool = False,
    ) -> IngestResult:
        """Validate and store rows of one event type; rejected rows go to the dead-letter log."""
        frame = _as_frame(data)
        result, rejects = self._append(event_type, frame, source, progress)
        if rejects is not None:
            result.dead_letter_path = self._write_dead_letters(rejects)
        return result

    def ingest_file(
        self, path: str, event_type: str | None = None, format: str | None = None
    ) -> IngestResult:
        """Load a CSV / JSON-lines / Parquet file; the type comes from an ``event_type`` column
        when not given. Unparseable lines are dead-lettered, not fatal."""
        import pandas as pd

        from loopml.logs.readers import read_events

        frame, unreadable = read_events(path, format)
        source = f"file:{path}"
        result = IngestResult()
        rejects = []
        if unreadable is not None:
            kind = event_type or "(unparsed)"
            rejects.append(
                dead_rows(None, kind, unreadable["reason"], source, raw=unreadable["row"].tolist())
            )
            _count(result, unreadable["reason"])
        if event_type is not None:
            groups = [(event_type, frame)]
        elif "event_type" not in frame.columns:
            raise ValidationError(
                f"{path} has no 'event_type' column, so the type of its rows is unknown; "
                "pass event_type (CLI: --type impression) or add the column",
                field="event_type",
            )
        else:
            kinds = frame["event_type"].astype("str").fillna("(missing)")
            groups = [(str(k), g) for k, g in frame.groupby(kinds, sort=True)]
        for kind, group in groups:
            part, bad = self._append(kind, group, source, progress=False)
            result.add(part)
            if bad is not None:
                rejects.append(bad)
        if rejects:
            result.dead_letter_path = self._write_dead_letters(pd.concat(rejects))
        return result

    def _append(
        self, event_type: str, frame: pd.DataFrame, source: str, progress: bool
    ) -> tuple[IngestResult, pd.DataFrame | None]:
        import numpy as np
        import pandas as pd

        result = IngestResult()
        frame, wrong_type = _split_event_type_column(frame, event_type)
        checked = validate(frame, event_type)
        dead: list[pd.DataFrame] = []
        if wrong_type is not None:
            dead.append(dead_rows(wrong_type[0], event_type, wrong_type[1], source))
        if checked.rejected is not None:
            dead.append(dead_rows(checked.rejected, event_type, checked.reasons, source))
        for part in dead:
            _count(result, part["reason"])
        if not checked.valid:
            return result, (pd.concat(dead) if dead else None)

        frames, jobs = checked.valid, []
        ids = pd.concat([f["event_id"] for f in frames.values()], ignore_index=True)
        dup = ids.duplicated(keep="first").to_numpy()
        offset = 0
        for part in frames.values():
            keep = ~dup[offset : offset + len(part)]
            offset += len(part)
            part = part[keep] if not keep.all() else part
            micros = part["ts"].to_numpy("datetime64[us]").astype(np.int64)
            if (np.diff(micros) < 0).any():  # logs usually arrive in time order: skip the sort
                order = np.argsort(micros, kind="stable")
                part, micros = part.iloc[order], micros[order]
            table = _to_arrow(event_type, part)
            day = micros // _DAY_US
            bounds = np.flatnonzero(np.diff(day)) + 1
            for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(day)], strict=True):
                jobs.append((int(day[lo]), table.slice(lo, hi - lo)))
        result.duplicates = int(dup.sum())
        seen = self._stored_ids(event_type, {d for d, _ in jobs})
        if seen:
            fresh = [(d, _fresh(rows, seen[d]) if d in seen else rows) for d, rows in jobs]
            result.duplicates += sum(r.num_rows for _, r in jobs) - sum(
                r.num_rows for _, r in fresh
            )
            jobs = [(d, rows) for d, rows in fresh if rows.num_rows]
        result.files = self._write_all(event_type, jobs, progress)
        result.accepted = sum(rows.num_rows for _, rows in jobs)
        return result, (pd.concat(dead) if dead else None)

    def append_generated(
        self, event_type: str, rows: list[dict[str, Any]], name: str | None = None
    ) -> IngestResult:
        """Write events loopml generated itself (``prediction``, ``feedback``) with Arrow alone.

        Their ids are fresh uuids and their fields come from loopml's own code, so the
        row validation and the redelivery check of :meth:`append` are not needed. The
        redelivery check reads every event id already stored for the day, so a serving
        worker flushing its prediction log every few seconds would slow down as the day
        goes on. A required field left empty is still refused, naming the field. ``name``
        fixes the file name in each day's folder, so that writing the same rows again
        replaces the file instead of adding a copy.
        """
        import datetime as dt

        import pyarrow as pa

        schema = get_schema(event_type)
        for f in schema.fields:
            if f.required and any(r.get(f.name) is None for r in rows):
                raise ValidationError(
                    f"generated {event_type} events lack required field {f.name!r}",
                    field=f.name,
                )
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        by_day: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            by_day.setdefault((row["ts"] - epoch).days, []).append(row)
        arrow = pa.schema(
            [pa.field(f.name, arrow_type(f.type)) for f in schema.fields]
            + [pa.field(VERSION_COLUMN, pa.int64())]
        )
        jobs = []
        for day, part in sorted(by_day.items()):
            columns = {f.name: [r.get(f.name) for r in part] for f in schema.fields}
            columns[VERSION_COLUMN] = [schema.version] * len(part)
            jobs.append((day, pa.Table.from_pydict(columns, schema=arrow)))
        result = IngestResult()
        result.files = self._write_all(event_type, jobs, progress=False, name=name)
        result.accepted = len(rows)
        return result

    def spool_writer(self, event_type: str, seal_s: float = 60.0) -> SpoolWriter | None:
        """A JSON-lines writer for a serving worker (no pyarrow); ``None`` off local disk."""
        get_schema(event_type)
        return SpoolWriter(self.files.base, event_type, seal_s=seal_s) if self.files.local else None

    def settle(self) -> int:
        """Turn sealed spool files into Parquet (exactly once, crash-safe); rows settled.

        Every read calls this first, so what a serving worker spooled is visible to the
        next query without a separate job.
        """
        if not self.files.local or not pending(self.files.base):
            return 0

        def dead_letter(event_type: str, bad: list[tuple[str, str]], name: str) -> None:
            lines, reasons = zip(*bad, strict=True)
            rows = dead_rows(None, event_type, reasons, "spool", raw=list(lines))
            self._write_dead_letters(rows, name)

        return settle(
            self.files.base,
            lambda event_type, rows, name: self.append_generated(event_type, rows, name=name),
            dead_letter,
        )

    def _write_all(
        self,
        event_type: str,
        jobs: list[tuple[int, Any]],
        progress: bool,
        name: str | None = None,
    ) -> list[str]:
        """Write one file per (day, version) slice; threads overlap the fsync waits."""
        from concurrent.futures import ThreadPoolExecutor

        with (
            progress_bar(len(jobs), f"writing {event_type}", progress) as advance,
            ThreadPoolExecutor(max_workers=min(8, max(1, len(jobs)))) as pool,
        ):
            futures = [
                pool.submit(self.files.write, f"{event_type}/date={_date(d)}", rows, name)
                for d, rows in jobs
            ]
            paths = []
            for future in futures:
                paths.append(future.result())
                advance(1)
        return paths

    def _stored_ids(self, event_type: str, days: set[int]) -> dict[int, Any]:
        """Event ids already stored per day (a redelivery carries the same ts, so the same day)."""
        import pyarrow as pa

        out = {}
        for d in sorted(days):
            paths = self.files.glob(f"{event_type}/date={_date(d)}/*.parquet")
            if paths:
                cols = [self.files.read(p, ["event_id"]).column("event_id") for p in paths]
                out[d] = pa.chunked_array([c for col in cols for c in col.chunks], pa.string())
        return out

    def _write_dead_letters(self, rows: pd.DataFrame, name: str | None = None) -> str:
        return self.files.write(
            f"{DEAD_LETTER}/date={utcnow().date().isoformat()}", dead_letter_table(rows), name
        )

    # -- reading -----------------------------------------------------------------------
    def connect(self, tables: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one de-duplicated view per event type plus ``dead_letter``.

        Views union every schema version by column name; a column a version lacks reads
        as NULL. Timestamps are UTC. ``tables`` limits the views to those named (each
        view reads the footers of its type's files, so a query of one type should not
        pay for every type).
        """
        import duckdb

        wanted = set(event_types()) | {"dead_letter"} if tables is None else set(tables)
        self.settle()
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        if not self.files.local:
            con.register_filesystem(self.files.fs)
        for kind in event_types():
            if kind in wanted:
                con.execute(f'CREATE VIEW "{kind}" AS {self._view_sql(con, kind)}')
        if "dead_letter" not in wanted:
            return con
        dead = self.files.glob(f"{DEAD_LETTER}/*/*.parquet")
        if dead:
            body = f"SELECT * FROM {_read_sql(self.files, DEAD_LETTER)}"
        else:
            body = _empty_select(DEAD_COLUMNS)
        con.execute(f"CREATE VIEW dead_letter AS {body}")
        return con

    def _view_sql(self, con: duckdb.DuckDBPyConnection, kind: str) -> str:
        union = {name: SQL_TYPES[f.type] for name, f in all_fields(kind).items()}
        union[VERSION_COLUMN] = "BIGINT"
        if not self.files.glob(f"{kind}/*/*.parquet"):
            return _empty_select(union)
        source = _read_sql(self.files, kind)
        stored = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        select = [
            f'"{c}"' if c in stored else f'CAST(NULL AS {t}) AS "{c}"' for c, t in union.items()
        ]
        select += [f'"{c}"' for c in stored if c not in union]
        return (
            f"SELECT {', '.join(select)} FROM {source} "
            "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1"
        )

    def sql(self, query: str) -> pd.DataFrame:
        """Run SQL over the views and return a DataFrame (empty for statements without rows)."""
        import duckdb
        import pandas as pd

        con = self.connect(tables_in(query) or None)  # e.g. SHOW TABLES: every view
        try:
            rel = con.sql(query)
            return to_frame(rel) if rel is not None else pd.DataFrame()
        except duckdb.Error as exc:
            raise ValidationError(
                f"SQL failed: {exc}. Tables: {', '.join(event_types())}, dead_letter; "
                "see columns with DESCRIBE <table>",
                field="query",
            ) from None
        finally:
            con.close()

    def dead_letters(self) -> pd.DataFrame:
        """Every rejected row: when, type, source, reason (field and fix), the row as JSON."""
        return self.sql("SELECT * FROM dead_letter ORDER BY received_at, event_type")

    def counts(self) -> dict[str, int]:
        """Distinct events per type (redeliveries count once); types never written count 0."""
        self.settle()
        stored = [k for k in event_types() if self.files.glob(f"{k}/*/*.parquet")]
        out = dict.fromkeys(event_types(), 0)
        if stored:
            query = " UNION ALL ".join(f"SELECT '{k}', count(*) FROM \"{k}\"" for k in stored)
            con = self.connect(stored)
            try:
                out.update({k: int(n) for k, n in con.execute(query).fetchall()})
            finally:
                con.close()
        return out

    def distinct(self, event_type: str, column: str, before: Any = None) -> list[str]:
        """Distinct non-null values of one column, as text, for events with ``ts < before``.

        Reads the files directly: a redelivered duplicate carries the same values, so this
        needs none of the views' de-duplication work.
        """
        if column not in all_fields(event_type):
            raise ValidationError(
                f"event {event_type} has no column {column!r}; valid: "
                f"{', '.join(all_fields(event_type))}",
                field=column,
            )
        self.settle()
        if not self.files.glob(f"{event_type}/*/*.parquet"):
            return []
        where, params = f'"{column}" IS NOT NULL', {}
        if before is not None:
            from loopml.logs.evolution import utc

            where += " AND ts < $before"
            params["before"] = utc(before)
        con = self.connect(())  # reads the files directly: no views needed
        try:
            rows = con.sql(
                f'SELECT DISTINCT CAST("{column}" AS VARCHAR) FROM '
                f"{_read_sql(self.files, event_type)} WHERE {where} ORDER BY 1",
                params=params,
            ).fetchall()
        finally:
            con.close()
        return [r[0] for r in rows]

    def partitions(self, event_type: str) -> dict[str, list[str]]:
        """``{YYYY-MM-DD: [files]}`` for one event type, oldest day first."""
        self.settle()
        out: dict[str, list[str]] = {}
        for path in self.files.glob(f"{event_type}/*/*.parquet"):
            day = path.rsplit("/", 2)[-2].removeprefix("date=")
            out.setdefault(day, []).append(path)
        return dict(sorted(out.items()))


def tables_in(query: str) -> list[str]:
    """The event tables (and ``dead_letter``) a query names, as whole words.

    >>> tables_in('SELECT count(*) FROM click JOIN "impression" USING (impression_id)')
    ['click', 'impression']
    """
    import re

    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", query.lower()))
    return [k for k in (*event_types(), "dead_letter") if k in words]


def to_frame(rel: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """A DuckDB result as pandas (nullable ints stay ints), without duckdb's pandas-4 warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The inplace keyword")
        return rel.df()


def _as_frame(data: Any) -> pd.DataFrame:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, list | tuple) and all(isinstance(r, dict) for r in data):
        return pd.DataFrame(list(data))
    raise ValidationError(
        f"data must be a pandas DataFrame or a list of dicts (one per event), got "
        f"{type(data).__name__}",
        field="data",
    )


def _split_event_type_column(frame: pd.DataFrame, event_type: str) -> tuple[pd.DataFrame, Any]:
    """Drop an ``event_type`` column; rows whose value disagrees are rejected, not rewritten."""
    if "event_type" not in frame.columns:
        return frame, None
    mismatch = frame["event_type"].notna() & (frame["event_type"].astype("str") != event_type)
    rest = frame.drop(columns=["event_type"])
    if not mismatch.any():
        return rest, None
    reason = (
        f"event_type column disagrees with the requested type {event_type!r}; "
        "ingest it without --type or fix the column"
    )
    import pandas as pd

    return rest[~mismatch], (frame[mismatch], pd.Series(reason, index=frame.index[mismatch]))


def _count(result: IngestResult, reasons: pd.Series) -> None:
    result.rejected += len(reasons)
    for reason, n in reasons.value_counts().items():
        result.reasons[str(reason)] = result.reasons.get(str(reason), 0) + int(n)


def _to_arrow(event_type: str, rows: pd.DataFrame) -> Any:
    """Typed Arrow table of validated rows (the Parquet schema of the event type)."""
    import pyarrow as pa

    union = all_fields(event_type)
    schema = pa.schema(
        [pa.field(c, arrow_type(union[c].type)) for c in rows.columns if c in union]
        + [pa.field(VERSION_COLUMN, pa.int64())]
    )
    return pa.Table.from_pandas(rows, schema=schema, preserve_index=False)


def _fresh(rows: Any, stored: Any) -> Any:
    """Rows whose event_id is not already stored (Arrow's hash-based membership test)."""
    import pyarrow.compute as pc

    known = pc.is_in(rows.column("event_id"), value_set=stored.combine_chunks())
    return rows.filter(pc.invert(known))


def _date(day: int) -> str:
    import datetime as dt

    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()


def _read_sql(files: LogFiles, kind: str) -> str:
    """``read_parquet`` over every day of one type (columns unioned by name across versions)."""
    path = files.path(f"{kind}/*/*.parquet").replace("'", "''")
    return f"read_parquet('{path}', union_by_name = true, hive_partitioning = false)"


def _empty_select(columns: dict[str, str]) -> str:
    cols = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in columns.items())
    return f"SELECT {cols} WHERE false"
