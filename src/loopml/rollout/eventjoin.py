"""Outcomes from the event log: behaviour events joined to an experiment's assignments.

Someone who already logs behaviour events (``POST /v1/events``, ``loopml ingest``) gets
per-arm outcomes without calling a separate outcome API. Each run reads the event files
written since the previous run -- a cursor per experiment on the files' modification
times, not on the events' own times, so a day of clicks ingested late (``loopml ingest``
of yesterday's file) is read all the same -- and attributes each event to a request
the experiment routed:

- a ``feedback`` event names its ``request_id``, ``metric`` and ``value``;
- a ``click`` or ``conversion`` names the impression it came from, and the impression's
  ``request_id`` is the request that served it (log the response's request id, the
  ``X-Request-Id`` header, as the impression's ``request_id``). A conversion counts as
  ``conversion`` (1) and, when it carries an amount, as ``conversion_value`` (the
  amount: revenue per request, decided with the test for means);
- an event whose request is not one of the experiment's (no impression logged, or one
  from another page) is attributed by its user: the latest request of that unit
  (``user_id``, or a feedback's ``entity_id``) the experiment routed at most
  ``attribution_window_s`` before the event.

Either way an event counts only if it happened within the attribution window after
its request. Outcomes keep the event's id, so running the join again over the same
events (a second server, the overlap, a rewritten file, a full re-run) stores nothing
twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.rollout.lifecycle import arm_map
from loopml.rollout.records import Experiment
from loopml.rollout.store import ExperimentStore

if TYPE_CHECKING:
    import duckdb

    from loopml.logs.eventlog import EventLog

#: The event types that carry outcomes.
JOINED_TYPES = ("click", "conversion", "feedback")
#: The experiment cursor this job keeps: when the last run started (epoch seconds); files
#: modified before it, less :data:`LATE_S`, were read.
CURSOR = "event_log"
#: Each run also reads files modified this long before its cursor: a writer's clock a
#: little off, a file renamed into place a moment after the previous run listed.
LATE_S = 120.0
#: Client clocks may run this far behind the server's: an event stamped up to this
#: long before its request still belongs to it.
SKEW_S = 5.0

_MAX_ID = 64  # the outcomes table's event_id width


def has_events(log: EventLog) -> bool:
    """Whether the log holds any outcome events at all: a file listing, nothing imported.

    (Not :meth:`EventLog.partitions`: that settles the prediction spool first, which
    loads pandas -- a serving worker must not pay that to find there is nothing to do.)
    """
    return any(log.files.glob(f"{kind}/*/*.parquet") for kind in JOINED_TYPES)


def join_events(
    store: ExperimentStore,
    log: EventLog,
    exp: Experiment,
    *,
    full: bool = False,
    now: float | None = None,
    late_s: float = LATE_S,
) -> dict[str, Any]:
    """Attribute the outcome events written to the log since the last run to ``exp``.

    ``full`` reads every file again (after a backfill of the log, say); it adds only
    what is missing. Returns what was read and stored.
    """
    now = time.time() if now is None else now
    window = exp.spec.attribution_window_s
    cursor = None if full else store.cursor(exp.name, CURSOR)
    summary: dict[str, Any] = {
        "experiment": exp.name,
        "files": 0,
        "events": 0,
        "by_request": 0,
        "by_unit": 0,
        "outside_window": 0,
        "unmatched": 0,
        "accepted": 0,
        "duplicates": 0,
    }
    start = exp.created_at - SKEW_S  # events before the experiment belong to none of it
    modified_after = None if cursor is None else cursor - late_s
    files = {kind: _files(log, kind, start, modified_after) for kind in _COLUMNS}
    summary["files"] = sum(len(f) for f in files.values())
    if summary["files"]:
        events = _read_events(log, files, start, window)
        summary["events"] = len(events)
        if events:
            rows = _attribute(store, exp, events, window, summary)
            added = store.add_outcomes(rows)
            summary["accepted"] = added
            summary["duplicates"] = len(rows) - added
    store.set_cursor(exp.name, CURSOR, now)
    return summary


# -- reading ----------------------------------------------------------------------------------
#: The columns read per event type (besides ``event_id`` and ``ts``).
_COLUMNS = {
    "click": ("impression_id", "user_id", "item_id"),
    "conversion": ("impression_id", "user_id", "item_id", "value"),
    "feedback": ("request_id", "metric", "value", "entity_id"),
}


def _read_events(
    log: EventLog, files: dict[str, list[str]], since: float, window: float
) -> list[dict[str, Any]]:
    """The outcome events in ``files`` with ``ts >= since``, as dicts with ``request_id``
    resolved from the impression for clicks and conversions, and the metrics each one
    carries."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        if not log.files.local:
            con.register_filesystem(log.files.fs)
        found = {kind: _read(con, kind, files[kind], since) for kind in _COLUMNS}
        clicked = [e for kind in ("click", "conversion") for e in found[kind]]
        wanted = {e["impression_id"] for e in clicked if e["impression_id"] is not None}
        first = min((e["t"] for e in clicked), default=since) - window
        served = _impression_requests(log, con, wanted, first)
    finally:
        con.close()
    events: list[dict[str, Any]] = []
    for kind in ("click", "conversion"):
        for e in found[kind]:
            metrics = [(kind, 1.0, "")]
            if kind == "conversion" and e["value"] is not None:
                metrics.append(("conversion_value", float(e["value"]), ":value"))
            events.append(
                {
                    "event_id": e["event_id"],
                    "ts": e["t"],
                    "request_id": served.get(e["impression_id"]),
                    "unit": e["user_id"],
                    "item": e["item_id"],
                    "metrics": metrics,
                }
            )
    for e in found["feedback"]:
        events.append(
            {
                "event_id": e["event_id"],
                "ts": e["t"],
                "request_id": e["request_id"],
                "unit": e["entity_id"],
                "item": None,
                "metrics": [(e["metric"], float(e["value"]), "")],
            }
        )
    return events


