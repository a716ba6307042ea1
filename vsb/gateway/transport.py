"""A client websocket (RFC 6455) read inline by the shard's own task.

This module owns the wire below the gateway protocol: the HTTP upgrade, frame
parsing and masking, ping/pong and the close handshake, on a trio stream.

Why not trio-websocket for receiving: it parses frames in a reader task and
hands every message to ``get_message()`` over a memory channel, two task
switches per message. Measured on the gateway benchmark, that hand-off and
its per-event bookkeeping cost about as much as all of our decoding, caching
and dispatch together (see ``bench/gateway/README.md``). Here the shard's read
loop parses frames straight out of its receive buffer; it yields to trio only
when the buffer runs dry (``receive_some`` is a checkpoint), so the heartbeat
task keeps its schedule while a large message is still arriving.

Invariants: one task receives; sends from several tasks are serialised by a
lock; after a close frame from the server we answer it and close the TCP
stream ourselves (RFC 6455 section 7.1.1 lets the client do so once the
close handshake is done).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from typing import Final

import trio

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_OP_CONTINUATION, _OP_TEXT, _OP_BINARY = 0x0, 0x1, 0x2
_OP_CLOSE, _OP_PING, _OP_PONG = 0x8, 0x9, 0xA
_RECEIVE_BYTES: Final = 1 << 16
_RECEIVE_BYTES_MAX: Final = 1 << 20
_MAX_HEADER_BYTES: Final = 16_384


class ConnectionClosed(Exception):
    """The websocket is closed.

    Attributes:
        code: the close code from the server's close frame; None when the TCP
            connection ended without one (RFC 6455's 1006).
        by_server: True when the server started the close.
    """

    def __init__(self, code: int | None, *, by_server: bool) -> None:
        super().__init__(f"websocket closed (code {code})")
        self.code = code
        self.by_server = by_server


class HandshakeError(Exception):
    """The server refused or botched the websocket upgrade."""


class _ProtocolViolation(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class WebSocket:
    """One client websocket connection over an open trio stream.

    Use :func:`connect`; then :meth:`receive` from one task, :meth:`send_text`
    from any, and :meth:`close` once.
    """

    def __init__(
        self, stream: trio.abc.Stream, buffered: bytes, max_message_size: int
    ) -> None:
        self._stream = stream
        self._buf = bytearray(buffered)
        self._pos = 0
        self._needed = 0
        self._fragments: list[bytes] = []
        self._fragments_size = 0
        self._send_lock = trio.Lock()
        self.max_message_size = max_message_size
        self.close_code: int | None = None
        self.closed = False
        self._close_sent = False

    async def receive(self) -> bytes:
        """The next complete message (text or binary) as bytes.

        Pings are answered and a close frame is answered on the way.

        Raises:
            ConnectionClosed: the server closed, the TCP connection ended, or
                the server broke the protocol (we then closed with 1002/1009).
        """
        while True:
            try:
                frame = self._next_frame()
            except _ProtocolViolation as violation:
                await self.close(violation.code, timeout=0)
                raise ConnectionClosed(None, by_server=False) from None
            if frame is None:
                await self._fill()
                continue
            fin, opcode, payload = frame
            if opcode >= _OP_CLOSE:
                await self._control(opcode, payload)
                continue
            if fin and not self._fragments:
                return payload
            message = self._add_fragment(fin, payload)
            if message is not None:
                return message

    async def send_text(self, text: str) -> None:
        """Send one text message.

        Raises:
            ConnectionClosed: the connection is closed or broke while sending.
        """
        if self._close_sent or self.closed:
            raise ConnectionClosed(self.close_code, by_server=False)
        await self._send_frame(_OP_TEXT, text.encode())

    async def close(self, code: int, timeout: float = 5.0) -> None:
        """Send a close frame with ``code``, wait a little for the answer, hang up.

        Safe to call more than once and after the server closed.
        """
        if not self.closed and not self._close_sent:
            try:
                await self._send_close(code)
                with trio.move_on_after(timeout):
                    while True:
                        await self.receive()
            except ConnectionClosed:
                pass
        await self.aclose_stream()

    async def aclose_stream(self) -> None:
        """Close the TCP stream now (never raises for a broken stream)."""
        self.closed = True
        with trio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    # -- receiving

    async def _fill(self) -> None:
        buf = self._buf
        if self._pos:
            if self._pos > _RECEIVE_BYTES_MAX:
                # After a large message, a fresh buffer gives its memory back.
                self._buf = buf = buf[self._pos :]
            else:
                del buf[: self._pos]
            self._needed -= self._pos
            self._pos = 0
        want = min(max(_RECEIVE_BYTES, self._needed - len(buf)), _RECEIVE_BYTES_MAX)
        try:
            data = await self._stream.receive_some(want)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            await self.aclose_stream()
            raise ConnectionClosed(None, by_server=True) from exc
        if not data:
            await self.aclose_stream()
            raise ConnectionClosed(self.close_code, by_server=True)
        buf += data

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        """The next whole frame in the buffer, or None (RFC 6455 section 5.2)."""
        buf, pos = self._buf, self._pos
        size = len(buf) - pos
        if size < 2:
            return None
        b0, b1 = buf[pos], buf[pos + 1]
        length = b1 & 0x7F
        start = pos + 2
        if length == 126:
            if size < 4:
                return None
            length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            start = pos + 4
        elif length == 127:
            if size < 10:
                return None
            length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            start = pos + 10
        if b1 & 0x80 or b0 & 0x70:
            # Servers must not mask; no extension was negotiated (5.1, 5.2).
            raise _ProtocolViolation(1002)
        if length > self.max_message_size:
            raise _ProtocolViolation(1009)
        end = start + length
        if end > len(buf):
            self._needed = end
            return None
        self._pos = end
        return bool(b0 & 0x80), b0 & 0x0F, bytes(buf[start:end])

    def _add_fragment(self, fin: bool, payload: bytes) -> bytes | None:
        self._fragments.append(payload)
        self._fragments_size += len(payload)
        if self._fragments_size > self.max_message_size:
            raise _ProtocolViolation(1009)
        if not fin:
            return None
        message = b"".join(self._fragments)
        self._fragments.clear()
        self._fragments_size = 0
        return message

    async def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == _OP_PING:
            await self._send_frame(_OP_PONG, payload)
        elif opcode == _OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.close_code = code
            if not self._close_sent:
                try:
                    await self._send_close(code)
                except ConnectionClosed:
                    pass
            # The close handshake is complete from our side: hang up now
            # rather than wait for the server's FIN (RFC 6455 section 7.1.1).
            await self.aclose_stream()
            raise ConnectionClosed(code, by_server=True)
        # An unsolicited pong is allowed and ignored (section 5.5.3).

    # -- sending

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        frame = _masked_frame(opcode, payload)
        try:
            async with self._send_lock:
                await self._stream.send_all(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionClosed(self.close_code, by_server=True) from exc

    async def _send_close(self, code: int) -> None:
        self._close_sent = True
        await self._send_frame(_OP_CLOSE, code.to_bytes(2, "big"))


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """A final client frame, masked as RFC 6455 section 5.3 requires."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = os.urandom(4)
    if not n:
        return head + mask
    key = (mask * (n // 4 + 1))[:n]
    body = int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")
    return head + mask + body.to_bytes(n, "big")


async def connect(
    stream: trio.abc.Stream,
    host: str,
    resource: str,
    *,
    max_message_size: int,
) -> WebSocket:
    """Upgrade ``stream`` to a websocket (RFC 6455 section 4.1).

    Args:
        stream: an open TCP or TLS stream to the server.
        host: the ``Host`` header value.
        resource: path and query, e.g. ``/?v=10&encoding=json``.
        max_message_size: the largest message accepted.

    Raises:
        HandshakeError: the server did not answer 101 with the right accept key.
    """
    key = base64.b64encode(os.urandom(16))
    request = (
        f"GET {resource} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\n\r\n"
    )
    try:
        await stream.send_all(request.encode())
        head, rest = await _read_head(stream)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise HandshakeError("the connection broke during the upgrade") from exc
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or status[1] != "101":
        raise HandshakeError(f"the server refused the upgrade: {lines[0][:100]}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    expected = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
    if headers.get("sec-websocket-accept") != expected:
        raise HandshakeError("the server's Sec-WebSocket-Accept does not match")
    return WebSocket(stream, rest, max_message_size)


async def _read_head(stream: trio.abc.Stream) -> tuple[bytes, bytes]:
    data = bytearray()
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_HEADER_BYTES:
            raise HandshakeError("the upgrade response headers are too long")
        chunk = await stream.receive_some(_RECEIVE_BYTES)
        if not chunk:
            raise HandshakeError("the server hung up during the upgrade")
        data += chunk
    end = data.index(b"\r\n\r\n")
    return bytes(data[:end]), bytes(data[end + 4 :])
