"""Per-guild settings: log channel, verified role, thresholds, exemptions, AI.

A guild without a row has the defaults of :class:`GuildSettings` (the same
as the table's column defaults). :func:`update` upserts the named fields
and writes an audit entry with the old and new values in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec
import psycopg
from psycopg import sql

from vsb.db import audit
from vsb.db._sql import fetch_one

if TYPE_CHECKING:
    from vsb.services.database import Database

#: Fields :func:`update` may change.
FIELDS: Final = (
    "log_channel_id",
    "verified_role_id",
    "auto_threshold",
    "review_threshold",
    "exempt_role_ids",
    "ai_enabled",
    "escalate_after",
    "escalate_window_s",
    "escalate_timeout_s",
)
_COLUMNS: Final = ", ".join(("guild_id", *FIELDS, "updated_at"))


class GuildSettings(msgspec.Struct, frozen=True, kw_only=True):
    """A guild's settings (defaults when never configured).

    Attributes:
        auto_threshold: at or above this score, act automatically.
        review_threshold: at or above this score, send to the review queue.
        exempt_role_ids: members with one of these roles are not moderated.
        escalate_after: automatic warnings within ``escalate_window_s`` that
            turn into a timeout of ``escalate_timeout_s`` (0 disables).
    """

    guild_id: int
    log_channel_id: int | None = None
    verified_role_id: int | None = None
    auto_threshold: float = 0.95
    review_threshold: float = 0.80
    exempt_role_ids: list[int] = []
    ai_enabled: bool = True
    escalate_after: int = 3
    escalate_window_s: int = 86_400
    escalate_timeout_s: int = 3_600
    updated_at: datetime | None = None


class SettingsError(ValueError):
    """An unknown field or an invalid value (thresholds out of order)."""


async def get(db: Database, guild_id: int) -> GuildSettings:
    """The guild's settings, or the defaults when it has no row."""
    found = await db.run_sync(
        fetch_one,
        GuildSettings,
        f"SELECT {_COLUMNS} FROM guild_settings WHERE guild_id = %s",
        (guild_id,),
    )
    return found if found is not None else GuildSettings(guild_id=guild_id)


async def update(
    db: Database, guild_id: int, *, actor_id: int | None = None, **fields: Any
) -> GuildSettings:
    """Set ``fields`` (names from :data:`FIELDS`); audited; return the result.

    Raises:
        SettingsError: an unknown field, or thresholds not in [0, 1] with
            ``review_threshold <= auto_threshold``.
    """
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")

    def work(conn: psycopg.Connection[Any]) -> GuildSettings:
        old = fetch_one(
            conn,
            GuildSettings,
            f"SELECT {_COLUMNS} FROM guild_settings WHERE guild_id = %s FOR UPDATE",
            (guild_id,),
        ) or GuildSettings(guild_id=guild_id)
        new = msgspec.structs.replace(old, **fields)
        _validate(new)
        stored = _upsert(conn, new)
        change = {
            name: [getattr(old, name), getattr(new, name)]
            for name in fields
            if getattr(old, name) != getattr(new, name)
        }
        audit.insert(
            conn,
            audit.AuditEntry(
                table_name="guild_settings",
                operation="update",
                actor_id=actor_id,
                guild_id=guild_id,
                row_id=str(guild_id),
                change=change,
            ),
        )
        return stored

    return await db.run_sync(work)


def _validate(settings: GuildSettings) -> None:
    for name in ("auto_threshold", "review_threshold"):
        value = getattr(settings, name)
        if not 0.0 <= value <= 1.0:
            raise SettingsError(f"{name} must be between 0 and 1")
    if settings.review_threshold > settings.auto_threshold:
        raise SettingsError("review_threshold must not exceed auto_threshold")
    if settings.escalate_after < 0:
        raise SettingsError("escalate_after must not be negative")
    if settings.escalate_window_s <= 0 or settings.escalate_timeout_s <= 0:
        raise SettingsError("escalation durations must be positive")


def _upsert(conn: psycopg.Connection[Any], settings: GuildSettings) -> GuildSettings:
    names = [sql.Identifier(name) for name in FIELDS]
    query = sql.SQL(
        "INSERT INTO guild_settings (guild_id, {cols}) VALUES (%s, {params})"
        " ON CONFLICT (guild_id) DO UPDATE SET {sets}, updated_at = now()"
        " RETURNING {ret}"
    ).format(
        cols=sql.SQL(", ").join(names),
        params=sql.SQL(", ").join(sql.Placeholder() * len(names)),
        sets=sql.SQL(", ").join(
            sql.SQL("{0} = excluded.{0}").format(name) for name in names
        ),
        ret=sql.SQL(_COLUMNS),
    )
    values = [getattr(settings, name) for name in FIELDS]
    with conn.cursor(row_factory=psycopg.rows.kwargs_row(GuildSettings)) as cur:
        cur.execute(query, (settings.guild_id, *values))
        row = cur.fetchone()
    assert row is not None
    return row