def _files(
    log: EventLog, kind: str, since: float, modified_after: float | None = None
) -> list[str]:
    """The Parquet files of ``kind`` in the day partitions from ``since`` on, only those
    modified after ``modified_after`` when it is given."""
    first = "date=" + dt.datetime.fromtimestamp(since, dt.UTC).date().isoformat()
    paths = [p for p in log.files.glob(f"{kind}/*/*.parquet") if p.rsplit("/", 2)[-2] >= first]
    if modified_after is None:
        return paths
    return [p for p in paths if _modified(log, p) >= modified_after]


def _modified(log: EventLog, path: str) -> float:
    """When ``path`` was written (epoch seconds); +inf when the store does not say, so an
    unknown file is read again rather than skipped."""
    if log.files.local:
        return Path(path).stat().st_mtime
    info = log.files.fs.info(path)
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, dt.datetime):
            return value.timestamp()
    return float("inf")


def _source(files: list[str]) -> str:
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in files)
    return f"read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"


def _read(
    con: duckdb.DuckDBPyConnection, kind: str, files: list[str], since: float
) -> list[dict[str, Any]]:
    """One event type's events from ``since`` on in ``files``, one row per event id; a
    column an older file lacks reads as None."""
    if not files:
        return []
    source = _source(files)
    stored = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    select = ", ".join(f'"{c}"' if c in stored else f'NULL AS "{c}"' for c in _COLUMNS[kind])
    rows = con.sql(
        f"SELECT event_id, epoch_us(ts) / 1e6 AS t, {select} FROM {source} "
        "WHERE ts >= to_timestamp($since) "
        "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1",
        params={"since": since},
    )
    names = [d[0] for d in rows.description]
    return [dict(zip(names, r, strict=True)) for r in rows.fetchall()]


