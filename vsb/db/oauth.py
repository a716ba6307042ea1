"""OAuth2 state nonces: stored when a link is issued, usable once.

:func:`consume_state` marks the nonce used in the same statement that checks
it (``UPDATE ... WHERE used_at IS NULL AND expires_at > now()``), so two
callbacks racing with one state cannot both succeed.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from vsb.services.database import Database


async def store_state(
    db: Database,
    nonce: str,
    *,
    expires_at: datetime,
    user_id: int | None = None,
    guild_id: int | None = None,
) -> None:
    """Remember an issued state's nonce until ``expires_at``."""
    await db.run_sync(
        lambda conn: conn.execute(
            "INSERT INTO oauth_states (nonce, user_id, guild_id, expires_at)"
            " VALUES (%s, %s, %s, %s)",
            (nonce, user_id, guild_id, expires_at),
        )
    )


async def consume_state(db: Database, nonce: str) -> bool:
    """Use a nonce; False when unknown, expired or already used."""

    def work(conn: psycopg.Connection[Any]) -> bool:
        cur = conn.execute(
            "UPDATE oauth_states SET used_at = now()"
            " WHERE nonce = %s AND used_at IS NULL AND expires_at > now()",
            (nonce,),
        )
        return cur.rowcount == 1

    return await db.run_sync(work)


async def purge_expired(db: Database, *, older_than: datetime) -> int:
    """Delete states that expired before ``older_than``; return how many."""

    def work(conn: psycopg.Connection[Any]) -> int:
        cur = conn.execute(
            "DELETE FROM oauth_states WHERE expires_at < %s", (older_than,)
        )
        return cur.rowcount

    return await db.run_sync(work)
