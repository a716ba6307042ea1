"""``/moderate``: warn, mute, unmute, kick, ban, unban, softban.

Each action, in order:

1. the moderator's permission for it (MODERATE_MEMBERS, KICK_MEMBERS or
   BAN_MEMBERS, from the interaction's ``member.permissions``) and the bot's
   (``app_permissions``);
2. the role hierarchy for the moderator and for the bot
   (:func:`vsb.cache.permissions.can_moderate`: nobody moderates themselves
   or the owner; the actor's highest role must be strictly above the
   target's). A user who is not a member (ban by id, unban) has no rank, as
   on Discord;
3. a DM to the member where possible (before a kick or ban, after which the
   bot shares no server with them); a closed DM is noted, not an error;
4. the Discord call, with the reason in the audit log
   (``X-Audit-Log-Reason``, prefixed with the moderator's name since the
   audit log shows the bot as the actor);
5. the case and its audit entry in one transaction
   (:func:`vsb.db.cases.create_case`); only then the reply with the case
   embed, and the case posted to the mod log.

Mutes are Discord timeouts, at most 28 days (longer requests are capped and
the reply says so). A ban with a duration is temporary: the case's
``expires_at`` drives :class:`vsb.commands.expiry.ExpiryScheduler`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from vsb.cache import Cache, CachedGuild
from vsb.cache.permissions import Permissions, can_moderate
from vsb.commands.checks import require_bot_permissions, require_member_permissions
from vsb.commands.context import CommandContext
from vsb.commands.errors import CommandError
from vsb.commands.modlog import ModLog, case_embed, past_tense
from vsb.commands.options import ResolvedUser, format_duration, parse_duration
from vsb.commands.schema import Choice, Command, Option, OptionType
from vsb.db import cases
from vsb.db.cases import Case
from vsb.models import Member
from vsb.rest.errors import DiscordHTTPError, NotFound, RestError, ValidationError
from vsb.rest.routes import Endpoints
from vsb.services.database import DatabaseError

if TYPE_CHECKING:
    from vsb.services.database import Database

log = logging.getLogger(__name__)

ACTIONS: Final = ("warn", "mute", "unmute", "kick", "ban", "unban", "softban")
NEEDS: Final = {
    "warn": Permissions.MODERATE_MEMBERS,
    "mute": Permissions.MODERATE_MEMBERS,
    "unmute": Permissions.MODERATE_MEMBERS,
    "kick": Permissions.KICK_MEMBERS,
    "ban": Permissions.BAN_MEMBERS,
    "unban": Permissions.BAN_MEMBERS,
    "softban": Permissions.BAN_MEMBERS,
}
#: Discord's longest timeout (Guild > Modify Guild Member).
MAX_TIMEOUT: Final = timedelta(days=28)
#: A softban removes a day of messages unless told otherwise.
SOFTBAN_DELETE_DAYS: Final = 1
_MEMBER_ONLY: Final = frozenset({"warn", "mute", "unmute", "kick"})
_DM_BEFORE: Final = frozenset({"kick", "ban", "softban"})


@dataclass
class _Plan:
    """One moderation request, checked and ready to carry out."""

    action: str
    target: ResolvedUser
    reason: str
    is_member: bool
    duration: timedelta | None = None
    delete_days: int = 0
    notes: list[str] = field(default_factory=list)


class Moderation:
    """The ``/moderate`` command.

    Args:
        rest: the REST client.
        db: the database (cases).
        cache: the guild cache (hierarchy, members, the bot's own user).
        modlog: where cases are posted.
        on_expiring_case: called after a case with ``expires_at`` is stored
            (the expiry scheduler's ``wake``).
        wall_clock: Unix seconds (the sandbox's clock in tests).
    """

    def __init__(
        self,
        rest: Endpoints,
        db: Database,
        cache: Cache,
        modlog: ModLog,
        *,
        on_expiring_case: Callable[[], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._rest = rest
        self._db = db
        self._cache = cache
        self._modlog = modlog
        self._on_expiring_case = on_expiring_case
        self._wall_clock = wall_clock

    def commands(self) -> list[Command]:
        """``/moderate``, for ``registry.add_all``."""
        choices = tuple(Choice(a.title(), a) for a in ACTIONS)
        return [
            Command(
                name="moderate",
                description="Warn, mute, kick or ban a member",
                handler=self.moderate,
                options=(
                    Option("action", "What to do", OptionType.STRING, True, choices),
                    Option("target", "The member or user", OptionType.USER, True),
                    Option(
                        "reason",
                        "Why (shown in the audit log and the case)",
                        OptionType.STRING,
                        True,
                        min_length=1,
                        max_length=400,
                    ),
                    Option(
                        "duration",
                        "mute: how long (10m, 2h, 7d; max 28d); ban: until unbanned",
                        OptionType.STRING,
                        max_length=20,
                    ),
                    Option(
                        "delete_messages",
                        "ban/softban: days of their messages to delete (0-7)",
                        OptionType.INTEGER,
                        min_value=0,
                        max_value=7,
                    ),
                ),
                default_member_permissions=Permissions.MODERATE_MEMBERS,
                required_permissions=Permissions(0),  # checked per action
                ephemeral=True,
            )
        ]

    async def moderate(self, ctx: CommandContext) -> None:
        """Handle one ``/moderate``."""
        plan = await self._plan(ctx)
        dm_first = plan.action in _DM_BEFORE and plan.is_member
        if dm_first:
            await self._notify(ctx, plan)
        await self._act(ctx, plan)
        if plan.action in ("warn", "mute"):
            await self._notify(ctx, plan)
        try:
            case = await self._record(ctx, plan)
        except DatabaseError as exc:
            raise self._not_recorded(ctx, plan, exc) from exc
        await ctx.respond(embeds=[case_embed(case, notes=plan.notes)])
        await self._modlog.post_case(case, notes=plan.notes)

    # -- 1, 2: checks ---------------------------------------------------------------

    async def _plan(self, ctx: CommandContext) -> _Plan:
        action = str(ctx.options["action"])
        target: ResolvedUser = ctx.options["target"]
        guild_id = ctx.guild_id
        assert guild_id is not None, "guild-only command"
        require_member_permissions(ctx.interaction, NEEDS[action])
        require_bot_permissions(ctx.interaction, NEEDS[action])
        if target.id == ctx.user_id:
            raise CommandError("You cannot moderate yourself.")

        guild = self._cache.guild(guild_id)
        if guild is None or not guild.available:
            raise CommandError("I have not loaded this server yet; try again shortly.")
        member = None
        if action != "unban":
            member = await self._cache.get_member(guild_id, target.id)
        if member is None and action in _MEMBER_ONLY:
            raise CommandError(f"{target.mention} is not a member of this server.")
        if member is not None:
            self._check_hierarchy(guild, ctx.user_id, target)
        if (
            action == "unmute"
            and member is not None
            and not self._muted(target, member)
        ):
            raise CommandError(f"{target.mention} is not muted.")

        plan = _Plan(action, target, str(ctx.options["reason"]), member is not None)
        self._plan_duration(plan, ctx.options.get("duration"))
        self._plan_deletion(plan, ctx.options.get("delete_messages"))
        return plan

    def _check_hierarchy(
        self, guild: CachedGuild, moderator_id: int, target: ResolvedUser
    ) -> None:
        if target.id == guild.owner_id:
            raise CommandError("The server owner cannot be moderated.")
        if not can_moderate(guild, moderator_id, target.id):
            raise CommandError(
                f"You can only moderate members whose highest role is below yours;"
                f" {target.mention}'s is not."
            )
        bot = self._cache.user
        if bot is None or not can_moderate(guild, bot.id, target.id):
            raise CommandError(
                f"My highest role is not above {target.mention}'s, so Discord will"
                " not let me do that. Move my role higher first."
            )

    def _muted(self, target: ResolvedUser, member: Member) -> bool:
        """Whether a timeout is in force (a past end means none)."""
        # The interaction's resolved member is Discord's view when the command
        # was used; the cached copy may have missed a GUILD_MEMBER_UPDATE.
        found = target.member if target.member is not None else member
        until = found.communication_disabled_until
        return until is not None and until > self._now()

    def _plan_duration(self, plan: _Plan, text: Any) -> None:
        if text is None:
            if plan.action == "mute":
                raise CommandError("A mute needs a `duration`, like 10m, 2h or 7d.")
            return
        if plan.action not in ("mute", "ban"):
            raise CommandError("`duration` applies to mute and ban only.")
        duration = parse_duration(str(text))
        if plan.action == "mute" and duration > MAX_TIMEOUT:
            plan.notes.append(
                f"Asked for {format_duration(duration)}; Discord timeouts last at"
                " most 28 days, so this one does."
            )
            duration = MAX_TIMEOUT
        plan.duration = duration

    def _plan_deletion(self, plan: _Plan, days: Any) -> None:
        if days is not None and plan.action not in ("ban", "softban"):
            raise CommandError("`delete_messages` applies to ban and softban only.")
        default = SOFTBAN_DELETE_DAYS if plan.action == "softban" else 0
        plan.delete_days = int(days) if days is not None else default

    # -- 3, 4: Discord -------------------------------------------------------------

    async def _notify(self, ctx: CommandContext, plan: _Plan) -> None:
        guild = self._cache.guild(ctx.guild_id or 0)
        name = guild.info.name if guild is not None and guild.info else "the server"
        text = (
            f"You were {past_tense(plan.action)} in **{name}**.\nReason: {plan.reason}"
        )
        if plan.duration is not None:
            text += f"\nDuration: {format_duration(plan.duration)}"
        try:
            channel = await self._rest.create_dm(plan.target.id)
            await self._rest.create_message(int(channel["id"]), content=text[:2000])
        except RestError as exc:
            code = exc.code if isinstance(exc, DiscordHTTPError) else 0
            log.info(
                "commands.dm_failed",
                extra={"user_id": plan.target.id, "error": f"code {code}"},
            )
            plan.notes.append("The member could not be sent a DM (DMs closed?).")
            return
        plan.notes.append("The member was told by DM.")

    async def _act(self, ctx: CommandContext, plan: _Plan) -> None:
        guild_id = ctx.guild_id or 0
        user_id = plan.target.id
        mod = ctx.member.user.username if ctx.member is not None else str(ctx.user_id)
        reason = f"{mod}: {plan.reason}"
        rest = self._rest
        try:
            if plan.action == "mute":
                assert plan.duration is not None
                until = self._now() + plan.duration
                await rest.timeout_member(guild_id, user_id, until, reason=reason)
            elif plan.action == "unmute":
                await rest.timeout_member(guild_id, user_id, None, reason=reason)
            elif plan.action == "kick":
                await rest.kick_member(guild_id, user_id, reason=reason)
            elif plan.action in ("ban", "softban"):
                seconds = plan.delete_days * 86_400
                await rest.ban_member(guild_id, user_id, seconds, reason=reason)
                if plan.action == "softban":
                    await rest.unban_member(guild_id, user_id, reason=reason)
            elif plan.action == "unban":
                await rest.unban_member(guild_id, user_id, reason=reason)
        except NotFound as exc:
            if plan.action == "unban":
                raise CommandError(f"{plan.target.mention} is not banned.") from exc
            raise CommandError(f"Discord does not know {plan.target.mention}.") from exc
        except ValidationError as exc:
            raise CommandError(str(exc)) from exc
        except DiscordHTTPError as exc:
            raise CommandError(
                f"Discord refused to {plan.action} {plan.target.mention}:"
                f" {exc.message} (code {exc.code})."
            ) from exc

    # -- 5: the case -----------------------------------------------------------------

    async def _record(self, ctx: CommandContext, plan: _Plan) -> Case:
        guild_id = ctx.guild_id or 0
        expires_at = None
        if plan.duration is not None:
            expires_at = self._now() + plan.duration
        if plan.action in ("unmute", "unban"):
            await self._end_open_cases(guild_id, plan, ctx.user_id)
        case = await cases.create_case(
            self._db,
            guild_id=guild_id,
            action=plan.action,
            target_id=plan.target.id,
            moderator_id=ctx.user_id,
            reason=plan.reason,
            expires_at=expires_at,
            duration_s=int(plan.duration.total_seconds()) if plan.duration else None,
        )
        log.info(
            "commands.case_created",
            extra={
                "guild_id": guild_id,
                "user_id": plan.target.id,
                "case": case.number,
            },
        )
        if expires_at is not None and self._on_expiring_case is not None:
            self._on_expiring_case()
        return case

    async def _end_open_cases(self, guild_id: int, plan: _Plan, actor_id: int) -> None:
        """An unmute or unban ends the member's live mute or ban cases."""
        ended = ["mute"] if plan.action == "unmute" else ["ban"]
        found = await cases.list_for_user(
            self._db, guild_id, plan.target.id, limit=100, actions=ended
        )
        for case in found:
            if not case.revoked:
                await cases.revoke(self._db, guild_id, case.number, actor_id=actor_id)

    def _not_recorded(
        self, ctx: CommandContext, plan: _Plan, exc: DatabaseError
    ) -> CommandError:
        """The action happened on Discord but its case could not be stored."""
        error_id = secrets.token_hex(4)
        log.error(
            "commands.case_not_saved",
            extra={
                "error_id": error_id,
                "guild_id": ctx.guild_id,
                "user_id": plan.target.id,
                "action": plan.action,
                "error": type(exc).__name__,
            },
        )
        return CommandError(
            f"The {plan.action} of {plan.target.mention} was done on Discord, but"
            f" its case could not be saved (error id `{error_id}`)."
        )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._wall_clock(), UTC)
