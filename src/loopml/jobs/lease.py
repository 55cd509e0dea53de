"""A per-job lease in the metadata database: one run at a time, across processes.

Acquiring is one conditional write (insert, or take over a lease that has expired), so
two schedulers on SQLite or PostgreSQL can race for the same job and exactly one wins.
The holder renews the lease from a heartbeat thread while the job runs; a process that
dies simply stops renewing, and after ``ttl`` seconds the lease is free again and the
run it held is known to have crashed.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import uuid

import sqlalchemy as sa

from loopml.core.clock import to_utc, utcnow
from loopml.jobs.tables import leases


def new_owner() -> str:
    """A unique holder id naming the host and process (shown in run history)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """The right to run ``job`` until ``ttl`` seconds after the last renewal.

    >>> import tempfile
    >>> from loopml.jobs.tables import ensure_tables
    >>> from loopml.storage.sql import engine_for
    >>> engine = engine_for(f"sqlite:///{tempfile.mkdtemp()}/meta.db")
    >>> ensure_tables(engine)
    >>> a, b = Lease(engine, "nightly", ttl=30), Lease(engine, "nightly", ttl=30)
    >>> a.acquire(), b.acquire()
    (True, False)
    >>> a.release(); b.acquire()
    True
    """

    def __init__(self, engine: sa.Engine, job: str, ttl: float = 30.0, owner: str | None = None):
        self.engine = engine
        self.job = job
        self.ttl = float(ttl)
        self.owner = owner or new_owner()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _expiry(self) -> dt.datetime:
        return utcnow() + dt.timedelta(seconds=self.ttl)

    def acquire(self, run_id: int | None = None) -> bool:
        """Take the lease if it is free or expired; True when this holder has it."""
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(leases).values(
                        job=self.job,
                        owner=self.owner,
                        run_id=run_id,
                        acquired_at=now,
                        expires_at=self._expiry(),
                    )
                )
            return True
        except sa.exc.IntegrityError:
            pass
        with self.engine.begin() as conn:
            taken = conn.execute(
                sa.update(leases)
                .where(
                    leases.c.job == self.job,
                    sa.or_(leases.c.expires_at < now, leases.c.owner == self.owner),
                )
                .values(owner=self.owner, run_id=run_id, acquired_at=now, expires_at=self._expiry())
            ).rowcount
        return taken == 1

    def renew(self) -> bool:
        """Extend the lease; False if another holder has taken it (we were too slow)."""
        with self.engine.begin() as conn:
            ok = (
                conn.execute(
                    sa.update(leases)
                    .where(leases.c.job == self.job, leases.c.owner == self.owner)
                    .values(expires_at=self._expiry())
                ).rowcount
                == 1
            )
        if not ok:
            self.lost = True
        return ok

    def release(self) -> None:
        self.stop_heartbeat()
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(leases).where(leases.c.job == self.job, leases.c.owner == self.owner)
            )

    # -- heartbeat -------------------------------------------------------------------------
    def start_heartbeat(self) -> None:
        """Renew every ``ttl / 3`` seconds from a daemon thread until released."""
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(self.ttl / 3):
                try:
                    if not self.renew():
                        return
                except sa.exc.SQLAlchemyError:
                    continue  # a transient DB error: try again on the next beat

        self._thread = threading.Thread(target=beat, name=f"lease-{self.job}", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None


def holder(engine: sa.Engine, job: str) -> dict | None:
    """The current lease of ``job`` (``owner``, ``run_id``, ``expires_at``) or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(leases).where(leases.c.job == job)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["expires_at"] = to_utc(out["expires_at"])
    out["live"] = out["expires_at"] > utcnow()
    return out
