"""Discord's permission arithmetic, as the sandbox enforces it.

Owns the permission bits the sandbox checks, the base and channel permission
computation (Discord's "Permissions" topic: @everyone, then roles, then
channel overwrites in the order everyone, roles, member), the timeout rule
(a timed-out member keeps only VIEW_CHANNEL and READ_MESSAGE_HISTORY) and the
role hierarchy rules moderation endpoints apply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsb.cache.permissions import Permissions

#: The sandbox checks the same permission bits the bot computes with.
Perm = Permissions

if TYPE_CHECKING:
    from vsb.sandbox.state import Channel, Guild, Member


ALL = Perm(sum(p.value for p in Perm))
DEFAULT_EVERYONE = (
    Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.ADD_REACTIONS
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.USE_APPLICATION_COMMANDS
    | Perm.CHANGE_NICKNAME
)
_TIMED_OUT_KEEPS = Perm.VIEW_CHANNEL | Perm.READ_MESSAGE_HISTORY


def base_permissions(guild: Guild, member: Member, now_unix: float) -> Perm:
    """Guild-level permissions of a member (no channel overwrites)."""
    if member.user_id == guild.owner_id:
        return ALL
    perms = Perm(guild.roles[guild.id].permissions)
    for role_id in member.roles:
        role = guild.roles.get(role_id)
        if role is not None:
            perms |= Perm(role.permissions)
    if perms & Perm.ADMINISTRATOR:
        return ALL
    if member.timed_out(now_unix):
        perms &= _TIMED_OUT_KEEPS
    return perms


def channel_permissions(
    guild: Guild, channel: Channel, member: Member, now_unix: float
) -> Perm:
    """Permissions of a member in one channel, overwrites applied."""
    perms = base_permissions(guild, member, now_unix)
    if perms & Perm.ADMINISTRATOR:
        return ALL
    overwrites = {ow["id"]: ow for ow in channel.overwrites}
    everyone = overwrites.get(guild.id)
    if everyone is not None:
        perms = _apply(perms, everyone)
    allow = deny = 0
    for role_id in member.roles:
        ow = overwrites.get(role_id)
        if ow is not None and ow.get("type", 0) == 0:
            allow |= int(ow["allow"])
            deny |= int(ow["deny"])
    perms = Perm((perms & ~deny) | allow)
    own = overwrites.get(member.user_id)
    if own is not None:
        perms = _apply(perms, own)
    if member.timed_out(now_unix):
        perms &= _TIMED_OUT_KEEPS
    return perms


def _apply(perms: Perm, overwrite: dict[str, int]) -> Perm:
    return Perm((perms & ~int(overwrite["deny"])) | int(overwrite["allow"]))


def top_position(guild: Guild, member: Member) -> int:
    """Position of the member's highest role (@everyone is 0)."""
    positions = [guild.roles[r].position for r in member.roles if r in guild.roles]
    return max(positions, default=0)


def outranks(guild: Guild, actor: Member, target: Member) -> bool:
    """True when ``actor`` may moderate ``target`` by Discord's hierarchy.

    The owner outranks everyone and nobody outranks the owner; otherwise the
    actor's highest role must sit strictly above the target's.
    """
    if target.user_id == guild.owner_id:
        return False
    if actor.user_id == guild.owner_id:
        return True
    return top_position(guild, actor) > top_position(guild, target)


def can_manage_role(guild: Guild, actor: Member, role_id: int) -> bool:
    """True when ``actor`` may add or remove the role (below its top role)."""
    if actor.user_id == guild.owner_id:
        return True
    role = guild.roles.get(role_id)
    return role is not None and role.position < top_position(guild, actor)
