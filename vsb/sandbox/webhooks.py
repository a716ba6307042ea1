"""REST routes answering interactions: the initial callback, ``@original``
and followups (Discord's "Receiving and Responding" page).

Lifecycle rules are in ``interactions.py``. These routes authenticate by the
interaction token in the path, not the bot token, and do not count toward
the global rate limit.
"""

from __future__ import annotations

from typing import Any

import trio

from vsb.sandbox import errors, events
from vsb.sandbox.core import SandboxCore
from vsb.sandbox.errors import ApiError, form_error
from vsb.sandbox.interactions import (
    ALLOWED_CALLBACKS,
    EPHEMERAL,
    LOADING,
    CallbackType,
    Interaction,
)
from vsb.sandbox.rest import Reply, Req, RouteSpec
from vsb.sandbox.routes_channels import message_fields
from vsb.sandbox.state import Message

Json = dict[str, Any]


def _unknown_interaction() -> ApiError:
    return errors.not_found(errors.UNKNOWN_INTERACTION, "interaction")


async def callback(core: SandboxCore, req: Req) -> Any:
    interaction = core.interactions.by_id.get(req.snowflake("interaction_id"))
    now = trio.current_time()
    if interaction is None or interaction.token != req.params["token"]:
        raise _unknown_interaction()
    if interaction.acknowledged:
        raise ApiError(
            400,
            errors.ALREADY_ACKNOWLEDGED,
            "Interaction has already been acknowledged.",
        )
    if interaction.deadline_passed(now):
        core.actions.record(
            "interaction.late_callback",
            interaction_id=interaction.id,
            elapsed=now - interaction.created_at,
        )
        raise _unknown_interaction()
    body = req.body if isinstance(req.body, dict) else {}
    kind = body.get("type")
    if kind not in ALLOWED_CALLBACKS.get(interaction.type, set()):
        raise form_error(
            "type",
            "INTERACTION_CALLBACK_TYPE_INVALID",
            "Invalid interaction response type",
        )
    raw_data = body.get("data")
    data: Json = raw_data if isinstance(raw_data, dict) else {}
    message = _apply_callback(core, interaction, int(kind), data)
    interaction.callback_type = int(kind)
    interaction.callback_data = data
    interaction.callback_at = now
    interaction.responded.set()
    core.actions.record(
        "interaction.callback",
        interaction_id=interaction.id,
        callback_type=int(kind),
        flags=int(data.get("flags") or 0),
        ephemeral=bool(int(data.get("flags") or 0) & EPHEMERAL),
        data=data,
        elapsed=now - interaction.created_at,
    )
    if req.query.get("with_response") == "true":
        return _callback_resource(core, interaction, message)
    return None


def _apply_callback(
    core: SandboxCore, ix: Interaction, kind: int, data: Json
) -> Message | None:
    if kind == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE:
        fields = message_fields(data)
        return _original(core, ix, fields)
    if kind == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE:
        flags = int(data.get("flags") or 0) & EPHEMERAL
        return _original(core, ix, {"content": "", "flags": flags | LOADING})
    if kind in (CallbackType.DEFERRED_UPDATE_MESSAGE, CallbackType.UPDATE_MESSAGE):
        if ix.source_message_id is None:
            raise form_error(
                "type",
                "INTERACTION_CALLBACK_TYPE_INVALID",
                "Invalid interaction response type",
            )
        ix.original_message_id = ix.source_message_id
        message = core.state.messages[ix.source_message_id]
        if kind == CallbackType.UPDATE_MESSAGE:
            _edit(core, message, message_fields(data, partial=True))
        return message
    if kind == CallbackType.MODAL:
        for key in ("custom_id", "title", "components"):
            if not data.get(key):
                raise form_error(
                    f"data.{key}", "BASE_TYPE_REQUIRED", "This field is required"
                )
    return None


def _original(core: SandboxCore, ix: Interaction, fields: Json) -> Message:
    flags = int(fields.pop("flags", 0))
    message = core.state.add_message(
        ix.channel_id,
        core.state.bot_user.id,
        fields.pop("content", ""),
        flags=flags,
        interaction_id=ix.id,
        webhook_id=ix.application_id,
        message_type=20,  # CHAT_INPUT_COMMAND reply
        **fields,
    )
    ix.original_message_id = message.id
    if not flags & EPHEMERAL:
        events.message_event(core, "MESSAGE_CREATE", message)
    return message


def _edit(core: SandboxCore, message: Message, fields: Json) -> None:
    flags = fields.pop("flags", None)
    for key, value in fields.items():
        setattr(message, key, value)
    if flags is not None:
        message.flags = (message.flags & EPHEMERAL) | (flags & ~EPHEMERAL)
    message.flags &= ~LOADING
    if not message.flags & EPHEMERAL:
        events.message_event(core, "MESSAGE_UPDATE", message)


def _callback_resource(
    core: SandboxCore, ix: Interaction, message: Message | None
) -> Json:
    resource: Json = {"type": ix.callback_type}
    if message is not None:
        resource["message"] = message.to_json(core.state)
    return {
        "interaction": {
            "id": str(ix.id),
            "type": ix.type,
            "response_message_id": None if message is None else str(message.id),
            "response_message_loading": bool(message and message.flags & LOADING),
            "response_message_ephemeral": bool(message and message.flags & EPHEMERAL),
        },
        "resource": resource,
    }


