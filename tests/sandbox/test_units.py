"""Pure parts: permissions, hierarchy, compression splitting, snowflakes,
the action log."""

from __future__ import annotations

import zlib

import pytest
import trio
import zstandard

from vsb.sandbox.actions import ActionLog
from vsb.sandbox.clock import SandboxClock, snowflake_unix
from vsb.sandbox.compress import ZLIB_SUFFIX, StreamCompressor
from vsb.sandbox.permissions import (
    Perm,
    base_permissions,
    channel_permissions,
    outranks,
)
from vsb.sandbox.state import State, User


def _state() -> State:
    clock = SandboxClock(1_800_000_000.0)
    state = State(clock, User(id=clock.snowflake(), username="bot", bot=True))
    state.seed_default()
    return state


async def test_base_and_channel_permissions() -> None:
    state = _state()
    d = state.default
    assert d is not None
    guild = state.guilds[d.guild_id]
    now = state.clock.unix()
    member = guild.members[d.member_id]
    assert not base_permissions(guild, member, now) & Perm.KICK_MEMBERS
    mod_log = state.channels[d.mod_log_id]
    assert not channel_permissions(guild, mod_log, member, now) & Perm.VIEW_CHANNEL
    bot = guild.members[d.bot_id]
    assert channel_permissions(guild, mod_log, bot, now) & Perm.VIEW_CHANNEL
    owner = guild.members[d.owner_id]
    assert channel_permissions(guild, mod_log, owner, now) & Perm.VIEW_CHANNEL


async def test_member_overwrite_beats_role_overwrite() -> None:
    state = _state()
    d = state.default
    assert d is not None
    guild = state.guilds[d.guild_id]
    send = int(Perm.SEND_MESSAGES)
    channel = state.add_channel(
        guild.id,
        "mixed",
        overwrites=[
            {"id": d.moderator_role_id, "type": 0, "allow": 0, "deny": send},
            {"id": d.moderator_id, "type": 1, "allow": send, "deny": 0},
        ],
    )
    member = guild.members[d.moderator_id]
    assert (
        channel_permissions(guild, channel, member, state.clock.unix())
        & Perm.SEND_MESSAGES
    )


async def test_timed_out_member_keeps_only_view_and_history() -> None:
    state = _state()
    d = state.default
    assert d is not None
    guild = state.guilds[d.guild_id]
    member = guild.members[d.moderator_id]
    now = state.clock.unix()
    member.communication_disabled_until = now + 60
    assert (
        base_permissions(guild, member, now)
        == Perm.VIEW_CHANNEL | Perm.READ_MESSAGE_HISTORY
    )
    assert base_permissions(guild, member, now + 61) & Perm.KICK_MEMBERS


async def test_hierarchy() -> None:
    state = _state()
    d = state.default
    assert d is not None
    guild = state.guilds[d.guild_id]
    bot, mod, owner = (guild.members[i] for i in (d.bot_id, d.moderator_id, d.owner_id))
    assert outranks(guild, bot, mod)
    assert not outranks(guild, mod, bot)
    assert not outranks(guild, bot, owner)
    assert outranks(guild, owner, bot)


@pytest.mark.parametrize("frames", [1, 2, 4, 7])
def test_zlib_split_keeps_suffix_only_on_last(frames: int) -> None:
    compressor = StreamCompressor("zlib-stream")
    payload = b'{"op":0,"d":"' + bytes(range(65, 91)) * 5000 + b'"}'
    parts = compressor.frames(payload, frames)
    assert len(parts) == frames
    assert [bytes(p).endswith(ZLIB_SUFFIX) for p in parts] == [False] * (frames - 1) + [
        True
    ]
    assert zlib.decompressobj().decompress(b"".join(bytes(p) for p in parts)) == payload


def test_one_context_per_connection() -> None:
    compressor = StreamCompressor("zlib-stream")
    inflater = zlib.decompressobj()
    for text in (b'{"a":1}', b'{"a":1}'):
        (part,) = compressor.frames(text)
        assert inflater.decompress(bytes(part)) == text
    # The second payload continues the first one's stream: alone, it has no
    # zlib header and a fresh inflater refuses it.
    (second,) = compressor.frames(b'{"a":2}')
    with pytest.raises(zlib.error):
        zlib.decompressobj().decompress(bytes(second))


def test_zstd_stream_payloads_decode_in_order() -> None:
    compressor = StreamCompressor("zstd-stream")
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    for text in (b'{"op":10}', b'{"op":0}'):
        (part,) = compressor.frames(text)
        assert decompressor.decompress(bytes(part)) == text


def test_plain_payloads_cannot_be_split() -> None:
    with pytest.raises(ValueError):
        StreamCompressor(None).frames(b"{}", 2)


async def test_snowflake_time_follows_the_clock(autojump_clock: object) -> None:
    clock = SandboxClock(1_800_000_000.0)
    first = clock.snowflake()
    await trio.sleep(10)
    second = clock.snowflake()
    assert snowflake_unix(first) == pytest.approx(1_800_000_000.0, abs=0.002)
    assert snowflake_unix(second) - snowflake_unix(first) == pytest.approx(
        10.0, abs=0.002
    )


async def test_action_log_queries() -> None:
    log = ActionLog()
    log.record("message.delete", reason="spam", message_id=5)
    log.record("member.timeout", user_id=7, until=1.0)
    assert log.of("message.delete", reason="spam")[0]["message_id"] == 5
    assert log.of("message.delete", reason="other") == []
    assert log.last("member.timeout", user_id=7) is not None
    with trio.fail_after(1):
        assert (await log.wait_for("member.timeout"))["until"] == 1.0
    assert log.kinds() == ["message.delete", "member.timeout"]
