"""Decoding of gateway events into vsb.models Structs."""

from __future__ import annotations

import datetime as dt
import gc

import msgspec
import pytest

from vsb import models
from vsb.models import UNSET, decode_event


def enc(obj: object) -> bytes:
    return msgspec.json.encode(obj)


USER = {
    "id": "80351110224678912",
    "username": "nelly",
    "discriminator": "0",
    "global_name": "Nelly",
    "avatar": "8342729096ea3675442027381ff50dfe",
    "public_flags": 64,
    "banner": None,  # unknown to the model: skipped
    "clan": {"tag": "X"},
}

MESSAGE = {
    "id": "1300000000000000001",
    "channel_id": "1200000000000000001",
    "guild_id": "1100000000000000001",
    "author": USER,
    "member": {
        "roles": ["1100000000000000002"],
        "joined_at": "2025-01-01T00:00:00.000000+00:00",
        "nick": None,
        "deaf": False,
    },
    "content": "hello",
    "timestamp": "2025-05-01T00:00:00.000000+00:00",
    "edited_timestamp": None,
    "mentions": [{**USER, "member": {"roles": []}}],
    "mention_roles": ["1100000000000000002"],
    "attachments": [],
    "embeds": [],
    "nonce": "123",
    "components": [],
}


def test_snowflakes_and_bitfields_become_ints() -> None:
    role = {"guild_id": "1", "role": {"id": "2", "permissions": "1099511627775"}}
    event = decode_event("GUILD_ROLE_CREATE", enc(role))
    assert event == models.GuildRoleEvent(
        guild_id=1, role=models.Role(id=2, permissions=(1 << 40) - 1)
    )


def test_message_create_decodes_with_unknown_fields_skipped() -> None:
    message = decode_event("MESSAGE_CREATE", enc(MESSAGE))
    assert isinstance(message, models.Message)
    assert message.id == 1300000000000000001
    assert message.author.id == 80351110224678912
    assert message.author.public_flags == 64
    assert message.member is not None
    assert message.member.roles == (1100000000000000002,)
    assert message.member.joined_at == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert message.mention_roles == (1100000000000000002,)
    assert message.mentions[0].username == "nelly"


def test_partial_message_update_leaves_absent_fields_unset() -> None:
    raw = enc({"id": "5", "channel_id": "6", "embeds": [{"title": "t"}]})
    update = decode_event("MESSAGE_UPDATE", raw)
    assert update.id == 5 and update.channel_id == 6
    assert update.embeds == (models.Embed(title="t"),)
    assert update.content is UNSET
    assert update.author is UNSET
    assert update.edited_timestamp is UNSET


def test_message_update_keeps_null_apart_from_absent() -> None:
    raw = enc({"id": "5", "channel_id": "6", "content": "x", "edited_timestamp": None})
    update = decode_event("MESSAGE_UPDATE", raw)
    assert update.content == "x"
    assert update.edited_timestamp is None


def test_full_message_update_decodes() -> None:
    update = decode_event("MESSAGE_UPDATE", enc(MESSAGE))
    assert update.content == "hello"
    assert isinstance(update.author, models.User)


