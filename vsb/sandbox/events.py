"""Gateway events that follow changes of state.

Owns how a state change becomes a dispatch: which payload, which guild (for
shard routing), and the MESSAGE_CONTENT rule (Discord's "Message Content
Intent": without it, ``content``, ``embeds``, ``attachments`` and
``components`` arrive empty, except in DMs, for messages that mention the
bot, and for the bot's own messages).
"""

from __future__ import annotations

from typing import Any

from vsb.sandbox.core import SandboxCore
from vsb.sandbox.gateway import Session
from vsb.sandbox.intents import Intent
from vsb.sandbox.state import Member, Message

Json = dict[str, Any]


def message_event(core: SandboxCore, event_type: str, message: Message) -> int:
    """Dispatch MESSAGE_CREATE or MESSAGE_UPDATE for a message."""
    data = message.to_json(core.state)
    bot_id = core.state.bot_user.id
    exempt = (
        message.guild_id is None
        or message.author_id == bot_id
        or bot_id in message.mentions
    )

    def shape(session: Session, payload: Json) -> Json:
        if exempt or session.intents & Intent.MESSAGE_CONTENT:
            return payload
        return {
            **payload,
            "content": "",
            "embeds": [],
            "attachments": [],
            "components": [],
        }

    return core.gateway.dispatch(
        event_type, data, guild_id=message.guild_id, shape=shape
    )


def message_delete(core: SandboxCore, message: Message) -> None:
    data: Json = {"id": str(message.id), "channel_id": str(message.channel_id)}
    if message.guild_id is not None:
        data["guild_id"] = str(message.guild_id)
    core.gateway.dispatch("MESSAGE_DELETE", data, guild_id=message.guild_id)


def message_delete_bulk(
    core: SandboxCore, channel_id: int, guild_id: int, ids: list[int]
) -> None:
    data = {
        "ids": [str(i) for i in ids],
        "channel_id": str(channel_id),
        "guild_id": str(guild_id),
    }
    core.gateway.dispatch("MESSAGE_DELETE_BULK", data, guild_id=guild_id)


def member_update(core: SandboxCore, member: Member) -> None:
    data = member.to_json(core.state)
    data["guild_id"] = str(member.guild_id)
    core.gateway.dispatch("GUILD_MEMBER_UPDATE", data, guild_id=member.guild_id)


def member_add(core: SandboxCore, member: Member) -> None:
    data = member.to_json(core.state)
    data["guild_id"] = str(member.guild_id)
    core.gateway.dispatch("GUILD_MEMBER_ADD", data, guild_id=member.guild_id)


def member_remove(core: SandboxCore, guild_id: int, user_id: int) -> None:
    data = {"guild_id": str(guild_id), "user": core.state.users[user_id].to_json()}
    core.gateway.dispatch("GUILD_MEMBER_REMOVE", data, guild_id=guild_id)


def ban_event(core: SandboxCore, event_type: str, guild_id: int, user_id: int) -> None:
    data = {"guild_id": str(guild_id), "user": core.state.users[user_id].to_json()}
    core.gateway.dispatch(event_type, data, guild_id=guild_id)


# Audit log event types (Discord's "Audit Log Events" table).
MEMBER_KICK = 20
MEMBER_BAN_ADD = 22
MEMBER_BAN_REMOVE = 23
MEMBER_UPDATE = 24
MEMBER_ROLE_UPDATE = 25
MESSAGE_DELETE = 72
MESSAGE_BULK_DELETE = 73


def audit_entry(
    core: SandboxCore,
    guild_id: int,
    action_type: int,
    target_id: int,
    reason: str | None,
    *,
    changes: list[Json] | None = None,
    options: Json | None = None,
) -> None:
    """Dispatch GUILD_AUDIT_LOG_ENTRY_CREATE for a change the bot made."""
    data: Json = {
        "id": str(core.clock.snowflake()),
        "guild_id": str(guild_id),
        "user_id": str(core.state.bot_user.id),
        "target_id": str(target_id),
        "action_type": action_type,
    }
    if reason is not None:
        data["reason"] = reason
    if changes:
        data["changes"] = changes
    if options:
        data["options"] = options
    core.gateway.dispatch("GUILD_AUDIT_LOG_ENTRY_CREATE", data, guild_id=guild_id)
