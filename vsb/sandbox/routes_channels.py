"""REST routes for channels and messages: create, get, list, edit, delete,
bulk delete.

Rules from Discord's "Channel" and "Message" pages: a message needs content,
an embed or components (50006); content up to 2,000 characters, up to 10
embeds; bulk delete takes 2-100 ids, none older than 14 days (50034);
deleting another user's message needs MANAGE_MESSAGES; a DM to a user who
refuses DMs is 50007.
"""

from __future__ import annotations

from typing import Any, Final

from vsb.sandbox import access, errors, events
from vsb.sandbox.clock import snowflake_unix
from vsb.sandbox.core import SandboxCore
from vsb.sandbox.errors import ApiError, form_error
from vsb.sandbox.permissions import Perm
from vsb.sandbox.rest import Req, RouteSpec, parse_snowflake

Json = dict[str, Any]

BULK_DELETE_MAX_AGE: Final = 14 * 24 * 3600.0
# Flags a client may set on a message (SUPPRESS_EMBEDS, EPHEMERAL where
# allowed, SUPPRESS_NOTIFICATIONS, IS_COMPONENTS_V2).
SETTABLE_FLAGS: Final = (1 << 2) | (1 << 6) | (1 << 12) | (1 << 15)


def message_fields(body: Any, *, partial: bool = False) -> Json:
    """Validate a message body; return the fields to store.

    Raises:
        ApiError: 50035 for a bad field, 50006 for an empty message.
    """
    if not isinstance(body, dict):
        if partial and body is None:
            return {}
        raise _empty()
    fields: Json = {}
    if body.get("content") is not None:
        fields["content"] = _content(body["content"])
    for key, cap in (("embeds", 10), ("components", 40)):
        if body.get(key) is not None:
            fields[key] = _capped_list(key, body[key], cap)
    if body.get("flags") is not None:
        flags = body["flags"]
        if not isinstance(flags, int) or flags & ~SETTABLE_FLAGS:
            raise form_error("flags", "MESSAGE_FLAGS_INVALID", "Invalid message flags")
        fields["flags"] = flags
    if not partial and not any(
        fields.get(k) for k in ("content", "embeds", "components")
    ):
        raise _empty()
    return fields


def _empty() -> ApiError:
    return ApiError(
        400, errors.CANNOT_SEND_EMPTY_MESSAGE, "Cannot send an empty message"
    )


def _content(content: Any) -> str:
    if not isinstance(content, str):
        raise form_error(
            "content", "STRING_TYPE_CONVERT", "Could not interpret as string."
        )
    if len(content) > 2000:
        raise form_error(
            "content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length."
        )
    return content


def _capped_list(key: str, value: Any, cap: int) -> list[Any]:
    if not isinstance(value, list):
        raise form_error(
            key, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType"
        )
    if len(value) > cap:
        raise form_error(
            key, "BASE_TYPE_MAX_LENGTH", f"Must be {cap} or fewer in length."
        )
    return value


async def create_message(core: SandboxCore, req: Req) -> Json:
    channel = access.channel(core, req.snowflake("channel_id"))
    access.require_channel_perm(core, channel, Perm.SEND_MESSAGES)
    if channel.guild_id is None and set(channel.recipients) & core.state.dms_closed:
        raise ApiError(
            403, errors.CANNOT_SEND_TO_USER, "Cannot send messages to this user"
        )
    fields = message_fields(req.body)
    fields.pop("flags", None)
    message = core.state.add_message(
        channel.id, core.state.bot_user.id, fields.pop("content", ""), **fields
    )
    core.actions.record(
        "message.create",
        message_id=message.id,
        channel_id=channel.id,
        content=message.content,
        embeds=message.embeds,
        components=message.components,
        dm=channel.guild_id is None,
    )
    events.message_event(core, "MESSAGE_CREATE", message)
    return message.to_json(core.state)


async def get_message(core: SandboxCore, req: Req) -> Json:
    channel = access.channel(core, req.snowflake("channel_id"))
    access.require_channel_perm(core, channel, Perm.READ_MESSAGE_HISTORY)
    return access.message(core, channel.id, req.snowflake("message_id")).to_json(
        core.state
    )


async def list_messages(core: SandboxCore, req: Req) -> list[Json]:
    channel = access.channel(core, req.snowflake("channel_id"))
    access.require_channel_perm(core, channel, Perm.READ_MESSAGE_HISTORY)
    limit = int(req.query.get("limit", "50"))
    if not 1 <= limit <= 100:
        raise form_error(
            "limit", "NUMBER_TYPE_MAX", "int value should be between 1 and 100."
        )
    found = sorted(
        (m for m in core.state.messages.values() if m.channel_id == channel.id),
        key=lambda m: m.id,
        reverse=True,
    )
    return [m.to_json(core.state) for m in found[:limit]]


