"""REST routes for guilds: members (get, list, modify, timeout, roles, kick),
bans, roles and channels.

Checks follow Discord's "Guild" page and permission rules: each moderation
call needs its permission (KICK_MEMBERS, BAN_MEMBERS, MODERATE_MEMBERS,
MANAGE_ROLES, MANAGE_NICKNAMES) and the bot's top role above the target's
(owner immune); a timeout is at most 28 days ahead and never on an
administrator; ``delete_message_seconds`` is 0-604800.
"""

from __future__ import annotations

from typing import Any, Final

from vsb.sandbox import access, errors, events
from vsb.sandbox.clock import parse_iso
from vsb.sandbox.core import SandboxCore
from vsb.sandbox.errors import form_error
from vsb.sandbox.permissions import Perm, base_permissions, can_manage_role
from vsb.sandbox.rest import Req, RouteSpec, parse_snowflake
from vsb.sandbox.state import Guild, Member

Json = dict[str, Any]

MAX_TIMEOUT: Final = 28 * 24 * 3600.0
MAX_DELETE_SECONDS: Final = 7 * 24 * 3600


async def get_guild(core: SandboxCore, req: Req) -> Json:
    return access.guild(core, req.snowflake("guild_id")).to_json()


async def get_member(core: SandboxCore, req: Req) -> Json:
    guild = access.guild(core, req.snowflake("guild_id"))
    return access.member(guild, req.snowflake("user_id")).to_json(core.state)


async def list_members(core: SandboxCore, req: Req) -> list[Json]:
    guild = access.guild(core, req.snowflake("guild_id"))
    limit = int(req.query.get("limit", "1"))
    after = int(req.query.get("after", "0"))
    if not 1 <= limit <= 1000:
        raise form_error(
            "limit", "NUMBER_TYPE_MAX", "int value should be between 1 and 1000."
        )
    ids = sorted(u for u in guild.members if u > after)[:limit]
    return [guild.members[u].to_json(core.state) for u in ids]


def _timeout_until(core: SandboxCore, value: Any) -> float | None:
    if value is None:
        return None
    try:
        until = parse_iso(str(value)).timestamp()
    except ValueError as exc:
        raise form_error(
            "communication_disabled_until", "DATE_TYPE_CONVERT", "Could not parse date."
        ) from exc
    if until - core.clock.unix() > MAX_TIMEOUT:
        raise form_error(
            "communication_disabled_until",
            "BASE_TYPE_BAD_TIME",
            "Timeout may be at most 28 days in the future.",
        )
    return until


async def modify_member(core: SandboxCore, req: Req) -> Json:
    guild = access.guild(core, req.snowflake("guild_id"))
    target = access.member(guild, req.snowflake("user_id"))
    body = req.body if isinstance(req.body, dict) else {}
    me = access.bot_member(core, guild)
    if "communication_disabled_until" in body:
        _apply_timeout(
            core, req, guild, me, target, body["communication_disabled_until"]
        )
    if "nick" in body:
        _apply_nick(core, req, guild, me, target, body["nick"])
    if "roles" in body:
        _apply_roles(core, req, guild, me, target, body["roles"])
    events.member_update(core, target)
    return target.to_json(core.state)


def _apply_timeout(
    core: SandboxCore, req: Req, guild: Guild, me: Member, target: Member, value: Any
) -> None:
    access.require_guild_perm(core, guild, Perm.MODERATE_MEMBERS)
    access.require_outranks(guild, me, target)
    if base_permissions(guild, target, core.clock.unix()) & Perm.ADMINISTRATOR:
        raise errors.missing_permissions()
    until = _timeout_until(core, value)
    target.communication_disabled_until = until
    core.actions.record(
        "member.timeout",
        reason=req.reason,
        guild_id=guild.id,
        user_id=target.user_id,
        until=until,
        until_iso=None if until is None else core.clock.iso(until),
    )
    change = {
        "key": "communication_disabled_until",
        "new_value": _iso_or_none(core, until),
    }
    events.audit_entry(
        core,
        guild.id,
        events.MEMBER_UPDATE,
        target.user_id,
        req.reason,
        changes=[change],
    )


def _iso_or_none(core: SandboxCore, unix: float | None) -> str | None:
    return None if unix is None else core.clock.iso(unix)


