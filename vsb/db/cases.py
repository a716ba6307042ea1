"""Moderation cases, numbered per guild without gaps.

A case number is taken by upserting the guild's row in
``guild_case_counters`` inside the case's own transaction. The row lock
makes concurrent writers of one guild queue behind each other, and a case
that rolls back gives its number back, so numbers stay 1, 2, 3, ... with no
gap and no duplicate (``UNIQUE (guild_id, number)`` backs this up). Every
change writes its audit entry in the same transaction.

Actions are free text; the bot uses ``warn``, ``mute``, ``unmute``,
``kick``, ``ban``, ``unban``, ``softban`` and ``delete``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec
import psycopg

from vsb.db import audit
from vsb.db._sql import fetch_all, fetch_one

if TYPE_CHECKING:
    from vsb.services.database import Database

_COLUMNS: Final = (
    "id, guild_id, number, action, target_id, moderator_id, reason, duration_s,"
    " expires_at, revoked, revoked_at, revoked_by, created_at, updated_at"
)

_NEXT_NUMBER: Final = """
INSERT INTO guild_case_counters (guild_id, last_number) VALUES (%s, 1)
ON CONFLICT (guild_id)
DO UPDATE SET last_number = guild_case_counters.last_number + 1
RETURNING last_number
"""

_INSERT: Final = f"""
INSERT INTO mod_cases (guild_id, number, action, target_id, moderator_id, reason,
                       duration_s, expires_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
RETURNING {_COLUMNS}
"""


class Case(msgspec.Struct, frozen=True, kw_only=True):
    """One moderation case."""

    id: int
    guild_id: int
    number: int
    action: str
    target_id: int
    moderator_id: int
    reason: str
    duration_s: int | None
    expires_at: datetime | None
    revoked: bool
    revoked_at: datetime | None
    revoked_by: int | None
    created_at: datetime
    updated_at: datetime


def _case_change(case: Case) -> dict[str, Any]:
    return {
        "number": case.number,
        "action": case.action,
        "target_id": case.target_id,
        "reason": case.reason,
        "expires_at": case.expires_at.isoformat() if case.expires_at else None,
    }


def insert_case(
    conn: psycopg.Connection[Any],
    *,
    guild_id: int,
    action: str,
    target_id: int,
    moderator_id: int,
    reason: str,
    expires_at: datetime | None = None,
    duration_s: int | None = None,
) -> Case:
    """Create a case and its audit entry on ``conn`` (caller's transaction)."""
    row = conn.execute(_NEXT_NUMBER, (guild_id,)).fetchone()
    assert row is not None
    case = fetch_one(
        conn,
        Case,
        _INSERT,
        (
            guild_id,
            row[0],
            action,
            target_id,
            moderator_id,
            reason,
            duration_s,
            expires_at,
        ),
    )
    assert case is not None
    audit.insert(
        conn,
        audit.AuditEntry(
            table_name="mod_cases",
            operation="insert",
            actor_id=moderator_id,
            guild_id=guild_id,
            row_id=str(case.id),
            change=_case_change(case),
        ),
    )
    return case


async def create_case(
    db: Database,
    *,
    guild_id: int,
    action: str,
    target_id: int,
    moderator_id: int,
    reason: str,
    expires_at: datetime | None = None,
    duration_s: int | None = None,
) -> Case:
    """Create a case with the guild's next number, audited in one transaction."""
    return await db.run_sync(
        lambda conn: insert_case(
            conn,
            guild_id=guild_id,
            action=action,
            target_id=target_id,
            moderator_id=moderator_id,
            reason=reason,
            expires_at=expires_at,
            duration_s=duration_s,
        )
    )


async def get_case(db: Database, guild_id: int, number: int) -> Case | None:
    """The guild's case ``number``, or None."""
    return await db.run_sync(
        fetch_one,
        Case,
        f"SELECT {_COLUMNS} FROM mod_cases WHERE guild_id = %s AND number = %s",
        (guild_id, number),
    )


async def get_by_id(db: Database, case_id: int) -> Case | None:
    """The case with database id ``case_id``, or None."""
    return await db.run_sync(
        fetch_one, Case, f"SELECT {_COLUMNS} FROM mod_cases WHERE id = %s", (case_id,)
    )


async def list_for_user(
    db: Database,
    guild_id: int,
    target_id: int,
    *,
    limit: int = 25,
    since: datetime | None = None,
    actions: Sequence[str] | None = None,
) -> list[Case]:
    """A member's cases in a guild, newest first (``/warnings``, escalation)."""
    return await db.run_sync(
        fetch_all,
        Case,
        f"SELECT {_COLUMNS} FROM mod_cases"
        " WHERE guild_id = %(guild)s AND target_id = %(target)s"
        " AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)"
        " AND (%(actions)s::text[] IS NULL OR action = ANY(%(actions)s))"
        " ORDER BY created_at DESC, number DESC LIMIT %(limit)s",
        {
            "guild": guild_id,
            "target": target_id,
            "since": since,
            "actions": list(actions) if actions is not None else None,
            "limit": limit,
        },
    )


async def list_for_guild(
    db: Database, guild_id: int, *, limit: int = 50, before_number: int | None = None
) -> list[Case]:
    """A guild's cases, newest first; page with ``before_number``."""
    return await db.run_sync(
        fetch_all,
        Case,
        f"SELECT {_COLUMNS} FROM mod_cases WHERE guild_id = %(guild)s"
        " AND (%(before)s::int IS NULL OR number < %(before)s)"
        " ORDER BY number DESC LIMIT %(limit)s",
        {"guild": guild_id, "before": before_number, "limit": limit},
    )


async def update_reason(
    db: Database, guild_id: int, number: int, reason: str, *, actor_id: int
) -> Case | None:
    """Change a case's reason (audited with old and new); None if no such case."""

    def work(conn: psycopg.Connection[Any]) -> Case | None:
        old = conn.execute(
            "SELECT reason FROM mod_cases WHERE guild_id = %s AND number = %s"
            " FOR UPDATE",
            (guild_id, number),
        ).fetchone()
        if old is None:
            return None
        case = fetch_one(
            conn,
            Case,
            f"UPDATE mod_cases SET reason = %s, updated_at = now()"
            f" WHERE guild_id = %s AND number = %s RETURNING {_COLUMNS}",
            (reason, guild_id, number),
        )
        assert case is not None
        _audit_update(conn, case, actor_id, {"reason": [old[0], reason]})
        return case

    return await db.run_sync(work)


async def revoke(
    db: Database, guild_id: int, number: int, *, actor_id: int | None = None
) -> Case | None:
    """Mark a case revoked (a lifted ban or mute); None if missing or revoked."""

    def work(conn: psycopg.Connection[Any]) -> Case | None:
        case = fetch_one(
            conn,
            Case,
            "UPDATE mod_cases SET revoked = true, revoked_at = now(),"
            " revoked_by = %s, updated_at = now()"
            f" WHERE guild_id = %s AND number = %s AND NOT revoked RETURNING {_COLUMNS}",
            (actor_id, guild_id, number),
        )
        if case is not None:
            _audit_update(conn, case, actor_id, {"revoked": True}, "revoke")
        return case

    return await db.run_sync(work)


async def due_expirations(
    db: Database, now: datetime, *, limit: int = 100
) -> list[Case]:
    """Live temporary cases whose ``expires_at`` is at or before ``now``."""
    return await db.run_sync(
        fetch_all,
        Case,
        f"SELECT {_COLUMNS} FROM mod_cases"
        " WHERE expires_at IS NOT NULL AND NOT revoked AND expires_at <= %s"
        " ORDER BY expires_at LIMIT %s",
        (now, limit),
    )


async def next_expiry(db: Database) -> datetime | None:
    """The earliest ``expires_at`` of a live temporary case (for the scheduler)."""

    def work(conn: psycopg.Connection[Any]) -> datetime | None:
        row = conn.execute(
            "SELECT min(expires_at) FROM mod_cases"
            " WHERE expires_at IS NOT NULL AND NOT revoked"
        ).fetchone()
        return row[0] if row else None

    return await db.run_sync(work)


async def count_since(
    db: Database, guild_id: int, target_id: int, action: str, since: datetime
) -> int:
    """How many ``action`` cases a member got since ``since`` (escalation)."""

    def work(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(
            "SELECT count(*) FROM mod_cases WHERE guild_id = %s AND target_id = %s"
            " AND action = %s AND created_at >= %s",
            (guild_id, target_id, action, since),
        ).fetchone()
        return int(row[0]) if row else 0

    return await db.run_sync(work)


async def import_bans(
    db: Database,
    guild_id: int,
    moderator_id: int,
    bans: Iterable[tuple[int, str]],
) -> int:
    """Bulk-import a ban list as ``ban`` cases with ``COPY``; return how many.

    ``bans`` yields ``(target_id, reason)``. The rows go to a temporary table
    by ``COPY``, then into ``mod_cases`` with consecutive numbers taken from
    the guild's counter in the same transaction, plus one audit entry.
    """
    rows = list(bans)

    def work(conn: psycopg.Connection[Any]) -> int:
        conn.execute(
            "CREATE TEMP TABLE ban_import (seq serial, target_id bigint, reason text)"
            " ON COMMIT DROP"
        )
        with (
            conn.cursor() as cur,
            cur.copy("COPY ban_import (target_id, reason) FROM STDIN") as copy,
        ):
            for target_id, reason in rows:
                copy.write_row((target_id, reason))
        return _insert_imported(conn, guild_id, moderator_id, len(rows))

    return await db.run_sync(work)


def _insert_imported(
    conn: psycopg.Connection[Any], guild_id: int, moderator_id: int, count: int
) -> int:
    if count == 0:
        return 0
    row = conn.execute(
        "INSERT INTO guild_case_counters (guild_id, last_number) VALUES (%s, %s)"
        " ON CONFLICT (guild_id) DO UPDATE"
        " SET last_number = guild_case_counters.last_number + excluded.last_number"
        " RETURNING last_number",
        (guild_id, count),
    ).fetchone()
    assert row is not None
    first = row[0] - count + 1
    conn.execute(
        "INSERT INTO mod_cases (guild_id, number, action, target_id, moderator_id,"
        " reason) SELECT %s, %s + row_number() OVER (ORDER BY seq) - 1, 'ban',"
        " target_id, %s, reason FROM ban_import",
        (guild_id, first, moderator_id),
    )
    audit.insert(
        conn,
        audit.AuditEntry(
            table_name="mod_cases",
            operation="import",
            actor_id=moderator_id,
            guild_id=guild_id,
            change={"count": count, "first_number": first},
        ),
    )
    return count


def _audit_update(
    conn: psycopg.Connection[Any],
    case: Case,
    actor_id: int | None,
    change: dict[str, Any],
    operation: str = "update",
) -> None:
    audit.insert(
        conn,
        audit.AuditEntry(
            table_name="mod_cases",
            operation=operation,
            actor_id=actor_id,
            guild_id=case.guild_id,
            row_id=str(case.id),
            change={"number": case.number, **change},
        ),
    )
