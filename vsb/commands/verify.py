"""``/verify``: an ephemeral link into the OAuth2 verification flow.

The member runs ``/verify`` in a server; the answer, visible to them only,
holds a link button to ``/oauth/start?state=...``. The state is issued and
its nonce stored by :meth:`vsb.services.auth.VerificationFlow.
verification_link`, so the link works once and for 10 minutes, and only for
this member and this guild. Everything after the click happens on the web
service (:mod:`vsb.services.web`).
"""

from __future__ import annotations

import logging
from typing import Final

from vsb.commands.context import CommandContext
from vsb.commands.schema import Command
from vsb.services.auth import VerificationFlow

log = logging.getLogger(__name__)

#: Discord's limit on a link button's ``url`` (Message Components > Button).
_MAX_BUTTON_URL: Final = 512
_LINK_STYLE: Final = 5
_BUTTON: Final = 2
_ACTION_ROW: Final = 1


def verify_commands(flow: VerificationFlow) -> list[Command]:
    """The ``/verify`` command bound to ``flow``, for ``registry.add_all``."""

    async def handler(ctx: CommandContext) -> None:
        await run_verify(ctx, flow)

    return [
        Command(
            name="verify",
            description="Verify your account to get this server's verified role",
            handler=handler,
            guild_only=True,
            ephemeral=True,
            cooldown=(1, 10.0),
        )
    ]


async def run_verify(ctx: CommandContext, flow: VerificationFlow) -> None:
    """Answer one ``/verify``: a link, or why there is none."""
    guild_id = ctx.guild_id
    if guild_id is None:
        await ctx.respond("Run /verify in a server.", ephemeral=True)
        return
    role_id = await flow.store.verified_role(guild_id)
    if role_id is None:
        await ctx.respond(
            "This server has no verified role set up yet; please tell a moderator.",
            ephemeral=True,
        )
        return
    member = ctx.member
    if member is not None and role_id in member.roles:
        await ctx.respond("You are already verified here.", ephemeral=True)
        return

    link = await flow.verification_link(user_id=ctx.user_id, guild_id=guild_id)
    log.info(
        "web.verify_link_issued", extra={"guild_id": guild_id, "user_id": ctx.user_id}
    )
    text = "Open the link within 10 minutes to verify; it works once."
    if len(link) > _MAX_BUTTON_URL:
        # Known limitation: a very long public URL cannot be a button; the
        # member then gets the link as text, which Discord still makes clickable.
        await ctx.respond(f"{text}\n{link}", ephemeral=True)
        return
    button = {"type": _BUTTON, "style": _LINK_STYLE, "label": "Verify", "url": link}
    await ctx.respond(
        text, components=[{"type": _ACTION_ROW, "components": [button]}], ephemeral=True
    )
