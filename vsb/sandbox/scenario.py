"""Scenario traffic: what members and moderators do, as the bot would see it.

Owns the functions behind ``sb.post_message``, ``sb.edit_message``,
``sb.member_join``, ``sb.run_command`` and ``sb.press_button``: each changes
the state like Discord would and dispatches the matching gateway event.
Interactions get a fresh id and token; their 3-second and 15-minute clocks
start when they are dispatched.
"""

from __future__ import annotations

from typing import Any

from vsb.sandbox import events
from vsb.sandbox.core import SandboxCore, new_token
from vsb.sandbox.interactions import Interaction, InteractionType
from vsb.sandbox.permissions import base_permissions, channel_permissions
from vsb.sandbox.state import Member, Message

Json = dict[str, Any]

# Application command types (Discord's "Application Command Types").
CHAT_INPUT, USER, MESSAGE = 1, 2, 3
# Option types (Discord's "Application Command Option Type").
_OPTION_TYPES = {str: 3, bool: 5, int: 4, float: 10}


def post_message(
    core: SandboxCore,
    content: str,
    *,
    channel_id: int,
    author_id: int,
    mentions: list[int] | None = None,
    embeds: list[Json] | None = None,
) -> Message:
    message = core.state.add_message(
        channel_id,
        author_id,
        content,
        mentions=list(mentions or []),
        embeds=list(embeds or []),
    )
    core.actions.record(
        "scenario.message",
        message_id=message.id,
        channel_id=channel_id,
        author_id=author_id,
    )
    events.message_event(core, "MESSAGE_CREATE", message)
    return message


def edit_message(core: SandboxCore, message_id: int, content: str) -> Message:
    message = core.state.messages[message_id]
    message.content = content
    message.edited_at = core.clock.unix()
    core.actions.record("scenario.message_edit", message_id=message_id)
    events.message_event(core, "MESSAGE_UPDATE", message)
    return message


def member_join(core: SandboxCore, guild_id: int, username: str) -> Member:
    user = core.state.add_user(username)
    member = core.state.add_member(guild_id, user.id)
    core.actions.record("scenario.member_join", guild_id=guild_id, user_id=user.id)
    events.member_add(core, member)
    return member


def _member_json(
    core: SandboxCore, guild_id: int, channel_id: int, user_id: int
) -> Json:
    guild = core.state.guilds[guild_id]
    member = guild.members[user_id]
    channel = core.state.channels[channel_id]
    data = member.to_json(core.state)
    data["permissions"] = str(
        int(channel_permissions(guild, channel, member, core.clock.unix()))
    )
    return data


def _options(
    options: dict[str, Any] | None, core: SandboxCore, guild_id: int
) -> list[Json]:
    """Turn ``{"name": value}`` into Discord option objects.

    Ints that name a known user become USER options (type 6) so a test can
    pass ``{"target": member_id}``; pass an explicit option dict
    (``{"type": .., "value": ..}``) to choose the type yourself.
    """
    result = []
    for name, value in (options or {}).items():
        if isinstance(value, dict):
            result.append({"name": name, **value})
            continue
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and value in core.state.users
        ):
            result.append({"name": name, "type": 6, "value": str(value)})
            continue
        result.append(
            {"name": name, "type": _OPTION_TYPES.get(type(value), 3), "value": value}
        )
    return result


def _resolved(
    core: SandboxCore, guild_id: int, user_ids: list[int], message_ids: list[int]
) -> Json:
    guild = core.state.guilds[guild_id]
    resolved: Json = {}
    if user_ids:
        resolved["users"] = {str(u): core.state.users[u].to_json() for u in user_ids}
        members = {
            str(u): guild.members[u].to_json(core.state, with_user=False)
            for u in user_ids
            if u in guild.members
        }
        if members:
            resolved["members"] = members
    if message_ids:
        resolved["messages"] = {
            str(m): core.state.messages[m].to_json(core.state) for m in message_ids
        }
    return resolved


def _command_id(core: SandboxCore, guild_id: int, name: str, kind: int) -> str:
    for cmd in [*core.guild_commands.get(guild_id, []), *core.global_commands]:
        if cmd["name"] == name and cmd.get("type", 1) == kind:
            return str(cmd["id"])
    return str(core.clock.snowflake())


