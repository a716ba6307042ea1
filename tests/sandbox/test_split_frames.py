"""The case to carry: a ~200 KB GUILD_CREATE as 4 binary frames, only the
last ending in ``00 00 ff ff``. A correct client (buffer to the suffix, keep
all inflater output) passes; a client parsing before the suffix fails, and so
does one that keeps only the first chunk of inflater output."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import orjson
import pytest
import trio
import trio_websocket

from vsb.sandbox import Sandbox, open_sandbox

SUFFIX = b"\x00\x00\xff\xff"


@pytest.fixture
async def big() -> AsyncIterator[Sandbox]:
    async with open_sandbox() as sb:
        sb.state.add_members(sb.default.guild_id, 60, prefix="member_with_a_long_name_")
        guild = sb.state.guilds[sb.default.guild_id]
        for index in range(400):
            sb.state.add_channel(guild.id, f"channel-{index}-" + "x" * 300)
        sb.faults.split_frames("GUILD_CREATE", frames=4)
        yield sb


async def _frames_until_guild_create(sb: Sandbox, nursery: trio.Nursery) -> list[bytes]:
    ws = await trio_websocket.connect_websocket_url(
        nursery, sb.gateway_url + "?v=10&encoding=json&compress=zlib-stream"
    )
    frames = [await ws.get_message()]  # HELLO
    d = {"token": sb.bot_token, "intents": 1, "large_threshold": 250}
    await ws.send_message(orjson.dumps({"op": 2, "d": d}).decode())
    frames.append(await ws.get_message())  # READY
    for _ in range(4):
        frames.append(await ws.get_message())
    return frames  # type: ignore[return-value]


async def test_correct_client_reassembles_the_split_guild_create(big: Sandbox) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            frames = await _frames_until_guild_create(big, nursery)
            nursery.cancel_scope.cancel()
    parts = frames[2:]
    assert len(parts) == 4
    assert all(isinstance(p, bytes) for p in parts)
    assert [p.endswith(SUFFIX) for p in parts] == [False, False, False, True]

    inflater = zlib.decompressobj()
    for frame in frames[:2]:
        inflater.decompress(frame)
    buffer = b"".join(parts)
    payload = orjson.loads(inflater.decompress(buffer) + inflater.flush())
    assert payload["t"] == "GUILD_CREATE"
    raw = orjson.dumps(payload)
    assert 150_000 <= len(raw) <= 400_000
    assert len(payload["d"]["channels"]) == 403


async def test_client_parsing_before_the_suffix_fails(big: Sandbox) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            frames = await _frames_until_guild_create(big, nursery)
            nursery.cancel_scope.cancel()
    inflater = zlib.decompressobj()
    for frame in frames[:2]:
        inflater.decompress(frame)
    with pytest.raises(orjson.JSONDecodeError):
        # The naive client treats every frame as one whole payload.
        orjson.loads(inflater.decompress(frames[2]))


async def test_client_keeping_only_first_inflater_chunk_fails(big: Sandbox) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            frames = await _frames_until_guild_create(big, nursery)
            nursery.cancel_scope.cancel()
    inflater = zlib.decompressobj()
    for frame in frames[:2]:
        inflater.decompress(frame)
    # Reads at most 64 KiB of output, as a client that takes only the first
    # chunk of a bounded inflate loop would.
    first_chunk = inflater.decompress(b"".join(frames[2:]), 65_536)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(first_chunk)
