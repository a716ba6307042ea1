"""Fixtures and a plain gateway client for the sandbox's own tests."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
import trio
import trio_websocket
import zstandard

from vsb.sandbox import Sandbox, open_sandbox

ZLIB_SUFFIX = b"\x00\x00\xff\xff"
ALL_INTENTS_NONPRIV = (1 << 0) | (1 << 2) | (1 << 9) | (1 << 12)
INTENTS = ALL_INTENTS_NONPRIV | (1 << 1) | (1 << 15)


class GatewayClient:
    """A deliberately plain gateway client: trio-websocket + zlib/zstd."""

    def __init__(
        self, ws: trio_websocket.WebSocketConnection, compress: str | None
    ) -> None:
        self.ws = ws
        self.compress = compress
        self._zlib = zlib.decompressobj()
        self._zstd = zstandard.ZstdDecompressor().decompressobj()
        self._buffer = bytearray()
        self.frames: list[bytes | str] = []

    async def recv(self) -> dict[str, Any]:
        while True:
            message = await self.ws.get_message()
            self.frames.append(message)
            if self.compress is None:
                return orjson.loads(message)  # type: ignore[no-any-return]
            assert isinstance(message, bytes)
            if self.compress == "zstd-stream":
                return orjson.loads(self._zstd.decompress(message))  # type: ignore[no-any-return]
            self._buffer += message
            if not self._buffer.endswith(ZLIB_SUFFIX):
                continue
            data = self._zlib.decompress(bytes(self._buffer))
            self._buffer.clear()
            return orjson.loads(data)  # type: ignore[no-any-return]

    async def recv_dispatch(self, event_type: str) -> dict[str, Any]:
        """Next dispatch of ``event_type`` (other payloads skipped)."""
        while True:
            payload = await self.recv()
            if payload.get("t") == event_type:
                return payload

    async def send(self, payload: dict[str, Any]) -> None:
        await self.ws.send_message(orjson.dumps(payload).decode())

    async def identify(
        self, token: str, intents: int = INTENTS, shard: list[int] | None = None
    ) -> dict[str, Any]:
        await self.send(
            {
                "op": 2,
                "d": {
                    "token": token,
                    "intents": intents,
                    "properties": {"os": "linux", "browser": "t", "device": "t"},
                    "shard": shard or [0, 1],
                },
            }
        )
        return await self.recv_dispatch("READY")


Connect = Callable[..., Awaitable[tuple[GatewayClient, dict[str, Any]]]]


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with open_sandbox() as sandbox:
        yield sandbox


@pytest.fixture
async def connect(sb: Sandbox) -> AsyncIterator[Connect]:
    """``await connect(compress="zlib-stream", url=None, query=None)``:
    a connected :class:`GatewayClient` and the HELLO it read."""
    async with trio.open_nursery() as nursery:

        async def _connect(
            compress: str | None = "zlib-stream",
            url: str | None = None,
            query: str | None = None,
        ) -> tuple[GatewayClient, dict[str, Any]]:
            base = url or sb.gateway_url
            if query is None:
                query = "v=10&encoding=json" + (
                    f"&compress={compress}" if compress else ""
                )
            ws = await trio_websocket.connect_websocket_url(nursery, f"{base}?{query}")
            client = GatewayClient(ws, compress)
            return client, await client.recv()

        yield _connect
        nursery.cancel_scope.cancel()


@pytest.fixture
async def http(sb: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bot {sb.bot_token}"}
    async with httpx.AsyncClient(base_url=sb.api_base, headers=headers) as client:
        yield client
