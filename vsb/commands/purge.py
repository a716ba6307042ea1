"""``/purge count [user]``: bulk-delete recent messages in a channel.

The messages come from the cache's window of recent messages per channel
(the gateway's MESSAGE_CREATE events), newest first, optionally only one
user's. Deletion goes through
:meth:`vsb.rest.routes.Endpoints.bulk_delete_messages`, which applies
Discord's rules: at most 100 per call, none older than 14 days (those are
left alone and the reply counts them), a lone message deleted singly.
"""

from __future__ import annotations

from typing import Final

from vsb.cache import Cache
from vsb.cache.permissions import Permissions
from vsb.commands.checks import require_bot_permissions
from vsb.commands.context import CommandContext
from vsb.commands.errors import CommandError
from vsb.commands.modlog import ModLog
from vsb.commands.options import ResolvedUser
from vsb.commands.schema import Command, Option, OptionType
from vsb.rest.errors import DiscordHTTPError
from vsb.rest.routes import Endpoints

#: Discord's bulk delete takes 100 messages per call; one command does one call.
MAX_PURGE: Final = 100


class Purge:
    """The ``/purge`` command.

    Args:
        rest: the REST client.
        cache: recent messages per channel.
        modlog: where purges are logged.
    """

    def __init__(self, rest: Endpoints, cache: Cache, modlog: ModLog) -> None:
        self._rest = rest
        self._cache = cache
        self._modlog = modlog

    def commands(self) -> list[Command]:
        """``/purge``, for ``registry.add_all``."""
        return [
            Command(
                name="purge",
                description="Delete recent messages in this channel",
                handler=self.purge,
                options=(
                    Option(
                        "count",
                        "How many messages (1-100)",
                        OptionType.INTEGER,
                        True,
                        min_value=1,
                        max_value=MAX_PURGE,
                    ),
                    Option("user", "Only this user's messages", OptionType.USER),
                ),
                default_member_permissions=Permissions.MANAGE_MESSAGES,
                ephemeral=True,
                cooldown=(1, 5.0),
            )
        ]

    async def purge(self, ctx: CommandContext) -> None:
        """Delete up to ``count`` recent messages."""
        require_bot_permissions(ctx.interaction, Permissions.MANAGE_MESSAGES)
        channel_id = ctx.channel_id or 0
        count = int(ctx.options["count"])
        user: ResolvedUser | None = ctx.options.get("user")
        # Known limitation: only the cache's recent window per channel is seen
        # (no history is fetched); the reply says when fewer were found.
        recent = self._cache.recent_messages(channel_id)
        chosen = [
            m.id for m in reversed(recent) if user is None or m.author.id == user.id
        ][:count]
        if not chosen:
            raise CommandError("I know of no recent messages to delete here.")
        reason = f"purge by {ctx.user_id}"
        try:
            result = await self._rest.bulk_delete_messages(
                channel_id, chosen, reason=reason
            )
        except DiscordHTTPError as exc:
            raise CommandError(
                f"Discord refused the deletion: {exc.message} (code {exc.code})."
            ) from exc
        await ctx.respond(
            _summary(count, len(chosen), len(result.deleted), len(result.too_old))
        )
        await self._modlog.post(
            ctx.guild_id or 0,
            {
                "title": "Purge",
                "description": f"{len(result.deleted)} messages deleted in <#{channel_id}>"
                f" by <@{ctx.user_id}>",
                "color": 0x95A5A6,
            },
        )


def _summary(asked: int, found: int, deleted: int, too_old: int) -> str:
    text = f"Deleted {deleted} message{'s' if deleted != 1 else ''}."
    if too_old:
        text += f" {too_old} older than 14 days were left (Discord does not bulk-delete those)."
    if found < asked:
        text += (
            f" Only {found} recent message was known to me."
            if found == 1
            else f" Only {found} recent messages were known to me."
        )
    return text
