"""Syncing the declared commands to Discord: one bulk overwrite, when changed.

Discord's bulk overwrite (``PUT .../commands``) replaces every command of a
scope in one call, and it counts against a small daily budget of command
creations; so the service compares the schema's hash with the one stored in
the database (``command_sync``) and overwrites only when they differ. The
scope is the guild of ``DISCORD_GUILD_ID`` when set (changes show at once,
handy for development), else global.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from vsb.commands.registry import CommandRegistry
from vsb.db import command_sync
from vsb.rest.routes import Endpoints

if TYPE_CHECKING:
    from vsb.services.database import Database

log = logging.getLogger(__name__)


def sync_scope(guild_id: int | None) -> str:
    """The ``command_sync`` scope name: ``guild:<id>`` or ``global``."""
    return f"guild:{guild_id}" if guild_id is not None else "global"


async def sync_commands(
    registry: CommandRegistry,
    rest: Endpoints,
    db: Database | None,
    *,
    application_id: int,
    guild_id: int | None = None,
) -> bool:
    """Overwrite the scope's commands if the schema changed.

    Args:
        db: where the last hash lives; None syncs every time.
        guild_id: sync to this guild only; None: global commands.

    Returns:
        True when the overwrite was sent, False when skipped as unchanged.

    Raises:
        vsb.rest.errors.RestError: the overwrite failed (nothing stored).
    """
    scope = sync_scope(guild_id)
    digest = registry.schema_hash()
    stored = await command_sync.get_hash(db, scope) if db is not None else None
    if stored == digest:
        log.info("commands.sync_skipped", extra={"scope": scope, "hash": digest[:12]})
        return False

    payload = registry.schema()
    if guild_id is not None:
        await rest.bulk_overwrite_guild_commands(application_id, guild_id, payload)
    else:
        await rest.bulk_overwrite_global_commands(application_id, payload)
    if db is not None:
        await command_sync.set_hash(db, scope, digest)
    log.info(
        "commands.synced",
        extra={"scope": scope, "hash": digest[:12], "count": len(payload)},
    )
    return True