def _base_payload(
    core: SandboxCore, kind: int, *, guild_id: int, channel_id: int, user_id: int
) -> Interaction:
    guild = core.state.guilds[guild_id]
    bot = guild.members[core.state.bot_user.id]
    interaction_id = core.clock.snowflake()
    token = new_token()
    payload: Json = {
        "id": str(interaction_id),
        "application_id": str(core.identity.application_id),
        "type": kind,
        "guild_id": str(guild_id),
        "channel_id": str(channel_id),
        "channel": core.state.channels[channel_id].to_json(core.state),
        "member": _member_json(core, guild_id, channel_id, user_id),
        "token": token,
        "version": 1,
        "app_permissions": str(int(base_permissions(guild, bot, core.clock.unix()))),
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(guild_id)},
        "context": 0,
        "attachment_size_limit": 10_485_760,
    }
    return Interaction(
        id=interaction_id,
        token=token,
        type=kind,
        application_id=core.identity.application_id,
        guild_id=guild_id,
        channel_id=channel_id,
        user_id=user_id,
        payload=payload,
        created_at=core.clock.monotonic(),
    )


def run_command(
    core: SandboxCore,
    name: str,
    *,
    guild_id: int,
    channel_id: int,
    user_id: int,
    options: dict[str, Any] | None = None,
    kind: int = CHAT_INPUT,
    target_id: int | None = None,
) -> Interaction:
    interaction = _base_payload(
        core,
        InteractionType.APPLICATION_COMMAND,
        guild_id=guild_id,
        channel_id=channel_id,
        user_id=user_id,
    )
    data: Json = {
        "id": _command_id(core, guild_id, name, kind),
        "name": name,
        "type": kind,
    }
    opts = _options(options, core, guild_id)
    if opts:
        data["options"] = opts
    users = [int(o["value"]) for o in opts if o.get("type") == 6]
    messages: list[int] = []
    if kind == USER and target_id is not None:
        users.append(target_id)
    if kind == MESSAGE and target_id is not None:
        messages.append(target_id)
    if target_id is not None:
        data["target_id"] = str(target_id)
    resolved = _resolved(core, guild_id, users, messages)
    if resolved:
        data["resolved"] = resolved
    data["guild_id"] = str(guild_id)
    interaction.payload["data"] = data
    return _send(core, interaction, name=name)


def autocomplete(
    core: SandboxCore,
    name: str,
    *,
    guild_id: int,
    channel_id: int,
    user_id: int,
    options: dict[str, Any],
    focused: str,
) -> Interaction:
    interaction = _base_payload(
        core,
        InteractionType.APPLICATION_COMMAND_AUTOCOMPLETE,
        guild_id=guild_id,
        channel_id=channel_id,
        user_id=user_id,
    )
    opts = _options(options, core, guild_id)
    for option in opts:
        if option["name"] == focused:
            # Discord sends the partial text of the focused option as a string.
            option["focused"] = True
    data: Json = {
        "id": _command_id(core, guild_id, name, CHAT_INPUT),
        "name": name,
        "type": CHAT_INPUT,
        "options": opts,
    }
    interaction.payload["data"] = data
    return _send(core, interaction, name=name)


def press_button(
    core: SandboxCore,
    message_id: int,
    custom_id: str,
    *,
    user_id: int,
    component_type: int = 2,
    values: list[str] | None = None,
) -> Interaction:
    message = core.state.messages[message_id]
    assert message.guild_id is not None, "components are pressed in guild channels"
    interaction = _base_payload(
        core,
        InteractionType.MESSAGE_COMPONENT,
        guild_id=message.guild_id,
        channel_id=message.channel_id,
        user_id=user_id,
    )
    interaction.source_message_id = message_id
    data: Json = {"custom_id": custom_id, "component_type": component_type}
    if values is not None:
        data["values"] = values
    interaction.payload["data"] = data
    interaction.payload["message"] = message.to_json(core.state)
    return _send(core, interaction, name=custom_id)


def submit_modal(
    core: SandboxCore,
    custom_id: str,
    fields: dict[str, str],
    *,
    guild_id: int,
    channel_id: int,
    user_id: int,
) -> Interaction:
    interaction = _base_payload(
        core,
        InteractionType.MODAL_SUBMIT,
        guild_id=guild_id,
        channel_id=channel_id,
        user_id=user_id,
    )
    rows = [
        {"type": 1, "components": [{"type": 4, "custom_id": key, "value": value}]}
        for key, value in fields.items()
    ]
    interaction.payload["data"] = {"custom_id": custom_id, "components": rows}
    return _send(core, interaction, name=custom_id)


def _send(core: SandboxCore, interaction: Interaction, *, name: str) -> Interaction:
    core.interactions.add(interaction)
    core.actions.record(
        "scenario.interaction",
        interaction_id=interaction.id,
        interaction_type=interaction.type,
        name=name,
        user_id=interaction.user_id,
    )
    core.gateway.dispatch(
        "INTERACTION_CREATE", interaction.payload, guild_id=interaction.guild_id
    )
    return interaction