def _apply_nick(
    core: SandboxCore, req: Req, guild: Guild, me: Member, target: Member, nick: Any
) -> None:
    access.require_guild_perm(core, guild, Perm.MANAGE_NICKNAMES)
    access.require_outranks(guild, me, target)
    if nick is not None and (not isinstance(nick, str) or len(nick) > 32):
        raise form_error(
            "nick", "BASE_TYPE_MAX_LENGTH", "Must be 32 or fewer in length."
        )
    target.nick = nick or None
    core.actions.record(
        "member.nick",
        reason=req.reason,
        guild_id=guild.id,
        user_id=target.user_id,
        nick=target.nick,
    )


def _apply_roles(
    core: SandboxCore, req: Req, guild: Guild, me: Member, target: Member, roles: Any
) -> None:
    access.require_guild_perm(core, guild, Perm.MANAGE_ROLES)
    if not isinstance(roles, list):
        raise form_error(
            "roles", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType"
        )
    wanted = [parse_snowflake(r, "roles") for r in roles]
    for role_id in set(wanted) ^ set(target.roles):
        if role_id not in guild.roles:
            raise errors.not_found(errors.UNKNOWN_ROLE, "Role")
        if not can_manage_role(guild, me, role_id):
            raise errors.missing_permissions()
    target.roles = wanted
    core.actions.record(
        "member.roles",
        reason=req.reason,
        guild_id=guild.id,
        user_id=target.user_id,
        roles=wanted,
    )


async def add_role(core: SandboxCore, req: Req) -> None:
    await _change_role(core, req, add=True)


async def remove_role(core: SandboxCore, req: Req) -> None:
    await _change_role(core, req, add=False)


async def _change_role(core: SandboxCore, req: Req, *, add: bool) -> None:
    guild = access.guild(core, req.snowflake("guild_id"))
    target = access.member(guild, req.snowflake("user_id"))
    role_id = req.snowflake("role_id")
    if role_id not in guild.roles:
        raise errors.not_found(errors.UNKNOWN_ROLE, "Role")
    me = access.require_guild_perm(core, guild, Perm.MANAGE_ROLES)
    if not can_manage_role(guild, me, role_id) or guild.roles[role_id].managed:
        raise errors.missing_permissions()
    if add and role_id not in target.roles:
        target.roles.append(role_id)
    elif not add and role_id in target.roles:
        target.roles.remove(role_id)
    core.actions.record(
        "member.role_add" if add else "member.role_remove",
        reason=req.reason,
        guild_id=guild.id,
        user_id=target.user_id,
        role_id=role_id,
    )
    events.member_update(core, target)
    role = guild.roles[role_id]
    change = {
        "key": "$add" if add else "$remove",
        "new_value": [{"id": str(role.id), "name": role.name}],
    }
    events.audit_entry(
        core,
        guild.id,
        events.MEMBER_ROLE_UPDATE,
        target.user_id,
        req.reason,
        changes=[change],
    )


async def kick(core: SandboxCore, req: Req) -> None:
    guild = access.guild(core, req.snowflake("guild_id"))
    target = access.member(guild, req.snowflake("user_id"))
    me = access.require_guild_perm(core, guild, Perm.KICK_MEMBERS)
    access.require_outranks(guild, me, target)
    del guild.members[target.user_id]
    core.actions.record(
        "member.kick", reason=req.reason, guild_id=guild.id, user_id=target.user_id
    )
    events.member_remove(core, guild.id, target.user_id)
    events.audit_entry(core, guild.id, events.MEMBER_KICK, target.user_id, req.reason)