def _impression_requests(
    log: EventLog, con: duckdb.DuckDBPyConnection, ids: set[str], since: float
) -> dict[str, str]:
    """``{impression event_id: request_id}`` for the impressions clicked or converted."""
    files = _files(log, "impression", since) if ids else []
    if not files:
        return {}
    rows = con.sql(
        f"SELECT DISTINCT event_id, request_id FROM {_source(files)} "
        "WHERE event_id IN (SELECT unnest($ids))",
        params={"ids": sorted(ids)},
    ).fetchall()
    return {str(event_id): str(rid) for event_id, rid in rows if rid is not None}


# -- attributing ------------------------------------------------------------------------------
def _attribute(
    store: ExperimentStore,
    exp: Experiment,
    events: list[dict[str, Any]],
    window: float,
    summary: dict[str, Any],
) -> list[dict[str, Any]]:
    """Outcome rows for the events that belong to one of ``exp``'s requests."""
    requests = store.assignments_for(exp.name, {e["request_id"] for e in events if e["request_id"]})
    by_unit: list[dict[str, Any]] = []
    targets: list[tuple[dict[str, Any], str, list[dict]]] = []
    for e in events:
        found = requests.get(e["request_id"]) if e["request_id"] else None
        served = _served(found) if found else None
        if served is None:
            if e["unit"] is not None:
                by_unit.append(e)
            else:
                summary["unmatched"] += 1
            continue
        if not served[0]["ts"] - SKEW_S <= e["ts"] <= served[0]["ts"] + window:
            summary["outside_window"] += 1
            continue
        summary["by_request"] += 1
        targets.append((e, e["request_id"], served))
    if by_unit:
        for e, rid, served in _by_unit(store, exp, by_unit, window, summary):
            summary["by_unit"] += 1
            targets.append((e, rid, served))
    rows: list[dict[str, Any]] = []
    for e, rid, served in targets:
        arm = arm_map(served)
        if isinstance(arm, Mapping):  # interleaved: the team whose item it was
            arm = arm.get(str(e["item"])) if e["item"] is not None else None
            if arm is None:
                summary["unmatched"] += 1
                continue
        for metric, value, suffix in e["metrics"]:
            rows.append(
                {
                    "experiment": exp.name,
                    "event_id": _outcome_id(e["event_id"], suffix),
                    "request_id": rid,
                    "arm": arm,
                    "metric": metric,
                    "value": value,
                    "item": str(e["item"]) if e["item"] is not None else None,
                    "ts": e["ts"],
                }
            )
    return rows


def _served(rows: list[dict]) -> list[dict] | None:
    """A request's rows that served the user (mirrors answer nobody), or None."""
    out = [r for r in rows if r["kind"] in ("serve", "interleave")]
    return out or None


def _by_unit(
    store: ExperimentStore,
    exp: Experiment,
    events: list[dict[str, Any]],
    window: float,
    summary: dict[str, Any],
) -> list[tuple[dict[str, Any], str, list[dict]]]:
    """Each event's latest request of the same unit within the window before it."""
    lo = min(e["ts"] for e in events) - window
    hi = max(e["ts"] for e in events) + SKEW_S
    history = store.assignments_of_units(exp.name, {str(e["unit"]) for e in events}, lo, hi)
    out = []
    for e in events:
        rows = history.get(str(e["unit"]), [])
        latest = None
        for r in rows:  # oldest first
            if r["ts"] > e["ts"] + SKEW_S:
                break
            if r["ts"] >= e["ts"] - window:
                latest = r["request_id"]
        if latest is None:
            summary["unmatched"] += 1
            continue
        out.append((e, latest, [r for r in rows if r["request_id"] == latest]))
    return out


def _outcome_id(event_id: str, suffix: str) -> str:
    """The outcome's id: the event's own (so any path that stores the same event with its
    id counts it once), hashed when it would not fit the column."""
    text = f"{event_id}{suffix}"
    if len(text) <= _MAX_ID:
        return text
    return "h:" + hashlib.blake2b(text.encode(), digest_size=24).hexdigest()
