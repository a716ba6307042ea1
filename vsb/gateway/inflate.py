"""Transport decompression of the gateway stream: zlib-stream and zstd-stream.

With ``compress=zlib-stream`` Discord deflates the whole connection as one
zlib stream and ends each payload with a ``Z_SYNC_FLUSH``, whose output ends
in ``00 00 ff ff``. A payload may span several websocket messages, so data is
buffered until a message ends with that suffix, and only then inflated; the
inflater's whole output for that input is one payload ("Gateway > Transport
Compression"). ``zstd-stream`` works the same way with one zstd stream per
connection and no suffix: a message may hold a partial payload, so the driver
hands back data that does not parse yet with :meth:`Inflater.unread`.

Each connection needs a fresh inflater: the compression context starts over
with every new websocket.
"""

from __future__ import annotations

import zlib
from typing import Final, Protocol

ZLIB_SUFFIX: Final = b"\x00\x00\xff\xff"


class InflateError(ValueError):
    """The compressed stream is corrupt or the buffered payload is too large."""


class Inflater(Protocol):
    """One connection's decompression context."""

    def feed(self, data: bytes) -> bytes | None:
        """Add one websocket message; return a complete payload, or None."""
        ...

    def unread(self, data: bytes) -> None:
        """Give back output that turned out to be an incomplete payload."""
        ...


class ZlibStreamInflater:
    """zlib-stream: buffer until the ``00 00 ff ff`` suffix, then inflate.

    Args:
        max_size: the most compressed bytes buffered for one payload.
    """

    def __init__(self, max_size: int = 1 << 30) -> None:
        self._inflate = zlib.decompressobj().decompress
        self._parts: list[bytes] = []
        self._size = 0
        self.max_size = max_size

    def feed(self, data: bytes) -> bytes | None:
        """Add one websocket message; return a complete payload, or None.

        Raises:
            InflateError: corrupt data, or more than ``max_size`` buffered.
        """
        if data[-4:] != ZLIB_SUFFIX:
            self._size += len(data)
            if self._size > self.max_size:
                raise InflateError("a zlib-stream payload exceeds the size limit")
            self._parts.append(data)
            return None
        if self._parts:
            self._parts.append(data)
            data = b"".join(self._parts)
            self._parts.clear()
            self._size = 0
        try:
            # Without max_length, decompress() returns all the output the
            # input produces, so nothing waits in unconsumed_tail.
            return self._inflate(data)
        except zlib.error as exc:
            raise InflateError(f"corrupt zlib-stream data: {exc}") from exc

    def unread(self, data: bytes) -> None:
        """zlib-stream payloads are whole once the suffix arrived."""
        raise InflateError("a zlib-stream payload ended in the middle of a JSON value")


class ZstdStreamInflater:
    """zstd-stream: one zstd stream per connection, output gathered per message."""

    def __init__(self, max_size: int = 1 << 30) -> None:
        import zstandard  # imported here: only connections asking for zstd need it

        self._zstd_error = zstandard.ZstdError
        self._decompress = zstandard.ZstdDecompressor().decompressobj().decompress
        self._pending = b""
        self.max_size = max_size

    def feed(self, data: bytes) -> bytes | None:
        """Add one websocket message; return the output so far, or None.

        Raises:
            InflateError: corrupt data, or more than ``max_size`` pending.
        """
        try:
            out = self._decompress(data)
        except self._zstd_error as exc:
            raise InflateError(f"corrupt zstd-stream data: {exc}") from exc
        if self._pending:
            out = self._pending + out
            self._pending = b""
        return out or None

    def unread(self, data: bytes) -> None:
        """Keep ``data`` and put it in front of the next message's output."""
        if len(data) > self.max_size:
            raise InflateError("a zstd-stream payload exceeds the size limit")
        self._pending = data


class PlainInflater:
    """No transport compression: each websocket message is one payload."""

    def feed(self, data: bytes) -> bytes | None:
        """Return ``data`` unchanged."""
        return data

    def unread(self, data: bytes) -> None:
        """Plain JSON messages are always whole."""
        raise InflateError("a gateway message held an incomplete JSON payload")


def new_inflater(compress: str) -> Inflater:
    """A fresh context for one connection with ``compress`` (query value).

    Raises:
        ValueError: ``compress`` is not ``zlib-stream``, ``zstd-stream`` or
            ``none``.
    """
    if compress == "zlib-stream":
        return ZlibStreamInflater()
    if compress == "zstd-stream":
        return ZstdStreamInflater()
    if compress == "none":
        return PlainInflater()
    raise ValueError(
        f"compress must be 'zlib-stream', 'zstd-stream' or 'none', not {compress!r}"
    )