@pytest.mark.parametrize(
    "raw",
    [b"{", b"", b'{"id": "1", "channel_id": 2', b"\xff"],
)
def test_malformed_json_raises_decode_error(raw: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_event("MESSAGE_CREATE", raw)


@pytest.mark.parametrize(
    "payload",
    [
        {"channel_id": "1", "author": USER},  # id missing
        {"id": "abc", "channel_id": "1", "author": USER},  # id not a number
        {"id": "1", "channel_id": "1", "author": "someone"},
        {"id": "1", "channel_id": "1", "author": USER, "mentions": {}},
    ],
)
def test_invalid_payload_raises_validation_error(payload: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_event("MESSAGE_CREATE", enc(payload))


def test_unknown_event_types_decode_to_plain_data() -> None:
    assert decode_event("TYPING_START", b'{"user_id": "1"}') == {"user_id": "1"}
    with pytest.raises(msgspec.DecodeError):
        decode_event("TYPING_START", b"{")


def test_ready_and_unavailable_guilds() -> None:
    ready = {
        "v": 10,
        "user": {"id": "9", "username": "bot", "bot": True},
        "session_id": "abc",
        "resume_gateway_url": "wss://example.invalid",
        "guilds": [{"id": "1", "unavailable": True}],
        "shard": [0, 2],
        "application": {"id": "9", "flags": 1},
        "private_channels": [],
    }
    event = decode_event("READY", enc(ready))
    assert event.user.bot is True
    assert event.guilds == (models.UnavailableGuild(id=1, unavailable=True),)
    assert event.shard == (0, 2)
    assert event.application == models.PartialApplication(id=9, flags=1)


@pytest.mark.parametrize(
    ("payload", "unavailable"),
    [({"id": "1", "unavailable": True}, True), ({"id": "1"}, False)],
)
def test_guild_delete_tells_outage_from_removal(
    payload: dict[str, object], unavailable: bool
) -> None:
    event = decode_event("GUILD_DELETE", enc(payload))
    assert event == models.UnavailableGuild(id=1, unavailable=unavailable)


def test_guild_create_unavailable_form_decodes() -> None:
    event = decode_event("GUILD_CREATE", b'{"id": "7", "unavailable": true}')
    assert event.id == 7 and event.unavailable and event.members == ()


def test_guild_create_with_channels_roles_members() -> None:
    guild = {
        "id": "1",
        "name": "g",
        "owner_id": "2",
        "member_count": 1,
        "roles": [{"id": "1", "permissions": "1024", "position": 0}],
        "channels": [
            {
                "id": "3",
                "type": 0,
                "permission_overwrites": [
                    {"id": "1", "type": 0, "allow": "0", "deny": "2048"}
                ],
            }
        ],
        "members": [{"user": USER, "roles": [], "joined_at": None}],
        "emojis": [{"id": "4"}],
    }
    event = decode_event("GUILD_CREATE", enc(guild))
    assert event.owner_id == 2
    assert event.channels[0].permission_overwrites == (
        models.Overwrite(id=1, type=0, allow=0, deny=2048),
    )
    assert event.members[0].user.id == 80351110224678912


def test_interaction_with_nested_subcommand_and_resolved() -> None:
    interaction = {
        "id": "10",
        "application_id": "11",
        "type": 2,
        "token": "secret-token",
        "guild_id": "1",
        "channel_id": "3",
        "member": {"user": USER, "roles": ["5"], "permissions": "8"},
        "app_permissions": "1024",
        "data": {
            "id": "12",
            "name": "moderate",
            "type": 1,
            "options": [
                {
                    "name": "ban",
                    "type": 1,
                    "options": [
                        {"name": "target", "type": 6, "value": "80351110224678912"},
                        {"name": "days", "type": 4, "value": 7},
                        {"name": "ratio", "type": 10, "value": 0.5},
                        {"name": "silent", "type": 5, "value": True},
                    ],
                }
            ],
            "resolved": {
                "users": {"80351110224678912": USER},
                "members": {"80351110224678912": {"roles": [], "permissions": "0"}},
            },
        },
    }
    event = decode_event("INTERACTION_CREATE", enc(interaction))
    assert event.member is not None and event.member.permissions == 8
    assert event.app_permissions == 1024
    assert event.data is not None
    sub = event.data.options[0]
    assert sub.name == "ban"
    assert [o.value for o in sub.options] == ["80351110224678912", 7, 0.5, True]
    assert event.data.resolved is not None
    assert event.data.resolved.users[80351110224678912].username == "nelly"
    assert "secret-token" not in repr(event)


def test_component_and_context_menu_interactions() -> None:
    button = {
        "id": "1",
        "application_id": "2",
        "type": 3,
        "token": "t",
        "data": {"custom_id": "review:approve:9", "component_type": 2},
        "message": {"id": "4", "channel_id": "5", "author": USER},
    }
    event = decode_event("INTERACTION_CREATE", enc(button))
    assert event.data.custom_id == "review:approve:9"
    assert event.message.id == 4

    menu = {
        **button,
        "type": 2,
        "data": {"name": "Analyze", "type": 3, "target_id": "4"},
    }
    assert decode_event("INTERACTION_CREATE", enc(menu)).data.target_id == 4


def test_member_events_and_chunk() -> None:
    add = decode_event(
        "GUILD_MEMBER_ADD",
        enc({"guild_id": "1", "user": USER, "roles": ["2"], "joined_at": None}),
    )
    assert isinstance(add, models.Member) and add.guild_id == 1
    update = decode_event(
        "GUILD_MEMBER_UPDATE",
        enc(
            {
                "guild_id": "1",
                "user": USER,
                "roles": [],
                "communication_disabled_until": "2030-01-01T00:00:00+00:00",
            }
        ),
    )
    assert update.communication_disabled_until.year == 2030
    chunk = decode_event(
        "GUILD_MEMBERS_CHUNK",
        enc(
            {
                "guild_id": "1",
                "members": [{"user": USER}],
                "chunk_index": 0,
                "chunk_count": 2,
                "not_found": ["5"],
                "nonce": "n",
            }
        ),
    )
    assert chunk.not_found == (5,) and chunk.chunk_count == 2


def test_role_tags_null_means_set() -> None:
    role = {"id": "1", "tags": {"premium_subscriber": None, "bot_id": "9"}}
    event = decode_event("GUILD_ROLE_UPDATE", enc({"guild_id": "1", "role": role}))
    assert event.role.tags.premium_subscriber is None
    assert event.role.tags.bot_id == 9
    assert event.role.tags.guild_connections is UNSET


def test_audit_log_ban_and_deletes() -> None:
    entry = decode_event(
        "GUILD_AUDIT_LOG_ENTRY_CREATE",
        enc(
            {
                "id": "1",
                "guild_id": "2",
                "action_type": 22,
                "user_id": "3",
                "target_id": "4",
                "reason": "spam",
                "changes": [{"key": "nick", "new_value": "a"}],
            }
        ),
    )
    assert entry.target_id == 4 and entry.changes[0].old_value is UNSET
    ban = decode_event("GUILD_BAN_ADD", enc({"guild_id": "2", "user": USER}))
    assert ban.user.id == 80351110224678912
    bulk = decode_event(
        "MESSAGE_DELETE_BULK", enc({"ids": ["1", "2"], "channel_id": "3"})
    )
    assert bulk.ids == (1, 2) and bulk.guild_id is None


def test_decode_frame_leaves_d_raw() -> None:
    frame = models.decode_frame(b'{"op": 0, "s": 4, "t": "RESUMED", "d": {"x": 1}}')
    assert (frame.op, frame.s, frame.t) == (0, 4, "RESUMED")
    assert decode_event(frame.t, frame.d) == models.Resumed()
    hello = models.decode_frame(b'{"op": 10, "d": {"heartbeat_interval": 41250}}')
    assert decode_event("HELLO", hello.d) == {"heartbeat_interval": 41250}


def test_cached_models_are_not_tracked_by_the_gc() -> None:
    message = decode_event("MESSAGE_CREATE", enc(MESSAGE))
    for obj in (message, message.author, message.member):
        assert not gc.is_tracked(obj)


def test_resumed_accepts_null() -> None:
    assert decode_event("RESUMED", b"null") == models.Resumed()
    assert decode_event("RESUMED", b'{"_trace": ["x"]}') == models.Resumed()
