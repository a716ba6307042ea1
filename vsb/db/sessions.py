"""Gateway sessions kept across restarts, so shards resume instead of identify.

One row per shard: Discord's session id, the last sequence number and the
resume URL, stamped with the time of saving. :func:`load` ignores a row
older than ``max_age_s`` (Discord forgets sessions after a while; a stale
one would only cost a failed RESUME).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec
import psycopg

from vsb.db._sql import fetch_all, fetch_one

if TYPE_CHECKING:
    from vsb.gateway.protocol import Session
    from vsb.services.database import Database

_COLUMNS: Final = "shard_id, session_id, seq, resume_url, updated_at"


class StoredSession(msgspec.Struct, frozen=True, kw_only=True):
    """A shard's resumable session."""

    shard_id: int
    session_id: str
    seq: int | None
    resume_url: str
    updated_at: datetime | None = None


async def save(
    db: Database,
    shard_id: int,
    session_id: str | None,
    seq: int | None = None,
    resume_url: str | None = None,
) -> None:
    """Store the shard's session; with ``session_id=None``, forget it."""

    def work(conn: psycopg.Connection[Any]) -> None:
        if session_id is None or resume_url is None:
            conn.execute(
                "DELETE FROM gateway_sessions WHERE shard_id = %s", (shard_id,)
            )
            return
        conn.execute(
            "INSERT INTO gateway_sessions (shard_id, session_id, seq, resume_url)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (shard_id) DO UPDATE SET"
            " session_id = excluded.session_id, seq = excluded.seq,"
            " resume_url = excluded.resume_url, updated_at = now()",
            (shard_id, session_id, seq, resume_url),
        )

    await db.run_sync(work)


async def load(
    db: Database, shard_id: int, *, max_age_s: float | None = None
) -> StoredSession | None:
    """The shard's stored session, or None when missing or older than ``max_age_s``."""
    return await db.run_sync(
        fetch_one,
        StoredSession,
        f"SELECT {_COLUMNS} FROM gateway_sessions WHERE shard_id = %(shard)s"
        " AND (%(age)s::float8 IS NULL"
        " OR updated_at > now() - make_interval(secs => %(age)s))",
        {"shard": shard_id, "age": max_age_s},
    )


async def load_all(db: Database) -> list[StoredSession]:
    """Every stored session, by shard id."""
    return await db.run_sync(
        fetch_all,
        StoredSession,
        f"SELECT {_COLUMNS} FROM gateway_sessions ORDER BY shard_id",
    )


class DatabaseSessionStore:
    """The gateway's ``SessionStore`` (``vsb.gateway.shard``) over this table.

    Args:
        db: the opened database.
        max_age_s: a stored session older than this is not offered for
            resuming (None: any age).
    """

    def __init__(self, db: Database, *, max_age_s: float | None = 600.0) -> None:
        self._db = db
        self._max_age_s = max_age_s

    async def load(self, shard_id: int) -> Session | None:
        """The shard's recent stored session as a gateway ``Session``, or None."""
        from vsb.gateway.protocol import Session

        stored = await load(self._db, shard_id, max_age_s=self._max_age_s)
        if stored is None:
            return None
        return Session(
            session_id=stored.session_id, seq=stored.seq, resume_url=stored.resume_url
        )

    async def save(self, shard_id: int, session: Session | None) -> None:
        """Store the shard's session (None forgets it)."""
        if session is None:
            await save(self._db, shard_id, None)
        else:
            await save(
                self._db, shard_id, session.session_id, session.seq, session.resume_url
            )
