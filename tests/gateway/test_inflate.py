"""Transport decompression: zlib-stream and zstd-stream."""

from __future__ import annotations

import json
import random
import zlib

import pytest
import zstandard

from vsb.gateway.inflate import (
    ZLIB_SUFFIX,
    InflateError,
    ZlibStreamInflater,
    ZstdStreamInflater,
    new_inflater,
)


def big_guild_create(size: int = 200_000) -> bytes:
    """About ``size`` bytes of GUILD_CREATE JSON that compresses poorly."""
    rng = random.Random(4)
    members = []
    while sum(len(m) for m in members) < size:
        name = "".join(
            rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(40)
        )
        members.append(
            json.dumps({"user": {"id": str(rng.getrandbits(60)), "username": name}})
        )
    body = (
        '{"op":0,"s":2,"t":"GUILD_CREATE","d":{"id":"1","members":['
        + ",".join(members)
        + "]}}"
    )
    return body.encode()


class ZlibServer:
    """The server side: one compressor per connection, a sync flush per payload."""

    def __init__(self) -> None:
        self._z = zlib.compressobj()

    def payload(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)


def split(data: bytes, parts: int) -> list[bytes]:
    step = len(data) // parts + 1
    return [data[i : i + step] for i in range(0, len(data), step)]


def test_zlib_payload_split_over_four_frames() -> None:
    server, inflater = ZlibServer(), ZlibStreamInflater()
    body = big_guild_create()
    frames = split(server.payload(body), 4)
    assert len(frames) == 4
    assert [f.endswith(ZLIB_SUFFIX) for f in frames] == [False, False, False, True]
    assert [inflater.feed(f) for f in frames[:3]] == [None, None, None]
    assert inflater.feed(frames[3]) == body


def test_zlib_context_carries_across_payloads() -> None:
    server, inflater = ZlibServer(), ZlibStreamInflater()
    first = b'{"op":10,"d":{"heartbeat_interval":41250}}'
    second = b'{"op":11}' + b" " * 10
    assert inflater.feed(server.payload(first)) == first
    # The second payload refers back to the first one's window.
    assert inflater.feed(server.payload(first)) == first
    assert inflater.feed(server.payload(second)) == second


def test_zlib_fresh_context_per_connection() -> None:
    server = ZlibServer()
    server.payload(b'{"op":10}')
    later = server.payload(b'{"op":11}')
    with pytest.raises(InflateError):
        ZlibStreamInflater().feed(later)  # mid-stream data needs the old context


def test_zlib_size_limit() -> None:
    inflater = ZlibStreamInflater(max_size=10)
    with pytest.raises(InflateError):
        for _ in range(3):
            inflater.feed(b"x" * 6)


def test_zstd_stream_gathers_output_and_takes_back_partial() -> None:
    compressor = zstandard.ZstdCompressor().compressobj()
    inflater = ZstdStreamInflater()
    body = big_guild_create(50_000)
    wire = compressor.compress(body) + compressor.flush(
        zstandard.COMPRESSOBJ_FLUSH_BLOCK
    )
    frames = split(wire, 4)
    out = b""
    for frame in frames:
        chunk = inflater.feed(frame)
        if chunk is None:
            continue
        if chunk != body:
            inflater.unread(chunk)  # what the driver does on a truncated decode
        out = chunk
    assert out == body
    nxt = b'{"op":11}'
    wire2 = compressor.compress(nxt) + compressor.flush(
        zstandard.COMPRESSOBJ_FLUSH_BLOCK
    )
    assert inflater.feed(wire2) == nxt


def test_new_inflater_names() -> None:
    assert isinstance(new_inflater("zlib-stream"), ZlibStreamInflater)
    assert isinstance(new_inflater("zstd-stream"), ZstdStreamInflater)
    assert new_inflater("none").feed(b"{}") == b"{}"
    with pytest.raises(ValueError, match="compress"):
        new_inflater("gzip")
