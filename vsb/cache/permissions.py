"""Permission arithmetic and role hierarchy, after Discord's documented rules.

Source: https://discord.com/developers/docs/topics/permissions

This module owns:

- :class:`Permissions`, Discord's permission bits under their documented
  names ("Bitwise Permission Flags").
- :func:`base_permissions`: guild-level permissions of a member
  ("Permission Overwrites", ``compute_base_permissions``): the owner has
  everything; otherwise @everyone's permissions OR each of the member's
  roles; ADMINISTRATOR then grants everything.
- :func:`channel_permissions`: base permissions with a channel's overwrites
  applied in the documented order (``compute_overwrites``): the @everyone
  overwrite (id = guild id), then all role overwrites of the member's roles
  together (deny first, then allow), then the member's own overwrite; then
  the "Implicit Permissions" (no VIEW_CHANNEL means nothing in the channel;
  no SEND_MESSAGES takes the permissions that only make sense when sending).
- Timeouts: a member whose ``communication_disabled_until`` is in the future
  keeps only VIEW_CHANNEL and READ_MESSAGE_HISTORY; the owner and
  administrators are exempt (guild member object, "communication_disabled_
  until", and the timeout notes of the permissions page).
- Hierarchy ("Permission Hierarchy"): :func:`can_moderate` and
  :func:`can_assign_role`. A member's rank is their highest role; roles at
  the same position are ordered by id, the older (lower id) role ranking
  higher, as Discord sorts them.

All functions are pure: they read a :class:`GuildView` (the cache's guild
view satisfies it) and never perform I/O.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Protocol

from vsb.models import Channel, Member, Overwrite, Role

__all__ = [
    "ALL_PERMISSIONS",
    "GuildView",
    "Permissions",
    "apply_overwrites",
    "base_permissions",
    "can_assign_role",
    "can_moderate",
    "channel_permissions",
    "is_timed_out",
    "member_rank",
]


class Permissions(enum.IntFlag):
    """Discord's permission bits, named as in "Bitwise Permission Flags"."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    PRIORITY_SPEAKER = 1 << 8
    STREAM = 1 << 9
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    VIEW_GUILD_INSIGHTS = 1 << 19
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    MUTE_MEMBERS = 1 << 22
    DEAFEN_MEMBERS = 1 << 23
    MOVE_MEMBERS = 1 << 24
    USE_VAD = 1 << 25
    CHANGE_NICKNAME = 1 << 26
    MANAGE_NICKNAMES = 1 << 27
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    MANAGE_GUILD_EXPRESSIONS = 1 << 30
    USE_APPLICATION_COMMANDS = 1 << 31
    REQUEST_TO_SPEAK = 1 << 32
    MANAGE_EVENTS = 1 << 33
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    USE_EXTERNAL_STICKERS = 1 << 37
    SEND_MESSAGES_IN_THREADS = 1 << 38
    USE_EMBEDDED_ACTIVITIES = 1 << 39
    MODERATE_MEMBERS = 1 << 40
    VIEW_CREATOR_MONETIZATION_ANALYTICS = 1 << 41
    USE_SOUNDBOARD = 1 << 42
    CREATE_GUILD_EXPRESSIONS = 1 << 43
    CREATE_EVENTS = 1 << 44
    USE_EXTERNAL_SOUNDS = 1 << 45
    SEND_VOICE_MESSAGES = 1 << 46
    SEND_POLLS = 1 << 49
    USE_EXTERNAL_APPS = 1 << 50
    PIN_MESSAGES = 1 << 51


#: Every known permission: what the owner and administrators hold.
ALL_PERMISSIONS = Permissions(sum(p.value for p in Permissions))
_NONE = Permissions(0)

# What a timed-out member keeps (guild member object docs,
# "communication_disabled_until"; permissions page, timeouts).
_TIMEOUT_KEEPS = Permissions.VIEW_CHANNEL | Permissions.READ_MESSAGE_HISTORY

# "Implicit Permissions": without SEND_MESSAGES these go too.
_NEEDS_SEND = (
    Permissions.MENTION_EVERYONE
    | Permissions.SEND_TTS_MESSAGES
    | Permissions.ATTACH_FILES
    | Permissions.EMBED_LINKS
)

# Thread channel types (https://discord.com/developers/docs/resources/channel
# #channel-object-channel-types): threads take their parent's overwrites.
_THREAD_TYPES = frozenset({10, 11, 12})


class GuildView(Protocol):
    """What the permission functions read from a guild."""

    @property
    def id(self) -> int: ...

    @property
    def owner_id(self) -> int: ...

    @property
    def roles(self) -> Mapping[int, Role]: ...

    def member(self, user_id: int) -> Member | None: ...


def is_timed_out(member: Member, now: dt.datetime | None = None) -> bool:
    """Whether ``member`` is in a timeout at ``now`` (default: the current time)."""
    until = member.communication_disabled_until
    if until is None:
        return False
    return until > (now or dt.datetime.now(dt.UTC))


def _guild_level(guild: GuildView, member: Member) -> Permissions:
    """``compute_base_permissions`` from the docs, without timeouts."""
    if member.user.id == guild.owner_id:
        return ALL_PERMISSIONS

    roles = guild.roles
    everyone = roles.get(guild.id)
    value = everyone.permissions if everyone is not None else 0
    for role_id in member.roles:
        role = roles.get(role_id)
        if role is not None:
            value |= role.permissions

    if value & Permissions.ADMINISTRATOR:
        return ALL_PERMISSIONS
    return Permissions(value)


