"""The hash of the last command schema synced to Discord, per scope.

``scope`` is ``global`` or ``guild:<id>``; the commands service syncs only
when the hash of its declared commands differs from the stored one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from vsb.services.database import Database


async def get_hash(db: Database, scope: str) -> str | None:
    """The last synced hash of ``scope``, or None when never synced."""

    def work(conn: psycopg.Connection[Any]) -> str | None:
        row = conn.execute(
            "SELECT hash FROM command_sync WHERE scope = %s", (scope,)
        ).fetchone()
        return str(row[0]) if row else None

    return await db.run_sync(work)


async def set_hash(db: Database, scope: str, hash_: str) -> None:
    """Store ``hash_`` as the last synced schema hash of ``scope``."""
    await db.run_sync(
        lambda conn: conn.execute(
            "INSERT INTO command_sync (scope, hash) VALUES (%s, %s)"
            " ON CONFLICT (scope) DO UPDATE SET hash = excluded.hash,"
            " synced_at = now()",
            (scope, hash_),
        )
    )