async def ban(core: SandboxCore, req: Req) -> None:
    guild = access.guild(core, req.snowflake("guild_id"))
    user_id = req.snowflake("user_id")
    if user_id not in core.state.users:
        raise errors.not_found(errors.UNKNOWN_USER, "User")
    me = access.require_guild_perm(core, guild, Perm.BAN_MEMBERS)
    target = guild.members.get(user_id)
    if target is not None:
        access.require_outranks(guild, me, target)
    body = req.body if isinstance(req.body, dict) else {}
    seconds = body.get("delete_message_seconds", 0)
    if not isinstance(seconds, int) or not 0 <= seconds <= MAX_DELETE_SECONDS:
        raise form_error(
            "delete_message_seconds",
            "NUMBER_TYPE_MAX",
            "int value should be between 0 and 604800.",
        )
    deleted = _delete_recent(core, guild, user_id, seconds)
    guild.bans[user_id] = req.reason
    core.actions.record(
        "member.ban",
        reason=req.reason,
        guild_id=guild.id,
        user_id=user_id,
        delete_message_seconds=seconds,
        deleted_message_ids=deleted,
    )
    events.ban_event(core, "GUILD_BAN_ADD", guild.id, user_id)
    events.audit_entry(core, guild.id, events.MEMBER_BAN_ADD, user_id, req.reason)
    if target is not None:
        del guild.members[user_id]
        events.member_remove(core, guild.id, user_id)


def _delete_recent(
    core: SandboxCore, guild: Guild, user_id: int, seconds: int
) -> list[int]:
    from vsb.sandbox.clock import snowflake_unix

    cutoff = core.clock.unix() - seconds
    doomed = [
        m
        for m in core.state.messages.values()
        if seconds
        and m.guild_id == guild.id
        and m.author_id == user_id
        and snowflake_unix(m.id) >= cutoff
    ]
    for message in doomed:
        del core.state.messages[message.id]
        events.message_delete(core, message)
    return [m.id for m in doomed]


async def unban(core: SandboxCore, req: Req) -> None:
    guild = access.guild(core, req.snowflake("guild_id"))
    user_id = req.snowflake("user_id")
    access.require_guild_perm(core, guild, Perm.BAN_MEMBERS)
    if user_id not in guild.bans:
        raise errors.not_found(errors.UNKNOWN_BAN, "Ban")
    del guild.bans[user_id]
    core.actions.record(
        "member.unban", reason=req.reason, guild_id=guild.id, user_id=user_id
    )
    events.ban_event(core, "GUILD_BAN_REMOVE", guild.id, user_id)
    events.audit_entry(core, guild.id, events.MEMBER_BAN_REMOVE, user_id, req.reason)


async def get_ban(core: SandboxCore, req: Req) -> Json:
    guild = access.guild(core, req.snowflake("guild_id"))
    access.require_guild_perm(core, guild, Perm.BAN_MEMBERS)
    user_id = req.snowflake("user_id")
    if user_id not in guild.bans:
        raise errors.not_found(errors.UNKNOWN_BAN, "Ban")
    return {"reason": guild.bans[user_id], "user": core.state.users[user_id].to_json()}


async def get_roles(core: SandboxCore, req: Req) -> list[Json]:
    guild = access.guild(core, req.snowflake("guild_id"))
    return [r.to_json() for r in guild.roles.values()]


async def get_channels(core: SandboxCore, req: Req) -> list[Json]:
    guild = access.guild(core, req.snowflake("guild_id"))
    return [c.to_json(core.state) for c in guild.channels.values()]


_G = ("guild_id",)
_MEMBER = "/guilds/{guild_id}/members/{user_id}"
ROUTES = [
    RouteSpec("GET", "/guilds/{guild_id}", get_guild, resource=_G),
    RouteSpec("GET", "/guilds/{guild_id}/members", list_members, resource=_G),
    RouteSpec("GET", _MEMBER, get_member, resource=_G),
    RouteSpec("PATCH", _MEMBER, modify_member, resource=_G),
    RouteSpec("DELETE", _MEMBER, kick, resource=_G),
    RouteSpec("PUT", _MEMBER + "/roles/{role_id}", add_role, resource=_G),
    RouteSpec("DELETE", _MEMBER + "/roles/{role_id}", remove_role, resource=_G),
    RouteSpec("GET", "/guilds/{guild_id}/bans/{user_id}", get_ban, resource=_G),
    RouteSpec("PUT", "/guilds/{guild_id}/bans/{user_id}", ban, resource=_G),
    RouteSpec("DELETE", "/guilds/{guild_id}/bans/{user_id}", unban, resource=_G),
    RouteSpec("GET", "/guilds/{guild_id}/roles", get_roles, resource=_G),
    RouteSpec("GET", "/guilds/{guild_id}/channels", get_channels, resource=_G),
]
