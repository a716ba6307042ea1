"""Typed Discord objects and gateway events, decoded with msgspec.

This module owns the shapes of the Discord payloads the bot reads, and
:func:`decode_event`, which turns the raw JSON of a dispatch's ``d`` field
into one of them.

Decoding rules:

- Snowflakes and permission bitfields arrive as JSON strings (Discord sends
  64-bit integers as strings, see "Snowflakes" in the API reference). They
  are declared ``int`` here and the decoders run with ``strict=False``, which
  makes msgspec parse a numeric string into an ``int`` field in C, with no
  Python hook per value.
- Unknown fields are skipped without being materialised, so Discord adding a
  field never breaks decoding and costs no memory.
- Missing required fields, wrong types or invalid JSON raise
  ``msgspec.ValidationError`` / ``msgspec.DecodeError`` (both
  ``msgspec.MSGSPEC_ERROR``); the gateway logs and skips such an event.
- Fields that are absent in a partial payload (MESSAGE_UPDATE) default to
  ``msgspec.UNSET``, so "absent" and "null" stay distinct.

Memory: the objects the cache keeps (``User``, ``Member``, ``Role``,
``Channel``, ``Overwrite``, ``Message`` ...) are ``gc=False`` Structs. They
hold only atoms, tuples and other ``gc=False`` Structs, so they cannot form
reference cycles and the cyclic GC never has to walk them. Collections that
the cache keeps are tuples, not lists.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Final

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "UNSET",
    "Attachment",
    "AuditLogChange",
    "AuditLogEntry",
    "Channel",
    "ChannelDelete",
    "Embed",
    "EmbedField",
    "GatewayFrame",
    "Guild",
    "GuildBan",
    "GuildMemberAdd",
    "GuildMemberRemove",
    "GuildMemberUpdate",
    "GuildMembersChunk",
    "GuildRoleDelete",
    "GuildRoleEvent",
    "Interaction",
    "InteractionData",
    "InteractionMember",
    "InteractionOption",
    "Member",
    "Message",
    "MessageDelete",
    "MessageDeleteBulk",
    "MessageReference",
    "MessageUpdate",
    "Overwrite",
    "PartialApplication",
    "PartialChannel",
    "PartialMember",
    "Ready",
    "Resolved",
    "Resumed",
    "Role",
    "RoleTags",
    "SelectValue",
    "UnavailableGuild",
    "UnsetType",
    "User",
    "decode_event",
    "decode_frame",
]


class _Leaf(msgspec.Struct, gc=False, omit_defaults=True):
    """Base of every model: untracked by the GC, defaults left out on encode.

    Invariant: subclasses hold only atoms, tuples, ``msgspec.Raw`` and other
    ``_Leaf`` Structs, never lists or dicts that user code could make point
    back at the object. Decoded JSON has no cycles, so none can form.
    """


class _Tracked(msgspec.Struct, omit_defaults=True):
    """Base of the few short-lived models holding dicts or ``Any`` values.

    These stay visible to the GC, since user code could store into them.
    """


# --------------------------------------------------------------------------
# Objects


class User(_Leaf):
    """A Discord user (https://discord.com/developers/docs/resources/user)."""

    id: int
    username: str = ""
    discriminator: str = "0"
    global_name: str | None = None
    avatar: str | None = None
    bot: bool = False
    system: bool = False
    public_flags: int = 0


class PartialMember(_Leaf):
    """A guild member without ``user``: as in MESSAGE_CREATE and resolved data."""

    roles: tuple[int, ...] = ()
    nick: str | None = None
    avatar: str | None = None
    joined_at: dt.datetime | None = None
    communication_disabled_until: dt.datetime | None = None
    pending: bool = False
    flags: int = 0
    permissions: int | None = None


class Member(_Leaf):
    """A guild member with its user, as cached.

    ``joined_at`` is null in GUILD_MEMBER_UPDATE for some members (guest
    members), hence optional. ``communication_disabled_until`` is the end of a
    timeout; a past value means no timeout.
    """

    user: User
    roles: tuple[int, ...] = ()
    nick: str | None = None
    avatar: str | None = None
    joined_at: dt.datetime | None = None
    communication_disabled_until: dt.datetime | None = None
    pending: bool = False
    flags: int = 0


class InteractionMember(Member, kw_only=True):
    """The invoking member of an interaction: a member plus ``permissions``.

    ``permissions`` is the member's total permissions in the interaction's
    channel, overwrites included, as computed by Discord.
    """

    permissions: int


class RoleTags(_Leaf):
    """Role tags. ``premium_subscriber`` and friends are null when true.

    Discord sends those boolean tags as ``null`` when set and leaves them out
    otherwise, so present-and-null decodes to ``None`` and absent to ``UNSET``.
    """

    bot_id: int | None = None
    integration_id: int | None = None
    premium_subscriber: None | UnsetType = UNSET
    available_for_purchase: None | UnsetType = UNSET
    guild_connections: None | UnsetType = UNSET


class Role(_Leaf):
    """A guild role (https://discord.com/developers/docs/topics/permissions)."""

    id: int
    name: str = ""
    color: int = 0
    hoist: bool = False
    position: int = 0
    permissions: int = 0
    managed: bool = False
    mentionable: bool = False
    flags: int = 0
    icon: str | None = None
    unicode_emoji: str | None = None
    tags: RoleTags | None = None


class Overwrite(_Leaf):
    """A channel permission overwrite. ``type``: 0 role, 1 member."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0


class Channel(_Leaf):
    """A guild channel or thread (https://discord.com/developers/docs/resources/channel)."""

    id: int
    type: int = 0
    guild_id: int | None = None
    name: str | None = None
    position: int = 0
    parent_id: int | None = None
    permission_overwrites: tuple[Overwrite, ...] = ()
    topic: str | None = None
    nsfw: bool = False
    rate_limit_per_user: int = 0
    owner_id: int | None = None
    last_message_id: int | None = None
    flags: int = 0


class PartialChannel(_Leaf):
    """A channel as found in resolved data and interactions."""

    id: int
    type: int = 0
    name: str | None = None
    parent_id: int | None = None
    permissions: int | None = None
    guild_id: int | None = None


class UnavailableGuild(_Leaf):
    """``{id, unavailable}``: in READY, and as the body of GUILD_DELETE.

    In GUILD_DELETE, ``unavailable`` true means an outage; absent means the
    bot was removed from the guild
    (https://discord.com/developers/docs/events/gateway-events#guild-delete).
    """

    id: int
    unavailable: bool = False


class Guild(_Leaf):
    """A guild, as GUILD_CREATE and GUILD_UPDATE send it.

    Only ``id`` is required so that ``{id, unavailable: true}`` decodes too.
    GUILD_UPDATE carries no ``members``, ``channels`` or ``threads``.
    """

    id: int
    name: str = ""
    owner_id: int = 0
    unavailable: bool = False
    icon: str | None = None
    features: tuple[str, ...] = ()
    member_count: int = 0
    large: bool = False
    joined_at: dt.datetime | None = None
    mfa_level: int = 0
    verification_level: int = 0
    premium_tier: int = 0
    preferred_locale: str = "en-US"
    system_channel_id: int | None = None
    rules_channel_id: int | None = None
    roles: tuple[Role, ...] = ()
    channels: tuple[Channel, ...] = ()
    threads: tuple[Channel, ...] = ()
    members: tuple[Member, ...] = ()


class Attachment(_Leaf):
    """A message attachment."""

    id: int
    filename: str = ""
    size: int = 0
    url: str = ""
    content_type: str | None = None


class EmbedField(_Leaf):
    """One field of an embed."""

    name: str = ""
    value: str = ""


class Embed(_Leaf):
    """The text parts of an embed (enough for moderation of its text)."""

    type: str = "rich"
    title: str | None = None
    description: str | None = None
    url: str | None = None
    fields: tuple[EmbedField, ...] = ()


class MessageReference(_Leaf):
    """What a reply or forward points at."""

    message_id: int | None = None
    channel_id: int | None = None
    guild_id: int | None = None
    type: int = 0


class Message(_Leaf):
    """A message, as MESSAGE_CREATE sends it (member has no ``user``)."""

    id: int
    channel_id: int
    author: User
    content: str = ""
    timestamp: dt.datetime | None = None
    guild_id: int | None = None
    member: PartialMember | None = None
    edited_timestamp: dt.datetime | None = None
    type: int = 0
    tts: bool = False
    mention_everyone: bool = False
    mentions: tuple[User, ...] = ()
    mention_roles: tuple[int, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    embeds: tuple[Embed, ...] = ()
    flags: int = 0
    pinned: bool = False
    webhook_id: int | None = None
    application_id: int | None = None
    message_reference: MessageReference | None = None


class MessageUpdate(_Leaf):
    """MESSAGE_UPDATE: ``id`` and ``channel_id`` always, the rest maybe.

    Discord has sent partial message objects in this event (an embed update
    carries only ``id``, ``channel_id``, ``embeds``); a field that is absent
    is ``UNSET`` and must leave the cached value alone.
    """

    id: int
    channel_id: int
    guild_id: int | None = None
    author: User | UnsetType = UNSET
    member: PartialMember | UnsetType = UNSET
    content: str | UnsetType = UNSET
    timestamp: dt.datetime | UnsetType = UNSET
    edited_timestamp: dt.datetime | None | UnsetType = UNSET
    type: int | UnsetType = UNSET
    mention_everyone: bool | UnsetType = UNSET
    mentions: tuple[User, ...] | UnsetType = UNSET
    mention_roles: tuple[int, ...] | UnsetType = UNSET
    attachments: tuple[Attachment, ...] | UnsetType = UNSET
    embeds: tuple[Embed, ...] | UnsetType = UNSET
    flags: int | UnsetType = UNSET
    pinned: bool | UnsetType = UNSET


# --------------------------------------------------------------------------
# Interactions


class InteractionOption(_Leaf):
    """One option of a command; sub-commands and groups nest ``options``.

    ``value`` keeps the JSON type: USER, CHANNEL, ROLE and MENTIONABLE
    options carry their snowflake as a string; the command layer converts by
    option ``type``.
    """

    name: str
    type: int
    value: str | int | float | bool | None = None
    options: tuple[InteractionOption, ...] = ()
    focused: bool = False


class Resolved(_Tracked):
    """Users, members, roles, channels, messages and attachments by id."""

    users: dict[int, User] = {}
    members: dict[int, PartialMember] = {}
    roles: dict[int, Role] = {}
    channels: dict[int, PartialChannel] = {}
    messages: dict[int, Message] = {}
    attachments: dict[int, Attachment] = {}


class SelectValue(_Leaf):
    """A component inside a modal submit (action row or text input)."""

    type: int
    custom_id: str | None = None
    value: str | None = None
    values: tuple[str, ...] = ()
    components: tuple[SelectValue, ...] = ()


class InteractionData(_Leaf):
    """``data`` of an interaction: a command, a component or a modal submit.

    Command fields: ``id``, ``name``, ``type``, ``options``, ``resolved``,
    ``target_id`` (context menus), ``guild_id``. Component fields:
    ``custom_id``, ``component_type``, ``values``. Modal fields:
    ``custom_id``, ``components``.
    """

    id: int | None = None
    name: str | None = None
    type: int | None = None
    options: tuple[InteractionOption, ...] = ()
    resolved: Resolved | None = None
    target_id: int | None = None
    guild_id: int | None = None
    custom_id: str | None = None
    component_type: int | None = None
    values: tuple[str, ...] = ()
    components: tuple[SelectValue, ...] = ()


class Interaction(_Leaf):
    """INTERACTION_CREATE (https://discord.com/developers/docs/interactions/receiving-and-responding).

    ``member`` is set in guilds, ``user`` in DMs. ``token`` is a secret: never
    log it. ``app_permissions`` is what the bot may do in the channel.
    """

    id: int
    application_id: int
    type: int
    token: str
    version: int = 1
    guild_id: int | None = None
    channel_id: int | None = None
    channel: PartialChannel | None = None
    member: InteractionMember | None = None
    user: User | None = None
    data: InteractionData | None = None
    message: Message | None = None
    app_permissions: int = 0
    locale: str | None = None
    guild_locale: str | None = None

    def __repr__(self) -> str:
        # The token must never reach a log; the default repr would print it.
        return (
            f"Interaction(id={self.id}, type={self.type}, "
            f"guild_id={self.guild_id}, channel_id={self.channel_id})"
        )


# --------------------------------------------------------------------------
# Events


class PartialApplication(_Leaf):
    """``application`` in READY."""

    id: int
    flags: int = 0


class Ready(_Leaf):
    """READY (https://discord.com/developers/docs/events/gateway-events#ready)."""

    v: int
    user: User
    session_id: str
    resume_gateway_url: str
    guilds: tuple[UnavailableGuild, ...] = ()
    shard: tuple[int, int] | None = None
    application: PartialApplication | None = None


class Resumed(_Leaf):
    """RESUMED: its body carries nothing the bot uses."""


class GuildMemberAdd(Member, kw_only=True):
    """GUILD_MEMBER_ADD: a member plus ``guild_id``."""

    guild_id: int


class GuildMemberUpdate(Member, kw_only=True):
    """GUILD_MEMBER_UPDATE: the member's new state plus ``guild_id``."""

    guild_id: int


class GuildMemberRemove(_Leaf):
    """GUILD_MEMBER_REMOVE."""

    guild_id: int
    user: User


class GuildMembersChunk(_Leaf):
    """GUILD_MEMBERS_CHUNK, the answer to REQUEST_GUILD_MEMBERS (op 8)."""

    guild_id: int
    members: tuple[Member, ...] = ()
    chunk_index: int = 0
    chunk_count: int = 1
    not_found: tuple[int, ...] = ()
    nonce: str | None = None


class GuildRoleEvent(_Leaf):
    """GUILD_ROLE_CREATE and GUILD_ROLE_UPDATE."""

    guild_id: int
    role: Role


class GuildRoleDelete(_Leaf):
    """GUILD_ROLE_DELETE."""

    guild_id: int
    role_id: int


class ChannelDelete(Channel):
    """CHANNEL_DELETE: the deleted channel (same shape as a channel)."""


class MessageDelete(_Leaf):
    """MESSAGE_DELETE."""

    id: int
    channel_id: int
    guild_id: int | None = None


class MessageDeleteBulk(_Leaf):
    """MESSAGE_DELETE_BULK."""

    ids: tuple[int, ...]
    channel_id: int
    guild_id: int | None = None


class GuildBan(_Leaf):
    """GUILD_BAN_ADD and GUILD_BAN_REMOVE."""

    guild_id: int
    user: User


class AuditLogChange(_Tracked):
    """One change of an audit log entry; values keep their JSON shape."""

    key: str
    new_value: Any = UNSET
    old_value: Any = UNSET


class AuditLogEntry(_Tracked):
    """GUILD_AUDIT_LOG_ENTRY_CREATE: an audit log entry plus ``guild_id``."""

    id: int
    guild_id: int
    action_type: int
    user_id: int | None = None
    target_id: int | None = None
    changes: tuple[AuditLogChange, ...] = ()
    options: dict[str, str] | None = None
    reason: str | None = None


class GatewayFrame(msgspec.Struct, gc=False):
    """One gateway payload with ``d`` left undecoded, for :func:`decode_event`."""

    op: int
    d: msgspec.Raw = msgspec.Raw(b"null")
    s: int | None = None
    t: str | None = None


# --------------------------------------------------------------------------
# Decoding

#: The Struct each dispatch event decodes into. Others decode to plain data.
EVENT_TYPES: Final[dict[str, type[Any]]] = {
    "READY": Ready,
    "RESUMED": Resumed,
    "GUILD_CREATE": Guild,
    "GUILD_UPDATE": Guild,
    "GUILD_DELETE": UnavailableGuild,
    "GUILD_MEMBER_ADD": GuildMemberAdd,
    "GUILD_MEMBER_UPDATE": GuildMemberUpdate,
    "GUILD_MEMBER_REMOVE": GuildMemberRemove,
    "GUILD_MEMBERS_CHUNK": GuildMembersChunk,
    "GUILD_ROLE_CREATE": GuildRoleEvent,
    "GUILD_ROLE_UPDATE": GuildRoleEvent,
    "GUILD_ROLE_DELETE": GuildRoleDelete,
    "CHANNEL_CREATE": Channel,
    "CHANNEL_UPDATE": Channel,
    "CHANNEL_DELETE": ChannelDelete,
    "THREAD_CREATE": Channel,
    "THREAD_UPDATE": Channel,
    "THREAD_DELETE": ChannelDelete,
    "MESSAGE_CREATE": Message,
    "MESSAGE_UPDATE": MessageUpdate,
    "MESSAGE_DELETE": MessageDelete,
    "MESSAGE_DELETE_BULK": MessageDeleteBulk,
    "INTERACTION_CREATE": Interaction,
    "GUILD_BAN_ADD": GuildBan,
    "GUILD_BAN_REMOVE": GuildBan,
    "GUILD_AUDIT_LOG_ENTRY_CREATE": AuditLogEntry,
}

# Built once: a Decoder per type keeps msgspec's compiled type info, so each
# call skips the type analysis a bare ``msgspec.json.decode(..., type=)`` does.
_DECODE: Final[dict[str, Callable[[bytes], Any]]] = {
    name: msgspec.json.Decoder(kind, strict=False).decode
    for name, kind in EVENT_TYPES.items()
}
_decode_resumed: Final = msgspec.json.Decoder(Resumed | None).decode


def _resumed(raw: bytes | msgspec.Raw) -> Resumed:
    # RESUMED's ``d`` carries nothing we read and may be null.
    return _decode_resumed(raw) or Resumed()


_DECODE["RESUMED"] = _resumed
_decode_any: Final = msgspec.json.Decoder().decode
_decode_frame: Final = msgspec.json.Decoder(GatewayFrame).decode


def decode_event(event_type: str, raw: bytes | msgspec.Raw) -> Any:
    """Decode the ``d`` of a dispatch (op 0) into its model.

    Args:
        event_type: the dispatch's ``t``, e.g. ``"MESSAGE_CREATE"``.
        raw: the JSON of its ``d`` field (bytes or a ``msgspec.Raw``).

    Returns:
        A Struct from :data:`EVENT_TYPES` for known types; plain ``dict``/
        ``list`` data for any other type.

    Raises:
        msgspec.DecodeError: ``raw`` is not valid JSON.
        msgspec.ValidationError: a required field is missing or has the wrong
            type.
    """
    decode = _DECODE.get(event_type, _decode_any)
    return decode(raw)


def decode_frame(raw: bytes | str) -> GatewayFrame:
    """Decode a whole gateway payload, leaving ``d`` raw for :func:`decode_event`.

    Raises:
        msgspec.DecodeError: the payload is not valid JSON.
        msgspec.ValidationError: ``op`` is missing or not an integer.
    """
    return _decode_frame(raw)
