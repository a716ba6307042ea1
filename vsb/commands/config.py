"""``/config``: a guild's moderation settings (MANAGE_GUILD).

Sub-commands: ``show``; ``log_channel channel``; ``verified_role role``;
``thresholds auto review``; ``exempt_role add|remove role``; ``ai enabled``.
Every change goes through :func:`vsb.db.settings.update`, which checks the
values (thresholds in [0, 1], review not above auto) and writes the audit
entry with old and new values in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vsb.cache.permissions import Permissions
from vsb.commands.context import CommandContext
from vsb.commands.errors import CommandError
from vsb.commands.schema import Choice, Command, Option, OptionType, SubCommand
from vsb.db import settings as guild_settings
from vsb.db.settings import GuildSettings, SettingsError

if TYPE_CHECKING:
    from vsb.services.database import Database

_TEXT_CHANNEL = 0


class Config:
    """The ``/config`` command.

    Args:
        db: the database.
        on_change: called with the guild id after its settings changed (the
            moderation service drops its cached copy, so a change applies to
            the next message).
    """

    def __init__(
        self, db: Database, *, on_change: Callable[[int], None] | None = None
    ) -> None:
        self._db = db
        self._on_change = on_change

    def commands(self) -> list[Command]:
        """``/config``, for ``registry.add_all``."""
        subs = (
            SubCommand("show", "Show this server's settings", self.show),
            SubCommand(
                "log_channel",
                "Set the moderation log channel",
                self.log_channel,
                (
                    Option(
                        "channel",
                        "The channel",
                        OptionType.CHANNEL,
                        True,
                        channel_types=(_TEXT_CHANNEL,),
                    ),
                ),
            ),
            SubCommand(
                "verified_role",
                "Set the role verified members get",
                self.verified_role,
                (Option("role", "The role", OptionType.ROLE, True),),
            ),
            SubCommand(
                "thresholds",
                "Set the automatic moderation thresholds (0-1)",
                self.thresholds,
                (
                    Option(
                        "auto",
                        "Act automatically at or above",
                        OptionType.NUMBER,
                        True,
                        min_value=0.0,
                        max_value=1.0,
                    ),
                    Option(
                        "review",
                        "Send to review at or above",
                        OptionType.NUMBER,
                        True,
                        min_value=0.0,
                        max_value=1.0,
                    ),
                ),
            ),
            SubCommand(
                "exempt_role",
                "Exempt a role from automatic moderation, or stop exempting it",
                self.exempt_role,
                (
                    Option(
                        "change",
                        "Add or remove",
                        OptionType.STRING,
                        True,
                        (Choice("add", "add"), Choice("remove", "remove")),
                    ),
                    Option("role", "The role", OptionType.ROLE, True),
                ),
            ),
            SubCommand(
                "ai",
                "Turn AI classification on or off here",
                self.ai,
                (Option("enabled", "On or off", OptionType.BOOLEAN, True),),
            ),
        )
        return [
            Command(
                name="config",
                description="Moderation settings for this server",
                subcommands=subs,
                default_member_permissions=Permissions.MANAGE_GUILD,
                ephemeral=True,
            )
        ]

    async def show(self, ctx: CommandContext) -> None:
        """Show the settings."""
        found = await guild_settings.get(self._db, ctx.guild_id or 0)
        await ctx.respond(embeds=[settings_embed(found)])

    async def log_channel(self, ctx: CommandContext) -> None:
        await self._update(ctx, log_channel_id=ctx.options["channel"].id)

    async def verified_role(self, ctx: CommandContext) -> None:
        await self._update(ctx, verified_role_id=ctx.options["role"].id)

    async def thresholds(self, ctx: CommandContext) -> None:
        auto = float(ctx.options["auto"])
        review = float(ctx.options["review"])
        # The database checks this too; here the refusal names the options the
        # moderator typed instead of the columns.
        if review > auto:
            raise CommandError(
                f"`review` ({review:.2f}) must not exceed `auto` ({auto:.2f}):"
                " messages at or above `auto` are acted on without review."
            )
        await self._update(ctx, auto_threshold=auto, review_threshold=review)

    async def exempt_role(self, ctx: CommandContext) -> None:
        found = await guild_settings.get(self._db, ctx.guild_id or 0)
        role_id = ctx.options["role"].id
        roles = [r for r in found.exempt_role_ids if r != role_id]
        if ctx.options["change"] == "add":
            roles.append(role_id)
        await self._update(ctx, exempt_role_ids=roles)

    async def ai(self, ctx: CommandContext) -> None:
        await self._update(ctx, ai_enabled=bool(ctx.options["enabled"]))

    async def _update(self, ctx: CommandContext, **fields: Any) -> None:
        try:
            updated = await guild_settings.update(
                self._db, ctx.guild_id or 0, actor_id=ctx.user_id, **fields
            )
        except SettingsError as exc:
            raise CommandError(str(exc)) from exc
        if self._on_change is not None:
            self._on_change(updated.guild_id)
        await ctx.respond("Saved.", embeds=[settings_embed(updated)])


def settings_embed(found: GuildSettings) -> dict[str, Any]:
    """The settings as an embed."""
    exempt = " ".join(f"<@&{r}>" for r in found.exempt_role_ids) or "none"
    rows = [
        (
            "Log channel",
            f"<#{found.log_channel_id}>" if found.log_channel_id else "not set",
        ),
        (
            "Verified role",
            f"<@&{found.verified_role_id}>" if found.verified_role_id else "not set",
        ),
        ("Auto threshold", f"{found.auto_threshold:.2f}"),
        ("Review threshold", f"{found.review_threshold:.2f}"),
        ("Exempt roles", exempt),
        ("AI", "on" if found.ai_enabled else "off"),
    ]
    return {
        "title": "Settings",
        "fields": [{"name": n, "value": v, "inline": True} for n, v in rows],
        "color": 0x5865F2,
    }