def _by_token(core: SandboxCore, req: Req) -> Interaction:
    """The interaction a webhook path names; 10015 or 50027 if unusable."""
    ix = core.interactions.by_token.get(req.params["token"])
    if ix is None or req.snowflake("application_id") != ix.application_id:
        raise errors.not_found(errors.UNKNOWN_WEBHOOK, "Webhook")
    if ix.token_expired(trio.current_time()):
        raise ApiError(401, errors.INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token")
    return ix


def _original_message(core: SandboxCore, ix: Interaction) -> Message:
    if (
        ix.original_message_id is None
        or ix.original_message_id not in core.state.messages
    ):
        raise errors.not_found(errors.UNKNOWN_MESSAGE, "Message")
    return core.state.messages[ix.original_message_id]


async def edit_original(core: SandboxCore, req: Req) -> Json:
    ix = _by_token(core, req)
    message = _original_message(core, ix)
    fields = message_fields(req.body, partial=True)
    was_loading = bool(message.flags & LOADING)
    _edit(core, message, dict(fields))
    message.edited_at = core.clock.unix()
    core.actions.record(
        "interaction.edit_original",
        interaction_id=ix.id,
        message_id=message.id,
        completed_deferral=was_loading,
        ephemeral=bool(message.flags & EPHEMERAL),
        data=fields,
    )
    return message.to_json(core.state)


async def get_original(core: SandboxCore, req: Req) -> Json:
    ix = _by_token(core, req)
    return _original_message(core, ix).to_json(core.state)


async def delete_original(core: SandboxCore, req: Req) -> None:
    ix = _by_token(core, req)
    message = _original_message(core, ix)
    del core.state.messages[message.id]
    core.actions.record(
        "interaction.delete_original", interaction_id=ix.id, message_id=message.id
    )
    if not message.flags & EPHEMERAL:
        events.message_delete(core, message)


async def create_followup(core: SandboxCore, req: Req) -> Any:
    ix = _by_token(core, req)
    if not ix.acknowledged:
        raise errors.not_found(errors.UNKNOWN_WEBHOOK, "Webhook")
    fields = message_fields(req.body)
    original = core.state.messages.get(ix.original_message_id or 0)
    if original is not None and original.flags & LOADING:
        # Discord: the first followup after a deferral edits the loading message.
        _edit(core, original, dict(fields))
        message = original
    else:
        flags = int(fields.pop("flags", 0))
        message = core.state.add_message(
            ix.channel_id,
            core.state.bot_user.id,
            fields.pop("content", ""),
            flags=flags,
            webhook_id=ix.application_id,
            **fields,
        )
        if not flags & EPHEMERAL:
            events.message_event(core, "MESSAGE_CREATE", message)
    ix.followup_ids.append(message.id)
    core.actions.record(
        "interaction.followup",
        interaction_id=ix.id,
        message_id=message.id,
        ephemeral=bool(message.flags & EPHEMERAL),
        data=req.body,
    )
    return message.to_json(core.state)


async def edit_followup(core: SandboxCore, req: Req) -> Json:
    ix = _by_token(core, req)
    message_id = req.snowflake("message_id")
    if message_id not in ix.followup_ids or message_id not in core.state.messages:
        raise errors.not_found(errors.UNKNOWN_MESSAGE, "Message")
    message = core.state.messages[message_id]
    _edit(core, message, message_fields(req.body, partial=True))
    core.actions.record(
        "interaction.edit_followup", interaction_id=ix.id, message_id=message_id
    )
    return message.to_json(core.state)


async def delete_followup(core: SandboxCore, req: Req) -> None:
    ix = _by_token(core, req)
    message_id = req.snowflake("message_id")
    if message_id not in ix.followup_ids or message_id not in core.state.messages:
        raise errors.not_found(errors.UNKNOWN_MESSAGE, "Message")
    message = core.state.messages.pop(message_id)
    core.actions.record(
        "interaction.delete_followup", interaction_id=ix.id, message_id=message_id
    )
    if not message.flags & EPHEMERAL:
        events.message_delete(core, message)


_HOOK = "/webhooks/{application_id}/{token}"
_RES = ("application_id", "token")
ROUTES = [
    RouteSpec(
        "POST",
        "/interactions/{interaction_id}/{token}/callback",
        callback,
        auth="none",
        resource=("interaction_id", "token"),
    ),
    RouteSpec(
        "GET", _HOOK + "/messages/@original", get_original, auth="none", resource=_RES
    ),
    RouteSpec(
        "PATCH",
        _HOOK + "/messages/@original",
        edit_original,
        auth="none",
        resource=_RES,
    ),
    RouteSpec(
        "DELETE",
        _HOOK + "/messages/@original",
        delete_original,
        auth="none",
        resource=_RES,
    ),
    RouteSpec("POST", _HOOK, create_followup, auth="none", resource=_RES),
    RouteSpec(
        "PATCH",
        _HOOK + "/messages/{message_id}",
        edit_followup,
        auth="none",
        resource=_RES,
    ),
    RouteSpec(
        "DELETE",
        _HOOK + "/messages/{message_id}",
        delete_followup,
        auth="none",
        resource=_RES,
    ),
]

__all__ = ["ROUTES", "Reply"]
