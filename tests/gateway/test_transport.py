"""The websocket client framing (RFC 6455) against a hand-written peer."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

import pytest
import trio
import trio.testing

from vsb.gateway.transport import (
    ConnectionClosed,
    HandshakeError,
    WebSocket,
    connect,
)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bool = False
) -> bytes:
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    return head + (b"\0\0\0\0" if mask else b"") + payload


async def read_frame(stream: Any, buf: bytearray) -> tuple[int, bytes]:
    """Read one masked client frame; return (opcode, unmasked payload)."""
    while len(buf) < 2:
        buf += await stream.receive_some(65536)
    n = buf[1] & 0x7F
    offset = 2
    if n == 126:
        n, offset = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        n, offset = int.from_bytes(buf[2:10], "big"), 10
    assert buf[1] & 0x80, "client frames must be masked"
    while len(buf) < offset + 4 + n:
        buf += await stream.receive_some(65536)
    key = buf[offset : offset + 4]
    data = bytes(b ^ key[i % 4] for i, b in enumerate(buf[offset + 4 : offset + 4 + n]))
    opcode = buf[0] & 0x0F
    del buf[: offset + 4 + n]
    return opcode, data


async def accept(stream: Any, status: bytes = b"101 Switching Protocols") -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        request += await stream.receive_some(65536)
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key")
    )
    accept_key = base64.b64encode(hashlib.sha1(key + GUID).digest())
    await stream.send_all(
        b"HTTP/1.1 " + status + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key + b"\r\n\r\n"
    )


async def pair(nursery: trio.Nursery, max_size: int = 1 << 20) -> tuple[WebSocket, Any]:
    client, server = trio.testing.memory_stream_pair()
    nursery.start_soon(accept, server)
    ws = await connect(client, "127.0.0.1:1", "/?v=10", max_message_size=max_size)
    return ws, server


async def test_messages_and_fragments(nursery: trio.Nursery) -> None:
    ws, server = await pair(nursery)
    await server.send_all(frame(2, b"one") + frame(2, b"tw", fin=False))
    assert await ws.receive() == b"one"
    await server.send_all(frame(9, b"p") + frame(0, b"o", fin=True))  # ping between
    assert await ws.receive() == b"two"
    assert await read_frame(server, bytearray()) == (10, b"p")  # pong


async def test_large_frame_in_small_pieces(nursery: trio.Nursery) -> None:
    ws, server = await pair(nursery)
    body = bytes(range(256)) * 1000
    data = frame(1, body)

    async def trickle() -> None:
        for i in range(0, len(data), 7000):
            await server.send_all(data[i : i + 7000])

    nursery.start_soon(trickle)
    assert await ws.receive() == body


async def test_send_text_is_masked(nursery: trio.Nursery) -> None:
    ws, server = await pair(nursery)
    await ws.send_text('{"op":1,"d":null}')
    assert await read_frame(server, bytearray()) == (1, b'{"op":1,"d":null}')


async def test_server_close_is_answered_and_socket_closed(
    nursery: trio.Nursery,
) -> None:
    ws, server = await pair(nursery)
    await server.send_all(frame(8, (4000).to_bytes(2, "big") + b"bye"))
    with pytest.raises(ConnectionClosed) as info:
        await ws.receive()
    assert info.value.code == 4000 and info.value.by_server
    buf = bytearray()
    assert await read_frame(server, buf) == (8, (4000).to_bytes(2, "big"))
    # We hung up ourselves: the peer reads end of stream.
    assert await server.receive_some(10) == b""
    assert ws.closed


async def test_our_close_sends_code_then_hangs_up(nursery: trio.Nursery) -> None:
    ws, server = await pair(nursery)

    async def answer() -> None:
        opcode, payload = await read_frame(server, bytearray())
        assert (opcode, payload) == (8, (4000).to_bytes(2, "big"))
        await server.send_all(frame(8, payload))

    nursery.start_soon(answer)
    await ws.close(4000)
    assert ws.closed
    with pytest.raises(ConnectionClosed):
        await ws.send_text("{}")


async def test_eof_without_close_frame(nursery: trio.Nursery) -> None:
    ws, server = await pair(nursery)
    await server.aclose()
    with pytest.raises(ConnectionClosed) as info:
        await ws.receive()
    assert info.value.code is None


@pytest.mark.parametrize(
    ("data", "code"),
    [(frame(2, b"x", mask=True), 1002), (frame(2, b"x" * 200), 1009)],
)
async def test_protocol_violations_close(
    nursery: trio.Nursery, data: bytes, code: int
) -> None:
    ws, server = await pair(nursery, max_size=100)
    await server.send_all(data)
    with pytest.raises(ConnectionClosed):
        await ws.receive()
    assert await read_frame(server, bytearray()) == (8, code.to_bytes(2, "big"))


async def test_refused_upgrade(nursery: trio.Nursery) -> None:
    client, server = trio.testing.memory_stream_pair()
    nursery.start_soon(accept, server, b"403 Forbidden")
    with pytest.raises(HandshakeError, match="403"):
        await connect(client, "h", "/", max_message_size=10)
