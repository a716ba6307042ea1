"""Verified users and their web roles (``moderator``, ``admin``).

``users.role`` is the user's primary role label (``user`` by default);
``user_roles`` holds the grants that the web API checks, with who granted
them and when.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec
import psycopg

from vsb.db import audit
from vsb.db._sql import fetch_one

if TYPE_CHECKING:
    from vsb.services.database import Database

_COLUMNS: Final = "id, login, role, verified, verified_at, created_at, updated_at"


class User(msgspec.Struct, frozen=True, kw_only=True):
    """A user the bot knows (verified or holding a role)."""

    id: int
    login: str | None
    role: str
    verified: bool
    verified_at: datetime | None
    created_at: datetime
    updated_at: datetime


async def upsert_verified(
    db: Database, *, user_id: int, login: str, guild_id: int | None = None
) -> User:
    """Record ``user_id`` as verified with ``login``; audited in one transaction."""

    def work(conn: psycopg.Connection[Any]) -> User:
        user = fetch_one(
            conn,
            User,
            "INSERT INTO users (id, login, verified, verified_at) VALUES (%s, %s,"
            " true, now()) ON CONFLICT (id) DO UPDATE SET login = excluded.login,"
            " verified = true, verified_at = now(), updated_at = now()"
            f" RETURNING {_COLUMNS}",
            (user_id, login),
        )
        assert user is not None
        audit.insert(
            conn,
            audit.AuditEntry(
                table_name="users",
                operation="verify",
                actor_id=user_id,
                guild_id=guild_id,
                row_id=str(user_id),
                change={"login": login, "verified": True},
            ),
        )
        return user

    return await db.run_sync(work)


async def get(db: Database, user_id: int) -> User | None:
    """The user, or None."""
    return await db.run_sync(
        fetch_one, User, f"SELECT {_COLUMNS} FROM users WHERE id = %s", (user_id,)
    )


async def roles_of(db: Database, user_id: int) -> frozenset[str]:
    """The roles granted to ``user_id`` (empty when none)."""

    def work(conn: psycopg.Connection[Any]) -> frozenset[str]:
        rows = conn.execute(
            "SELECT role FROM user_roles WHERE user_id = %s", (user_id,)
        ).fetchall()
        return frozenset(row[0] for row in rows)

    return await db.run_sync(work)


async def grant_role(
    db: Database, user_id: int, role: str, *, granted_by: int | None = None
) -> None:
    """Grant ``role`` (``moderator`` or ``admin``); creates the user row if needed."""

    def work(conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "INSERT INTO users (id) VALUES (%s) ON CONFLICT (id) DO NOTHING",
            (user_id,),
        )
        conn.execute(
            "INSERT INTO user_roles (user_id, role, granted_by) VALUES (%s, %s, %s)"
            " ON CONFLICT (user_id, role) DO NOTHING",
            (user_id, role, granted_by),
        )
        audit.insert(
            conn,
            audit.AuditEntry(
                table_name="user_roles",
                operation="grant",
                actor_id=granted_by,
                row_id=str(user_id),
                change={"role": role},
            ),
        )

    await db.run_sync(work)


async def revoke_role(
    db: Database, user_id: int, role: str, *, revoked_by: int | None = None
) -> bool:
    """Take ``role`` away; False when the user did not have it."""

    def work(conn: psycopg.Connection[Any]) -> bool:
        cur = conn.execute(
            "DELETE FROM user_roles WHERE user_id = %s AND role = %s", (user_id, role)
        )
        if cur.rowcount == 0:
            return False
        audit.insert(
            conn,
            audit.AuditEntry(
                table_name="user_roles",
                operation="revoke",
                actor_id=revoked_by,
                row_id=str(user_id),
                change={"role": role},
            ),
        )
        return True

    return await db.run_sync(work)


async def count_verified(db: Database) -> int:
    """How many users are verified (the ``bot_active_users`` gauge)."""

    def work(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT count(*) FROM users WHERE verified").fetchone()
        return int(row[0]) if row else 0

    return await db.run_sync(work)
