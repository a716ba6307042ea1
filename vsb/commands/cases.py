"""``/warnings``, ``/case view`` and ``/case reason``: reading and fixing cases.

``/case`` has two sub-commands because Discord does not allow a command to
take both options and sub-commands: ``/case view number`` shows a case,
``/case reason number text`` changes its reason (audited with the old and
new text by :func:`vsb.db.cases.update_reason`, and posted to the mod log).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from vsb.cache.permissions import Permissions
from vsb.commands.context import CommandContext
from vsb.commands.errors import CommandError
from vsb.commands.modlog import ModLog, case_embed, timestamp
from vsb.commands.options import ResolvedUser
from vsb.commands.schema import Command, Option, OptionType, SubCommand
from vsb.db import cases
from vsb.db.cases import Case

if TYPE_CHECKING:
    from vsb.services.database import Database

#: Cases listed by ``/warnings`` (an embed holds 4096 characters).
LIST_LIMIT: Final = 15


class CaseCommands:
    """The case-reading commands.

    Args:
        db: the database.
        modlog: where reason edits are posted.
    """

    def __init__(self, db: Database, modlog: ModLog) -> None:
        self._db = db
        self._modlog = modlog

    def commands(self) -> list[Command]:
        """``/warnings`` and ``/case``, for ``registry.add_all``."""
        number = Option("number", "Case number", OptionType.INTEGER, True, min_value=1)
        return [
            Command(
                name="warnings",
                description="List a member's moderation cases",
                handler=self.warnings,
                options=(Option("user", "Whose cases", OptionType.USER, True),),
                default_member_permissions=Permissions.MODERATE_MEMBERS,
                ephemeral=True,
            ),
            Command(
                name="case",
                description="Show or edit a moderation case",
                subcommands=(
                    SubCommand("view", "Show a case", self.view, (number,)),
                    SubCommand(
                        "reason",
                        "Change a case's reason",
                        self.reason,
                        (
                            number,
                            Option(
                                "text",
                                "The new reason",
                                OptionType.STRING,
                                True,
                                min_length=1,
                                max_length=400,
                            ),
                        ),
                    ),
                ),
                default_member_permissions=Permissions.MODERATE_MEMBERS,
                ephemeral=True,
            ),
        ]

    async def warnings(self, ctx: CommandContext) -> None:
        """List the newest cases of a member."""
        user: ResolvedUser = ctx.options["user"]
        found = await cases.list_for_user(
            self._db, ctx.guild_id or 0, user.id, limit=LIST_LIMIT
        )
        if not found:
            await ctx.respond(f"{user.mention} has no cases.")
            return
        lines = [_line(case) for case in found]
        embed = {
            "title": f"Cases of {user.display}",
            "description": "\n".join(lines)[:4096],
            "footer": {"text": f"newest {len(found)} shown"},
        }
        await ctx.respond(embeds=[embed])

    async def view(self, ctx: CommandContext) -> None:
        """Show one case."""
        case = await self._get(ctx)
        await ctx.respond(embeds=[case_embed(case)])

    async def reason(self, ctx: CommandContext) -> None:
        """Change a case's reason (audited)."""
        case = await self._get(ctx)
        text = str(ctx.options["text"])
        updated = await cases.update_reason(
            self._db, case.guild_id, case.number, text, actor_id=ctx.user_id
        )
        if updated is None:
            raise CommandError(f"Case #{case.number} no longer exists.")
        note = f"Reason changed by <@{ctx.user_id}> (was: {case.reason[:900]})"
        await ctx.respond(embeds=[case_embed(updated, notes=[note])])
        await self._modlog.post_case(updated, notes=[note])

    async def _get(self, ctx: CommandContext) -> Case:
        number = int(ctx.options["number"])
        case = await cases.get_case(self._db, ctx.guild_id or 0, number)
        if case is None:
            raise CommandError(f"There is no case #{number} in this server.")
        return case


def _line(case: Case) -> str:
    status = " (ended)" if case.revoked else ""
    reason = case.reason if len(case.reason) <= 80 else case.reason[:79] + "…"
    when = timestamp(case.created_at, "d")
    return f"**#{case.number}** {case.action}{status} · {when} · {reason}"
