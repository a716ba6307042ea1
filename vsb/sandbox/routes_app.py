"""REST routes about the application itself: gateway, application, commands,
users and DM channels.
"""

from __future__ import annotations

import re
from typing import Any

from vsb.sandbox import errors
from vsb.sandbox.core import SandboxCore
from vsb.sandbox.errors import ApiError, form_error
from vsb.sandbox.oauth import bearer_user
from vsb.sandbox.rest import Req, RouteSpec, parse_snowflake

Json = dict[str, Any]

# Discord's "Application Command Naming" rule for CHAT_INPUT names (ASCII
# subset; the sandbox does not accept the non-Latin letters Discord allows).
_NAME = re.compile(r"^[-_a-z0-9]{1,32}$")


async def get_gateway(core: SandboxCore, req: Req) -> Json:
    return {"url": core.gateway.url}


async def get_gateway_bot(core: SandboxCore, req: Req) -> Json:
    return {
        "url": core.gateway.url,
        "shards": core.gateway.config.shards,
        "session_start_limit": core.gateway.session_start_limit(),
    }


async def get_application(core: SandboxCore, req: Req) -> Json:
    owner = (
        core.state.default.owner_id if core.state.default else core.state.bot_user.id
    )
    return {
        "id": str(core.identity.application_id),
        "name": core.state.bot_user.username,
        "icon": None,
        "description": "VSB sandbox application",
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": core.identity.public_key,
        "flags": 0,
        "owner": core.state.users[owner].to_json(),
        "team": None,
        "bot": core.state.bot_user.to_json(),
        "redirect_uris": core.identity.redirect_uris or [],
    }


async def get_current_user(core: SandboxCore, req: Req) -> Json:
    if req.auth == "bearer":
        return bearer_user(core, req.bearer or "")
    return core.state.bot_user.to_json()


async def get_user(core: SandboxCore, req: Req) -> Json:
    user = core.state.users.get(req.snowflake("user_id"))
    if user is None:
        raise errors.not_found(errors.UNKNOWN_USER, "User")
    return user.to_json()


async def create_dm(core: SandboxCore, req: Req) -> Json:
    body = req.body if isinstance(req.body, dict) else {}
    if "recipient_id" not in body:
        raise form_error("recipient_id", "BASE_TYPE_REQUIRED", "This field is required")
    user_id = parse_snowflake(body["recipient_id"], "recipient_id")
    if user_id not in core.state.users:
        raise errors.not_found(errors.UNKNOWN_USER, "User")
    channel = core.state.dm_channel(user_id)
    core.actions.record("dm.create", user_id=user_id, channel_id=channel.id)
    return channel.to_json(core.state)


def _check_app(core: SandboxCore, req: Req) -> None:
    if req.snowflake("application_id") != core.identity.application_id:
        raise ApiError(403, errors.MISSING_ACCESS, "Missing Access")


def _validate_command(index: int, cmd: Any) -> None:
    if not isinstance(cmd, dict):
        raise form_error(
            str(index), "DICT_TYPE_CONVERT", "Only dictionaries may be used."
        )
    kind = cmd.get("type", 1)
    name = cmd.get("name")
    if kind not in (1, 2, 3):
        raise form_error(
            f"{index}.type", "BASE_TYPE_CHOICES", "Value must be one of (1, 2, 3)."
        )
    if not isinstance(name, str) or not 1 <= len(name) <= 32:
        raise form_error(
            f"{index}.name",
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 1 and 32 in length.",
        )
    if kind == 1:
        if not _NAME.match(name):
            raise form_error(
                f"{index}.name",
                "APPLICATION_COMMAND_INVALID_NAME",
                "Command name is invalid",
            )
        description = cmd.get("description")
        if not isinstance(description, str) or not 1 <= len(description) <= 100:
            raise form_error(
                f"{index}.description",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )
    elif cmd.get("description"):
        raise form_error(
            f"{index}.description",
            "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
            "Context menu commands cannot have description",
        )
    if len(cmd.get("options") or []) > 25:
        raise form_error(
            f"{index}.options", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
        )


def _overwrite(
    core: SandboxCore, req: Req, old: list[Json], guild_id: int | None
) -> list[Json]:
    if not isinstance(req.body, list):
        raise form_error(
            "_root", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType"
        )
    if len(req.body) > 110:
        raise form_error(
            "_root", "BASE_TYPE_MAX_LENGTH", "Must be 110 or fewer in length."
        )
    seen: set[tuple[int, str]] = set()
    for index, cmd in enumerate(req.body):
        _validate_command(index, cmd)
        key = (cmd.get("type", 1), cmd["name"])
        if key in seen:
            raise ApiError(400, 50041, "Application command names must be unique")
        seen.add(key)
    ids = {(c["type"], c["name"]): c["id"] for c in old}
    result = []
    for cmd in req.body:
        kind = cmd.get("type", 1)
        stored = {
            **cmd,
            "type": kind,
            "id": ids.get((kind, cmd["name"])) or str(core.clock.snowflake()),
            "application_id": str(core.identity.application_id),
            "version": str(core.clock.snowflake()),
            "default_member_permissions": cmd.get("default_member_permissions"),
        }
        if guild_id is not None:
            stored["guild_id"] = str(guild_id)
        result.append(stored)
    core.actions.record(
        "commands.overwrite",
        scope="global" if guild_id is None else "guild",
        guild_id=guild_id,
        names=[c["name"] for c in result],
        commands=result,
    )
    return result


async def put_global_commands(core: SandboxCore, req: Req) -> list[Json]:
    _check_app(core, req)
    core.global_commands = _overwrite(core, req, core.global_commands, None)
    return core.global_commands


async def get_global_commands(core: SandboxCore, req: Req) -> list[Json]:
    _check_app(core, req)
    return core.global_commands


async def put_guild_commands(core: SandboxCore, req: Req) -> list[Json]:
    _check_app(core, req)
    guild_id = req.snowflake("guild_id")
    if guild_id not in core.state.guilds:
        raise errors.not_found(errors.UNKNOWN_GUILD, "Guild")
    old = core.guild_commands.get(guild_id, [])
    core.guild_commands[guild_id] = _overwrite(core, req, old, guild_id)
    return core.guild_commands[guild_id]


async def get_guild_commands(core: SandboxCore, req: Req) -> list[Json]:
    _check_app(core, req)
    return core.guild_commands.get(req.snowflake("guild_id"), [])


ROUTES = [
    RouteSpec("GET", "/gateway", get_gateway, auth="none"),
    RouteSpec("GET", "/gateway/bot", get_gateway_bot),
    RouteSpec("GET", "/applications/@me", get_application),
    RouteSpec("GET", "/users/@me", get_current_user, auth="any"),
    RouteSpec("POST", "/users/@me/channels", create_dm),
    RouteSpec("GET", "/users/{user_id}", get_user),
    RouteSpec("PUT", "/applications/{application_id}/commands", put_global_commands),
    RouteSpec("GET", "/applications/{application_id}/commands", get_global_commands),
    RouteSpec(
        "PUT",
        "/applications/{application_id}/guilds/{guild_id}/commands",
        put_guild_commands,
        resource=("guild_id",),
    ),
    RouteSpec(
        "GET",
        "/applications/{application_id}/guilds/{guild_id}/commands",
        get_guild_commands,
        resource=("guild_id",),
    ),
]
