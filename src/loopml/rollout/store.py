"""Experiments, assignments, outcomes and the audit trail, in the metadata database.

The server writes assignments in batches from a background thread; analyses read
aggregates with ``GROUP BY`` so a status call stays one or two queries however long
the experiment has run. Changes to an experiment are conditional on its revision, so
two server processes deciding at the same moment (say, both seeing a guardrail
break) change it once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
import sqlalchemy as sa

from loopml.core.config import ProjectConfig
from loopml.core.errors import ConflictError, NotFoundError, did_you_mean
from loopml.rollout import tables as t
from loopml.rollout.records import STATUSES, Experiment, ExperimentSpec
from loopml.storage.sql import engine_for

#: The assignment columns in the order the router buffers them.
ASSIGNMENT_COLUMNS = tuple(c.name for c in t.assignments.columns if c.name != "id")
#: Assignment rows per INSERT statement (90 x 11 columns: under SQLite's oldest limit of
#: 999 parameters per statement).
ROWS_PER_INSERT = 90


class ExperimentStore:
    """Persisted experiments for one metadata database (SQLite or PostgreSQL).

    >>> import tempfile
    >>> store = ExperimentStore(f"sqlite:///{tempfile.mkdtemp()}/meta.db")
    >>> exp = store.create(ExperimentSpec("e1", "ctr", "ab", ("production", "2")))
    >>> exp.status, store.get("e1").spec.weights
    ('running', (0.5, 0.5))
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)
        t.ensure_tables(self.engine)

    @classmethod
    def from_config(cls, cfg: ProjectConfig) -> ExperimentStore:
        return cls(cfg.url("metadata"))

    def __repr__(self) -> str:
        return f"ExperimentStore({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- experiments -------------------------------------------------------------------------
    def create(
        self, spec: ExperimentSpec, *, actor: str = "loopml", state: Mapping[str, Any] = {}
    ) -> Experiment:
        """Store a new running experiment; one name once, one running experiment per model."""
        spec = spec.checked()
        now = time.time()
        row = {
            "name": spec.name,
            "model": spec.model,
            "policy": spec.policy,
            "spec": json.dumps(spec.to_dict()),
            "status": "running",
            "stage": 0,
            "state": json.dumps(dict(state)),
            "reason": "",
            "revision": 1,
            "created_at": now,
            "updated_at": now,
            "stage_started_at": now,
            "ended_at": None,
        }
        e = t.experiments
        with self.engine.begin() as conn:
            if conn.execute(sa.select(e.c.name).where(e.c.name == spec.name)).first():
                raise ConflictError(
                    f"experiment {spec.name!r} already exists; pick another name (names are "
                    "kept for the audit trail)",
                    field="name",
                )
            busy = conn.execute(
                sa.select(e.c.name).where(e.c.model == spec.model, e.c.status == "running")
            ).first()
            if busy:
                raise ConflictError(
                    f"model {spec.model!r} already has the running experiment {busy[0]!r}; "
                    f"stop it first (loopml experiment stop {busy[0]})",
                    field="model",
                )
            conn.execute(sa.insert(e).values(**row))
            self._event(conn, spec.name, "start", 0, f"{spec.policy} over {list(spec.arms)}", actor)
        return self.get(spec.name)

    def get(self, name: str) -> Experiment:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(t.experiments).where(t.experiments.c.name == name))
                .mappings()
                .first()
            )
            if row is None:
                names = [r[0] for r in conn.execute(sa.select(t.experiments.c.name))]
                raise NotFoundError(
                    f"experiment {name!r} not found; {did_you_mean(name, names)}",
                    experiment=name,
                )
        return _experiment(row)

    def list(self, status: str | None = None) -> list[Experiment]:
        q = sa.select(t.experiments).order_by(t.experiments.c.created_at)
        if status is not None:
            q = q.where(t.experiments.c.status == status)
        with self.engine.connect() as conn:
            return [_experiment(r) for r in conn.execute(q).mappings()]

    def revisions(self) -> dict[str, tuple[int, str]]:
        """``{name: (revision, status)}``: the cheap poll servers use to notice changes."""
        e = t.experiments
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(e.c.name, e.c.revision, e.c.status))
            return {r[0]: (int(r[1]), r[2]) for r in rows}

    def update(
        self,
        name: str,
        *,
        action: str,
        reason: str = "",
        actor: str = "loopml",
        expected_revision: int | None = None,
        status: str | None = None,
        stage: int | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> Experiment:
        """Change an experiment and record why; ConflictError if someone changed it first."""
        if status is not None and status not in STATUSES:
            raise ConflictError(f"status {status!r} is not one of {STATUSES}")
        current = self.get(name)
        now = time.time()
        values: dict[str, Any] = {"updated_at": now, "revision": current.revision + 1}
        if status is not None:
            values["status"] = status
            if status != "running":
                values["ended_at"] = now
        if stage is not None and stage != current.stage:
            values["stage"] = stage
            values["stage_started_at"] = now
        if state is not None:
            values["state"] = json.dumps(dict(state))
        if reason and action != "state":
            values["reason"] = reason
        want = current.revision if expected_revision is None else expected_revision
        e = t.experiments
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(e).where(e.c.name == name, e.c.revision == want).values(**values)
            ).rowcount
            if done != 1:
                raise ConflictError(
                    f"experiment {name!r} changed meanwhile (revision {want} is stale); "
                    "reload it and try again",
                    experiment=name,
                )
            if action != "state":
                self._event(conn, name, action, values.get("stage", current.stage), reason, actor)
        return self.get(name)

    def events(self, name: str) -> list[dict[str, Any]]:
        """The audit trail, oldest first."""
        ev = t.events
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(ev).where(ev.c.experiment == name).order_by(ev.c.id)
            ).mappings()
            return [dict(r) for r in rows]

    @staticmethod
    def _event(conn: sa.Connection, name: str, action: str, stage: int, reason: str, actor: str):
        conn.execute(
            sa.insert(t.events).values(
                experiment=name,
                ts=time.time(),
                action=action,
                stage=stage,
                reason=reason,
                actor=actor,
            )
        )

    # -- traffic -----------------------------------------------------------------------------
    def add_assignments(self, rows: Sequence[Mapping[str, Any] | Sequence[Any]]) -> int:
        """Insert assignment rows (mappings, or tuples in :data:`ASSIGNMENT_COLUMNS` order)
        and add them to the per-arm totals, in one transaction.

        This runs for every routed request (in batches, off the event loop), so it talks
        to the driver directly and packs :data:`ROWS_PER_INSERT` rows in each statement:
        on SQLite that is a third less CPU per row than one ``executemany`` step per row,
        and the server's event loop waits for the lock (the GIL) a few times per batch
        instead of once per row.
        """
        if not rows:
            return 0
        values = [
            r
            if type(r) is tuple
            else tuple(r.get(c) for c in ASSIGNMENT_COLUMNS)
            if isinstance(r, Mapping)
            else tuple(r)
            for r in rows
        ]
        mark = "?" if self.engine.dialect.paramstyle in ("qmark", "numeric") else "%s"
        one = f"({', '.join([mark] * len(ASSIGNMENT_COLUMNS))})"
        head = f"INSERT INTO {t.assignments.name} ({', '.join(ASSIGNMENT_COLUMNS)}) VALUES "
        full = len(values) - len(values) % ROWS_PER_INSERT
        stats = t.UPSERT_ARM_STATS.format(rows=f"VALUES ({', '.join([mark] * 7)})")
        with self.engine.begin() as conn:
            if full:
                conn.exec_driver_sql(
                    head + ", ".join([one] * ROWS_PER_INSERT),
                    [
                        tuple(chain.from_iterable(values[i : i + ROWS_PER_INSERT]))
                        for i in range(0, full, ROWS_PER_INSERT)
                    ],
                )
            if full < len(values):
                rest = values[full:]
                conn.exec_driver_sql(
                    head + ", ".join([one] * len(rest)), tuple(chain.from_iterable(rest))
                )
            conn.exec_driver_sql(stats, _arm_sums(values))
        return len(rows)

    def assignments_for(self, name: str, request_ids: Iterable[str]) -> dict[str, list[dict]]:
        """The assignment rows of these requests, by request id."""
        ids = list(dict.fromkeys(request_ids))
        a = t.assignments
        out: dict[str, list[dict]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                q = sa.select(
                    a.c.request_id, a.c.unit_id, a.c.arm, a.c.kind, a.c.ts, a.c.detail
                ).where(a.c.experiment == name, a.c.request_id.in_(chunk))
                for r in conn.execute(q).mappings():
                    out.setdefault(r["request_id"], []).append(dict(r))
        return out

    def assignments_of_units(
        self, name: str, units: Iterable[str], since: float, until: float
    ) -> dict[str, list[dict]]:
        """Each unit's served (or interleaved) requests with ``since <= ts <= until``,
        oldest first: what an outcome that names only its user can be attributed to."""
        ids = list(dict.fromkeys(units))
        a = t.assignments
        out: dict[str, list[dict]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                q = (
                    sa.select(a.c.request_id, a.c.unit_id, a.c.arm, a.c.kind, a.c.ts, a.c.detail)
                    .where(
                        a.c.experiment == name,
                        a.c.unit_id.in_(chunk),
                        a.c.kind.in_(("serve", "interleave")),
                        a.c.ts >= since,
                        a.c.ts <= until,
                    )
                    .order_by(a.c.ts, a.c.id)
                )
                for r in conn.execute(q).mappings():
                    out.setdefault(r["unit_id"], []).append(dict(r))
        return out

    # -- cursors of background jobs ----------------------------------------------------------
    def cursor(self, name: str, key: str) -> float | None:
        """Where job ``key`` over experiment ``name`` has got to (None: never ran)."""
        c = t.cursors
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(c.c.value).where(c.c.experiment == name, c.c.name == key)
            ).scalar()

    def set_cursor(self, name: str, key: str, value: float) -> None:
        """Move job ``key``'s cursor to ``value`` (never backwards: two writers agree)."""
        mark = "?" if self.engine.dialect.paramstyle in ("qmark", "numeric") else "%s"
        c = t.cursors.name
        sql = (
            f"INSERT INTO {c} (experiment, name, value, updated_at) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}) ON CONFLICT (experiment, name) DO UPDATE "
            f"SET value = CASE WHEN excluded.value > {c}.value THEN excluded.value "
            f"ELSE {c}.value END, updated_at = excluded.updated_at"
        )
        with self.engine.begin() as conn:
            conn.exec_driver_sql(sql, (name, key, float(value), time.time()))

    def take_turn(self, name: str, key: str, every_s: float) -> bool:
        """Whether this caller runs job ``key`` over experiment ``name`` now: true for
        one caller at most every ``every_s`` seconds, however many server processes ask
        (one conditional upsert: the first to ask after the interval wins)."""
        mark = "?" if self.engine.dialect.paramstyle in ("qmark", "numeric") else "%s"
        c = t.cursors.name
        now = time.time()
        sql = (
            f"INSERT INTO {c} (experiment, name, value, updated_at) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}) ON CONFLICT (experiment, name) DO UPDATE "
            f"SET value = excluded.value, updated_at = excluded.updated_at "
            f"WHERE {c}.value <= {mark}"
        )
        with self.engine.begin() as conn:
            done = conn.exec_driver_sql(sql, (name, key, now, now, now - every_s)).rowcount
        return done == 1

    def add_outcomes(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert outcomes, skipping event ids already stored (redelivery counts once).

        Two writers adding the same events at once (two servers joining the event log)
        both end with each event stored once: the loser of the race retries and finds
        them present.
        """
        if not rows:
            return 0
        by_exp: dict[str, list[dict]] = {}
        for r in rows:
            row = dict(r)
            row.setdefault("event_id", uuid.uuid4().hex)
            row.setdefault("ts", time.time())
            by_exp.setdefault(row["experiment"], []).append(row)
        for attempt in range(3):
            try:
                return self._add_outcomes(by_exp)
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
        return 0  # pragma: no cover - the loop returns or raises

    def _add_outcomes(self, by_exp: dict[str, list[dict]]) -> int:
        o = t.outcomes
        added = 0
        with self.engine.begin() as conn:
            for exp, items in by_exp.items():
                fresh: dict[str, dict] = {}
                for start in range(0, len(items), 500):
                    chunk = items[start : start + 500]
                    ids = [r["event_id"] for r in chunk]
                    seen = {
                        x[0]
                        for x in conn.execute(
                            sa.select(o.c.event_id).where(
                                o.c.experiment == exp, o.c.event_id.in_(ids)
                            )
                        )
                    }
                    for r in chunk:
                        if r["event_id"] not in seen:
                            fresh.setdefault(r["event_id"], r)
                if fresh:
                    conn.execute(sa.insert(o), list(fresh.values()))
                    added += len(fresh)
        return added

    # -- aggregates --------------------------------------------------------------------------
    def arm_totals(
        self, name: str, *, kind: str | None = None, since: float | None = None
    ) -> dict[str, dict[str, float]]:
        """Per arm: requests, errors, mean latency (of one kind, or all kinds).

        The whole experiment's figures come from the per-arm totals (a few rows); only a
        window (``since``, a canary stage) reads the assignments themselves.
        """
        if since is None:
            s = t.arm_stats
            q = sa.select(
                s.c.arm,
                sa.func.sum(s.c.requests).label("requests"),
                sa.func.sum(s.c.errors).label("errors"),
                sa.func.sum(s.c.latency_sum).label("latency_sum"),
                sa.func.sum(s.c.latency_n).label("latency_n"),
            ).where(s.c.experiment == name)
            if kind is not None:
                q = q.where(s.c.kind == kind)
            with self.engine.connect() as conn:
                return {
                    r["arm"]: {
                        "requests": int(r["requests"] or 0),
                        "errors": int(r["errors"] or 0),
                        "mean_latency_ms": float(r["latency_sum"] or 0.0) / int(r["latency_n"])
                        if r["latency_n"]
                        else 0.0,
                    }
                    for r in conn.execute(q.group_by(s.c.arm)).mappings()
                }
        a = t.assignments
        q = sa.select(
            a.c.arm,
            sa.func.count().label("requests"),
            sa.func.sum(sa.case((a.c.error, 1), else_=0)).label("errors"),
            sa.func.avg(a.c.latency_ms).label("mean_latency_ms"),
        ).where(a.c.experiment == name, a.c.ts >= since)
        if kind is not None:
            q = q.where(a.c.kind == kind)
        with self.engine.connect() as conn:
            return {
                r["arm"]: {
                    "requests": int(r["requests"]),
                    "errors": int(r["errors"] or 0),
                    "mean_latency_ms": float(r["mean_latency_ms"] or 0.0),
                }
                for r in conn.execute(q.group_by(a.c.arm)).mappings()
            }

    def latencies(
        self,
        name: str,
        arm: str,
        *,
        kind: str | None = None,
        since: float | None = None,
        limit: int = 20_000,
    ) -> np.ndarray:
        """The most recent ``limit`` latencies (ms) of one arm."""
        a = t.assignments
        q = sa.select(a.c.latency_ms).where(
            a.c.experiment == name, a.c.arm == arm, a.c.latency_ms.is_not(None)
        )
        if kind is not None:
            q = q.where(a.c.kind == kind)
        if since is not None:
            q = q.where(a.c.ts >= since)
        q = q.order_by(a.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return np.fromiter((r[0] for r in conn.execute(q)), dtype=np.float64)

    def outcome_totals(
        self, name: str, metric: str, *, since: float | None = None
    ) -> dict[str, dict[str, float]]:
        """Per arm: requests with the metric, requests with a positive value, the sum of
        per-request values and of their squares (for means and variances), and whether
        every outcome was a 0/1 value (then the metric is a rate)."""
        o = t.outcomes
        inner = sa.select(
            o.c.arm,
            o.c.request_id,
            sa.func.sum(o.c.value).label("v"),
            sa.func.max(o.c.value).label("top"),
            sa.func.min(o.c.value).label("bottom"),
        ).where(o.c.experiment == name, o.c.metric == metric)
        if since is not None:
            inner = inner.where(o.c.ts >= since)
        sub = inner.group_by(o.c.arm, o.c.request_id).subquery()
        q = sa.select(
            sub.c.arm,
            sa.func.count().label("n"),
            sa.func.sum(sa.case((sub.c.v > 0, 1), else_=0)).label("positive"),
            sa.func.sum(sub.c.v).label("total"),
            sa.func.sum(sub.c.v * sub.c.v).label("total_sq"),
            sa.func.max(sub.c.top).label("top"),
            sa.func.min(sub.c.bottom).label("bottom"),
        ).group_by(sub.c.arm)
        with self.engine.connect() as conn:
            return {
                r["arm"]: {
                    "n": int(r["n"]),
                    "positive": int(r["positive"] or 0),
                    "total": float(r["total"] or 0.0),
                    "total_sq": float(r["total_sq"] or 0.0),
                    "binary": r["top"] is None or (r["top"] <= 1.0 and r["bottom"] >= 0.0),
                }
                for r in conn.execute(q).mappings()
            }

    def request_outcomes(self, name: str, metric: str) -> dict[str, dict[str, float]]:
        """``{request_id: {arm: summed value}}`` (interleaving credits per impression)."""
        o = t.outcomes
        q = (
            sa.select(o.c.request_id, o.c.arm, sa.func.sum(o.c.value))
            .where(o.c.experiment == name, o.c.metric == metric)
            .group_by(o.c.request_id, o.c.arm)
        )
        out: dict[str, dict[str, float]] = {}
        with self.engine.connect() as conn:
            for rid, arm, value in conn.execute(q):
                out.setdefault(rid, {})[arm] = float(value or 0.0)
        return out

    def timeline(self, name: str, *, kind: str | None = None, limit: int = 200_000) -> list[tuple]:
        """``(ts, request_id, arm, latency_ms, error, score)`` in arrival order (for reports)."""
        a = t.assignments
        q = sa.select(a.c.ts, a.c.request_id, a.c.arm, a.c.latency_ms, a.c.error, a.c.score).where(
            a.c.experiment == name
        )
        if kind is not None:
            q = q.where(a.c.kind == kind)
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q.order_by(a.c.id).limit(limit))]


_EXP, _ARM, _KIND, _LATENCY, _ERROR = (
    ASSIGNMENT_COLUMNS.index(c) for c in ("experiment", "arm", "kind", "latency_ms", "error")
)


def _arm_sums(values: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """A batch of assignment tuples summed per (experiment, arm, kind), in key order (so
    concurrent writers take the totals' row locks in the same order)."""
    sums: dict[tuple[str, str, str], list[Any]] = {}
    for v in values:
        key = (v[_EXP], v[_ARM], v[_KIND])
        acc = sums.get(key)
        if acc is None:
            acc = sums[key] = [0, 0, 0.0, 0]
        acc[0] += 1
        if v[_ERROR]:
            acc[1] += 1
        latency = v[_LATENCY]
        if latency is not None:
            acc[2] += latency
            acc[3] += 1
    return [(*key, *acc) for key, acc in sorted(sums.items())]


def _experiment(row: Mapping[str, Any]) -> Experiment:
    spec = ExperimentSpec.from_dict(json.loads(row["spec"]))
    return Experiment(
        spec=spec,
        status=row["status"],
        stage=int(row["stage"]),
        state=json.loads(row["state"] or "{}"),
        reason=row["reason"] or "",
        revision=int(row["revision"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        stage_started_at=float(row["stage_started_at"]),
        ended_at=float(row["ended_at"]) if row["ended_at"] is not None else None,
    )