def _limit_for_timeout(
    permissions: Permissions, member: Member, now: dt.datetime | None
) -> Permissions:
    # Owner and administrators are exempt from timeouts: their ALL stays.
    if permissions == ALL_PERMISSIONS or not is_timed_out(member, now):
        return permissions
    return permissions & _TIMEOUT_KEEPS


def base_permissions(
    guild: GuildView, member: Member, *, now: dt.datetime | None = None
) -> Permissions:
    """Guild-level permissions of ``member``, timeouts included.

    Args:
        guild: the member's guild.
        member: the member.
        now: the time to judge a timeout against; default the current time.
    """
    return _limit_for_timeout(_guild_level(guild, member), member, now)


def apply_overwrites(
    base: Permissions,
    member: Member,
    overwrites: tuple[Overwrite, ...],
    guild_id: int,
) -> Permissions:
    """``compute_overwrites`` from the docs: @everyone, roles, then member.

    Role overwrites are folded together first, so that an allow on one role
    wins over a deny on another, as Discord documents.
    """
    if base & Permissions.ADMINISTRATOR:
        return ALL_PERMISSIONS

    by_id = {overwrite.id: overwrite for overwrite in overwrites}
    value = int(base)

    everyone = by_id.get(guild_id)
    if everyone is not None:
        value = (value & ~everyone.deny) | everyone.allow

    allow = deny = 0
    for role_id in member.roles:
        overwrite = by_id.get(role_id)
        if overwrite is not None and overwrite.type == 0:
            allow |= overwrite.allow
            deny |= overwrite.deny
    value = (value & ~deny) | allow

    own = by_id.get(member.user.id)
    if own is not None and own.type == 1:
        value = (value & ~own.deny) | own.allow
    return Permissions(value)


def channel_permissions(
    guild: GuildView,
    member: Member,
    channel: Channel,
    *,
    parent: Channel | None = None,
    now: dt.datetime | None = None,
) -> Permissions:
    """Permissions of ``member`` in ``channel``.

    Args:
        guild: the channel's guild.
        member: the member.
        channel: the channel. For a thread, pass its parent as ``parent``:
            threads have no overwrites of their own and follow the parent's.
        parent: the parent channel of a thread.
        now: the time to judge a timeout against; default the current time.
    """
    permissions = _guild_level(guild, member)
    if permissions == ALL_PERMISSIONS:
        return permissions

    source = parent if channel.type in _THREAD_TYPES and parent else channel
    permissions = apply_overwrites(
        permissions, member, source.permission_overwrites, guild.id
    )
    if permissions == ALL_PERMISSIONS:
        return permissions

    # "Implicit Permissions": a channel one cannot see grants nothing, and one
    # cannot mention, embed or attach where one cannot send.
    if not permissions & Permissions.VIEW_CHANNEL:
        return _NONE
    if not permissions & Permissions.SEND_MESSAGES:
        permissions &= ~_NEEDS_SEND

    return _limit_for_timeout(permissions, member, now)


def _role_rank(role: Role) -> tuple[int, int]:
    # Same position: the older role (lower id) ranks higher, hence -id.
    return (role.position, -role.id)


def member_rank(guild: GuildView, member: Member) -> tuple[int, int]:
    """Rank of ``member``'s highest role; members without roles rank as @everyone.

    Ranks compare with ``<``/``>``; equal ranks mean the same top role.
    """
    roles = guild.roles
    best = (0, -guild.id)
    for role_id in member.roles:
        role = roles.get(role_id)
        if role is not None:
            rank = _role_rank(role)
            if rank > best:
                best = rank
    return best


def can_moderate(guild: GuildView, actor_id: int, target_id: int) -> bool:
    """Whether the hierarchy lets ``actor_id`` kick, ban or time out ``target_id``.

    Discord's rule ("Permission Hierarchy"): the owner can act on anyone and
    no one can act on the owner; otherwise the actor's highest role must be
    strictly above the target's. Nobody moderates themselves. Call it for the
    moderator and again for the bot's own user id.

    This checks the hierarchy only, not the permission bit itself. Members are
    looked up with ``guild.member``: an actor or target that is not cached
    gives False, so fetch it first. A user who is not a member at all (ban by
    id) has no rank; Discord applies no hierarchy there, so skip this check.
    """
    if actor_id == target_id or target_id == guild.owner_id:
        return False
    if actor_id == guild.owner_id:
        return True

    actor = guild.member(actor_id)
    target = guild.member(target_id)
    if actor is None or target is None:
        return False
    return member_rank(guild, actor) > member_rank(guild, target)


def can_assign_role(
    guild: GuildView, actor_id: int, role_id: int, *, now: dt.datetime | None = None
) -> bool:
    """Whether ``actor_id`` (a moderator or the bot) can give or take ``role_id``.

    Needs MANAGE_ROLES (ADMINISTRATOR implies it) and the role strictly below
    the actor's highest role; the owner may assign any role. Nobody assigns
    @everyone or a managed role (bot and integration roles, boosters).
    """
    role = guild.roles.get(role_id)
    if role is None or role.id == guild.id or role.managed:
        return False
    if actor_id == guild.owner_id:
        return True

    actor = guild.member(actor_id)
    if actor is None:
        return False
    if not base_permissions(guild, actor, now=now) & Permissions.MANAGE_ROLES:
        return False
    return _role_rank(role) < member_rank(guild, actor)
