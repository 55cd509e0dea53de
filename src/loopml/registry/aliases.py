"""Alias moves and their audit trail, inside a transaction the registry already holds.

Every move (set, rollback, delete) writes the new pointer and one audit row in the
same transaction, so the trail can never disagree with the pointer. Rollback reads
the trail as a stack: each ``set`` pushes the version it replaced, each ``rollback``
pops one, so repeated rollbacks walk back through history instead of flip-flopping.
"""

from __future__ import annotations

import getpass
import os

import sqlalchemy as sa

from loopml.core.clock import to_utc, utcnow
from loopml.core.errors import ConflictError
from loopml.registry import tables as t
from loopml.registry.records import AliasMove

#: Environment variable naming who acts, when the caller does not say (CI, a job runner).
ACTOR_ENV = "LOOPML_ACTOR"


def default_actor() -> str:
    """Who is acting: ``$LOOPML_ACTOR``, else the OS user, else ``unknown``."""
    env = os.environ.get(ACTOR_ENV)
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def current(conn: sa.Connection, name: str, alias: str) -> int | None:
    """The version ``alias`` points at, or None."""
    found = conn.execute(
        sa.select(t.aliases.c.version).where(t.aliases.c.name == name, t.aliases.c.alias == alias)
    ).scalar()
    return None if found is None else int(found)


def all_for(conn: sa.Connection, name: str) -> dict[str, int]:
    rows = conn.execute(
        sa.select(t.aliases.c.alias, t.aliases.c.version).where(t.aliases.c.name == name)
    )
    return {alias: int(version) for alias, version in sorted(rows)}


def history(conn: sa.Connection, name: str, alias: str | None = None) -> list[AliasMove]:
    query = sa.select(t.alias_moves).where(t.alias_moves.c.name == name)
    if alias is not None:
        query = query.where(t.alias_moves.c.alias == alias)
    rows = conn.execute(query.order_by(t.alias_moves.c.id)).mappings()
    return [_to_move(dict(r)) for r in rows]


def move(
    conn: sa.Connection,
    name: str,
    alias: str,
    to_version: int | None,
    kind: str,
    actor: str | None,
    reason: str,
) -> AliasMove:
    """Point ``alias`` at ``to_version`` (None deletes it) and append the audit row."""
    now = utcnow()
    before = current(conn, name, alias)
    where = (t.aliases.c.name == name, t.aliases.c.alias == alias)
    if to_version is None:
        conn.execute(sa.delete(t.aliases).where(*where))
    elif before is None:
        conn.execute(
            sa.insert(t.aliases).values(name=name, alias=alias, version=to_version, updated_at=now)
        )
    else:
        conn.execute(sa.update(t.aliases).where(*where).values(version=to_version, updated_at=now))
    row = {
        "name": name,
        "alias": alias,
        "from_version": before,
        "to_version": to_version,
        "kind": kind,
        "actor": actor or default_actor(),
        "reason": str(reason),
        "at": now,
    }
    result = conn.execute(sa.insert(t.alias_moves).values(**row))
    row["id"] = int(result.inserted_primary_key[0])
    return _to_move(row)


def rollback_target(conn: sa.Connection, name: str, alias: str) -> int:
    """The version ``alias`` pointed at before its last (not yet undone) move."""
    moves = history(conn, name, alias)
    stack: list[int] = []
    for m in moves:
        if m.kind == "rollback":
            if stack:
                stack.pop()
        elif m.from_version is not None and m.from_version != m.to_version:
            stack.append(m.from_version)
    if not stack:
        trail = "; ".join(str(m) for m in moves[-5:]) or "it was never set"
        raise ConflictError(
            f"model {name} alias {alias!r} has no earlier version to roll back to "
            f"(history: {trail}); point it explicitly with "
            f"`loopml models alias {name} {alias} VERSION`",
            model=name,
            alias=alias,
        )
    return stack[-1]


def _to_move(row: dict) -> AliasMove:
    return AliasMove(
        name=row["name"],
        alias=row["alias"],
        from_version=row["from_version"],
        to_version=row["to_version"],
        actor=row["actor"],
        reason=row["reason"],
        at=to_utc(row["at"]),
        kind=row["kind"],
        id=int(row.get("id") or 0),
    )
