"""Transport compression of the gateway's server side.

Discord's ``compress=zlib-stream`` keeps one zlib context for the whole
connection and ends every payload with a sync flush, so each payload's last
frame ends in ``00 00 ff ff``; ``zstd-stream`` keeps one zstd context and
flushes a block per payload. A payload may arrive split over several
websocket messages (Discord's docs: "a single payload may be split across
multiple frames"); :meth:`StreamCompressor.frames` cuts the compressed bytes
into ``n`` messages, keeping the zlib suffix only at the end of the last one.
"""

from __future__ import annotations

import zlib
from typing import Final

import zstandard

ZLIB_SUFFIX: Final = b"\x00\x00\xff\xff"


class StreamCompressor:
    """One connection's compression context.

    Args:
        mode: ``"zlib-stream"``, ``"zstd-stream"`` or ``None`` (plain text).
    """

    def __init__(self, mode: str | None) -> None:
        if mode not in (None, "zlib-stream", "zstd-stream"):
            raise ValueError(f"unknown compression {mode!r}")
        self.mode = mode
        self._zlib = zlib.compressobj() if mode == "zlib-stream" else None
        self._zstd = (
            zstandard.ZstdCompressor().compressobj() if mode == "zstd-stream" else None
        )

    def frames(self, payload: bytes, n: int = 1) -> list[bytes | str]:
        """Encode one payload as ``n`` websocket messages (text when plain).

        Raises:
            ValueError: ``n`` > 1 without compression (plain payloads are
                never split by Discord).
        """
        if self._zlib is not None:
            data = self._zlib.compress(payload) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        elif self._zstd is not None:
            data = self._zstd.compress(payload)
            data += self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        else:
            if n != 1:
                raise ValueError("plain-text payloads cannot be split")
            return [payload.decode()]
        return list(_split(data, n, self._zlib is not None))


def _split(data: bytes, n: int, zlib_mode: bool) -> list[bytes]:
    n = max(1, min(n, len(data)))
    size = -(-len(data) // n)
    cuts = [min(len(data), size * i) for i in range(1, n)]
    if zlib_mode:
        # A non-final part must not end in the suffix, or a correct client
        # would stop there; move such a cut one byte later.
        cuts = [c + 1 if data[:c].endswith(ZLIB_SUFFIX) else c for c in cuts]
    parts, start = [], 0
    for cut in [*cuts, len(data)]:
        parts.append(data[start:cut])
        start = cut
    return [p for p in parts if p]
