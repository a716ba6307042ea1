"""The moderation log: case embeds, and posting them to the log channel.

Every case (from ``/moderate``, the tempban expiry, or automatic moderation)
is posted as an embed to the guild's log channel: the guild setting
``log_channel_id`` when set, else ``ADMIN_LOG_CHANNEL_ID``. A guild with
neither gets no log. A failed post is logged and counted, never raised: the
case is already stored, and the moderator has their answer.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from vsb.db import settings as guild_settings
from vsb.db.cases import Case
from vsb.rest.errors import RestError
from vsb.rest.routes import Endpoints
from vsb.services.database import DatabaseError

if TYPE_CHECKING:
    from vsb.services.database import Database

log = logging.getLogger(__name__)

#: Embed colours per action (Discord takes an RGB integer).
COLOURS: Final = {
    "warn": 0xF1C40F,
    "mute": 0xE67E22,
    "unmute": 0x2ECC71,
    "kick": 0xE74C3C,
    "ban": 0x992D22,
    "softban": 0xC0392B,
    "unban": 0x2ECC71,
    "delete": 0x95A5A6,
}
_PAST: Final = {
    "warn": "warned",
    "mute": "muted",
    "unmute": "unmuted",
    "kick": "kicked",
    "ban": "banned",
    "softban": "softbanned",
    "unban": "unbanned",
    "delete": "message deleted",
}


def past_tense(action: str) -> str:
    """``"ban"`` -> ``"banned"``."""
    return _PAST.get(action, action)


def timestamp(when: datetime, style: str = "f") -> str:
    """Discord's timestamp markup, shown in each reader's time zone."""
    return f"<t:{int(when.timestamp())}:{style}>"


def case_embed(case: Case, *, notes: list[str] | None = None) -> dict[str, Any]:
    """The embed of a case, for the reply and the log channel."""
    fields = [
        {
            "name": "Member",
            "value": f"<@{case.target_id}> ({case.target_id})",
            "inline": True,
        },
        {"name": "Moderator", "value": f"<@{case.moderator_id}>", "inline": True},
        {"name": "Reason", "value": case.reason[:1024] or "(none)", "inline": False},
    ]
    if case.expires_at is not None:
        fields.append(
            {
                "name": "Until",
                "value": f"{timestamp(case.expires_at)} ({timestamp(case.expires_at, 'R')})",
                "inline": True,
            }
        )
    if case.revoked:
        fields.append({"name": "Status", "value": "ended", "inline": True})
    for note in notes or []:
        fields.append({"name": "Note", "value": note[:1024], "inline": False})
    return {
        "title": f"Case #{case.number} · {case.action}",
        "color": COLOURS.get(case.action, 0x5865F2),
        "fields": fields,
        "timestamp": case.created_at.isoformat(),
    }


class ModLog:
    """Posts embeds to each guild's log channel.

    Args:
        rest: the REST client.
        db: for the guild's ``log_channel_id`` setting (None: default only).
        default_channel_id: ``ADMIN_LOG_CHANNEL_ID``.
    """

    def __init__(
        self,
        rest: Endpoints,
        db: Database | None,
        *,
        default_channel_id: int | None = None,
    ) -> None:
        self._rest = rest
        self._db = db
        self._default = default_channel_id
        self.counts: Counter[str] = Counter()

    async def channel_for(self, guild_id: int) -> int | None:
        """The log channel of ``guild_id``, or None."""
        if self._db is not None:
            try:
                found = await guild_settings.get(self._db, guild_id)
            except DatabaseError as exc:
                # The default channel still gets the entry; the log says why.
                log.warning(
                    "commands.modlog_settings_failed",
                    extra={"guild_id": guild_id, "error": type(exc).__name__},
                )
                return self._default
            if found.log_channel_id is not None:
                return found.log_channel_id
        return self._default

    async def post(self, guild_id: int, embed: Mapping[str, Any]) -> bool:
        """Post one embed; False (logged) when there is no channel or it failed."""
        channel_id = await self.channel_for(guild_id)
        if channel_id is None:
            self.counts["no_channel"] += 1
            return False
        try:
            await self._rest.create_message(
                channel_id, embeds=[dict(embed)], allowed_mentions={"parse": []}
            )
        except RestError as exc:
            self.counts["failed"] += 1
            log.warning(
                "commands.modlog_failed",
                extra={"guild_id": guild_id, "error": type(exc).__name__},
            )
            return False
        self.counts["posted"] += 1
        return True

    async def post_case(self, case: Case, *, notes: list[str] | None = None) -> bool:
        """Post a case's embed to its guild's log channel."""
        return await self.post(case.guild_id, case_embed(case, notes=notes))

    def stats(self) -> dict[str, int]:
        return dict(self.counts)
