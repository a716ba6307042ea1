"""Lookups and checks shared by the REST routes.

Owns the "find it or answer Discord's 404" helpers and the permission and
hierarchy checks (answering 50001 Missing Access or 50013 Missing
Permissions the way Discord does).
"""

from __future__ import annotations

from vsb.sandbox import errors
from vsb.sandbox.core import SandboxCore
from vsb.sandbox.errors import ApiError
from vsb.sandbox.permissions import (
    Perm,
    base_permissions,
    channel_permissions,
    outranks,
)
from vsb.sandbox.state import Channel, Guild, Member, Message


def guild(core: SandboxCore, guild_id: int) -> Guild:
    found = core.state.guilds.get(guild_id)
    if found is None or core.state.bot_user.id not in found.members:
        raise errors.not_found(errors.UNKNOWN_GUILD, "Guild")
    return found


def channel(core: SandboxCore, channel_id: int) -> Channel:
    found = core.state.channels.get(channel_id)
    if found is None:
        raise errors.not_found(errors.UNKNOWN_CHANNEL, "Channel")
    return found


def member(g: Guild, user_id: int) -> Member:
    found = g.members.get(user_id)
    if found is None:
        raise errors.not_found(errors.UNKNOWN_MEMBER, "Member")
    return found


def message(core: SandboxCore, channel_id: int, message_id: int) -> Message:
    found = core.state.messages.get(message_id)
    if found is None or found.channel_id != channel_id:
        raise errors.not_found(errors.UNKNOWN_MESSAGE, "Message")
    return found


def bot_member(core: SandboxCore, g: Guild) -> Member:
    return g.members[core.state.bot_user.id]


def require_guild_perm(core: SandboxCore, g: Guild, needed: Perm) -> Member:
    """The bot's member, if it has ``needed`` in the guild; else 50013."""
    me = bot_member(core, g)
    if (base_permissions(g, me, core.clock.unix()) & needed) != needed:
        raise errors.missing_permissions()
    return me


def require_channel_perm(core: SandboxCore, ch: Channel, needed: Perm) -> None:
    """Check the bot's permissions in a guild channel (DMs always pass).

    Without VIEW_CHANNEL Discord answers 50001 Missing Access; otherwise a
    missing bit is 50013.
    """
    if ch.guild_id is None:
        return
    g = core.state.guilds[ch.guild_id]
    perms = channel_permissions(g, ch, bot_member(core, g), core.clock.unix())
    if not perms & Perm.VIEW_CHANNEL:
        raise ApiError(403, errors.MISSING_ACCESS, "Missing Access")
    if perms & needed != needed:
        raise errors.missing_permissions()


def require_outranks(g: Guild, actor: Member, target: Member) -> None:
    """Role hierarchy: the actor's top role above the target's (else 50013)."""
    if not outranks(g, actor, target):
        raise errors.missing_permissions()