async def edit_message(core: SandboxCore, req: Req) -> Json:
    channel = access.channel(core, req.snowflake("channel_id"))
    message = access.message(core, channel.id, req.snowflake("message_id"))
    if message.author_id != core.state.bot_user.id:
        raise ApiError(403, 50005, "Cannot edit a message authored by another user")
    fields = message_fields(req.body, partial=True)
    for key, value in fields.items():
        setattr(message, key, value)
    message.edited_at = core.clock.unix()
    core.actions.record(
        "message.edit", message_id=message.id, channel_id=channel.id, **fields
    )
    events.message_event(core, "MESSAGE_UPDATE", message)
    return message.to_json(core.state)


async def delete_message(core: SandboxCore, req: Req) -> None:
    channel = access.channel(core, req.snowflake("channel_id"))
    message = access.message(core, channel.id, req.snowflake("message_id"))
    if message.author_id != core.state.bot_user.id:
        access.require_channel_perm(core, channel, Perm.MANAGE_MESSAGES)
    del core.state.messages[message.id]
    core.actions.record(
        "message.delete",
        reason=req.reason,
        message_id=message.id,
        channel_id=channel.id,
        author_id=message.author_id,
    )
    events.message_delete(core, message)
    if message.guild_id is not None and message.author_id != core.state.bot_user.id:
        options = {"channel_id": str(channel.id), "count": "1"}
        events.audit_entry(
            core,
            message.guild_id,
            events.MESSAGE_DELETE,
            message.author_id,
            req.reason,
            options=options,
        )


async def bulk_delete(core: SandboxCore, req: Req) -> None:
    channel = access.channel(core, req.snowflake("channel_id"))
    if channel.guild_id is None:
        raise ApiError(403, 50003, "Cannot execute action on a DM channel")
    access.require_channel_perm(core, channel, Perm.MANAGE_MESSAGES)
    ids = _bulk_ids(req.body)
    cutoff = core.clock.unix() - BULK_DELETE_MAX_AGE
    if any(snowflake_unix(i) < cutoff for i in ids):
        raise ApiError(
            400,
            errors.BULK_DELETE_TOO_OLD,
            "You can only bulk delete messages that are under 14 days old.",
        )
    deleted = []
    for message_id in ids:
        message = core.state.messages.get(message_id)
        if message is not None and message.channel_id == channel.id:
            del core.state.messages[message_id]
            deleted.append(message_id)
    core.actions.record(
        "message.bulk_delete",
        reason=req.reason,
        channel_id=channel.id,
        message_ids=deleted,
        requested=ids,
    )
    events.message_delete_bulk(core, channel.id, channel.guild_id, deleted)
    options = {"count": str(len(deleted))}
    events.audit_entry(
        core,
        channel.guild_id,
        events.MESSAGE_BULK_DELETE,
        channel.id,
        req.reason,
        options=options,
    )


def _bulk_ids(body: Any) -> list[int]:
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        raise form_error("messages", "BASE_TYPE_REQUIRED", "This field is required")
    if len(messages) < 2:
        raise form_error(
            "messages", "BASE_TYPE_MIN_LENGTH", "Must be 2 or more in length."
        )
    if len(messages) > 100:
        raise form_error(
            "messages", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length."
        )
    ids = [parse_snowflake(m, "messages") for m in messages]
    if len(set(ids)) != len(ids):
        raise form_error(
            "messages", "BASE_TYPE_DUPLICATES", "Duplicate messages provided."
        )
    return ids


async def get_channel(core: SandboxCore, req: Req) -> Json:
    channel = access.channel(core, req.snowflake("channel_id"))
    access.require_channel_perm(core, channel, Perm(0))
    return channel.to_json(core.state)


_CH = ("channel_id",)
ROUTES = [
    RouteSpec("GET", "/channels/{channel_id}", get_channel, resource=_CH),
    RouteSpec("POST", "/channels/{channel_id}/messages", create_message, resource=_CH),
    RouteSpec("GET", "/channels/{channel_id}/messages", list_messages, resource=_CH),
    RouteSpec(
        "POST", "/channels/{channel_id}/messages/bulk-delete", bulk_delete, resource=_CH
    ),
    RouteSpec(
        "GET", "/channels/{channel_id}/messages/{message_id}", get_message, resource=_CH
    ),
    RouteSpec(
        "PATCH",
        "/channels/{channel_id}/messages/{message_id}",
        edit_message,
        resource=_CH,
    ),
    RouteSpec(
        "DELETE",
        "/channels/{channel_id}/messages/{message_id}",
        delete_message,
        resource=_CH,
    ),
]
