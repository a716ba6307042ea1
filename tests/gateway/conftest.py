"""A small scripted gateway server on 127.0.0.1 for the shard driver tests.

It speaks just enough of Discord's gateway (HELLO, IDENTIFY -> READY,
RESUME -> replay + RESUMED or INVALID_SESSION, heartbeat ACKs, zlib-stream
with frames split on request) and records what the client did, so each test
can script one scene.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
import trio_websocket
import zstandard


@dataclasses.dataclass
class Conn:
    """One client connection as the server saw it."""

    index: int
    path: str
    ws: trio_websocket.WebSocketConnection
    opened_at: float
    received: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    heartbeats: int = 0
    heartbeat_times: list[float] = dataclasses.field(default_factory=list)
    held_acks: int = 0
    hold_acks: bool = False
    client_close_code: int | None = None
    closed_at: float | None = None
    compressor: Any = dataclasses.field(default_factory=zlib.compressobj)

    def ops(self) -> list[int]:
        return [p["op"] for p in self.received]


class FakeGateway:
    """Scriptable gateway; every field may be changed by a test."""

    def __init__(self) -> None:
        self.port = 0
        self.interval_ms = 41_250
        self.connections: list[Conn] = []
        self.sessions: dict[str, list[dict[str, Any]]] = {}  # session -> events
        self.seq: dict[str, int] = {}
        self.ready_seq = 1
        # (conn, heartbeat number on that connection) -> whether to ACK it
        self.ack: Callable[[Conn, int], bool] = lambda conn, n: True
        # called after READY / RESUMED with the connection
        self.after_ready: Callable[[Conn], Any] | None = None
        self.connected = trio.Event()
        self.shards = 1
        self.session_start_limit = {
            "total": 1000,
            "remaining": 1000,
            "reset_after": 0,
            "max_concurrency": 1,
        }
        self.identify_times: list[tuple[float, int]] = []  # (time, shard id)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def gateway_bot(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "shards": self.shards,
            "session_start_limit": dict(self.session_start_limit),
        }

    # -- sending

    async def send(
        self, conn: Conn, payload: dict[str, Any], *, split: int = 1
    ) -> None:
        raw = json.dumps(payload).encode()
        if "compress=zstd-stream" in conn.path:
            data = conn.compressor.compress(raw)
            data += conn.compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        elif "compress=zlib-stream" in conn.path:
            data = conn.compressor.compress(raw)
            data += conn.compressor.flush(zlib.Z_SYNC_FLUSH)
        else:
            await conn.ws.send_message(raw.decode())
            return
        step = len(data) // split + 1
        for i in range(0, len(data), step):
            await conn.ws.send_message(data[i : i + step])

    async def dispatch(
        self, conn: Conn, session: str, t: str, d: Any, **kw: Any
    ) -> None:
        self.seq[session] = self.seq.get(session, 0) + 1
        payload = {"op": 0, "s": self.seq[session], "t": t, "d": d}
        self.sessions[session].append(payload)
        await self.send(conn, payload, **kw)

    # -- serving

    async def handler(self, request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        conn = Conn(len(self.connections), request.path, ws, trio.current_time())
        if "compress=zstd-stream" in conn.path:
            conn.compressor = zstandard.ZstdCompressor().compressobj()
        self.connections.append(conn)
        self.connected.set()
        await self.send(conn, {"op": 10, "d": {"heartbeat_interval": self.interval_ms}})
        try:
            while True:
                payload = json.loads(await ws.get_message())
                conn.received.append(payload)
                await self.on_payload(conn, payload)
        except trio_websocket.ConnectionClosed as exc:
            conn.client_close_code = exc.reason.code if exc.reason else None
            conn.closed_at = trio.current_time()
            self.forget_on_normal_close(conn)

    def forget_on_normal_close(self, conn: Conn) -> None:
        # Discord ends the session when the client closes with 1000 or 1001.
        if conn.client_close_code in (1000, 1001):
            for p in conn.received:
                if p["op"] in (2, 6):
                    sid = p["d"].get("session_id") or f"S{conn.index}"
                    self.sessions.pop(sid, None)

    async def on_payload(self, conn: Conn, payload: dict[str, Any]) -> None:
        op = payload["op"]
        if op == 1:
            conn.heartbeats += 1
            conn.heartbeat_times.append(trio.current_time())
            if conn.hold_acks:
                conn.held_acks += 1  # queued behind a payload being sent
            elif self.ack(conn, conn.heartbeats):
                await self.send(conn, {"op": 11})
        elif op == 2:
            self.identify_times.append((trio.current_time(), payload["d"]["shard"][0]))
            session = f"S{conn.index}"
            self.sessions[session] = []
            self.seq[session] = self.ready_seq - 1
            ready = {
                "v": 10,
                "user": {"id": "10", "username": "bot"},
                "session_id": session,
                "resume_gateway_url": f"{self.url}r{conn.index}",
                "guilds": [],
            }
            await self.dispatch(conn, session, "READY", ready)
            if self.after_ready:
                await self.after_ready(conn)
        elif op == 6:
            await self.resume(conn, payload["d"])

    async def resume(self, conn: Conn, d: dict[str, Any]) -> None:
        events = self.sessions.get(d["session_id"])
        if events is None:
            await self.send(conn, {"op": 9, "d": False})
            return
        for event in events:
            if event["s"] > (d["seq"] or 0):
                await self.send(conn, event)
        await self.dispatch(conn, d["session_id"], "RESUMED", {})
        if self.after_ready:
            await self.after_ready(conn)


@pytest.fixture
async def gateway(nursery: trio.Nursery) -> AsyncIterator[FakeGateway]:
    fake = FakeGateway()
    server = await nursery.start(
        trio_websocket.serve_websocket, fake.handler, "127.0.0.1", 0, None
    )
    fake.port = server.port
    yield fake
