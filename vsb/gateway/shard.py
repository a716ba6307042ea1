"""The trio driver of one shard: websocket, timers, reconnects, dispatch.

This module owns the I/O around :class:`vsb.gateway.protocol.ShardProtocol`:
it opens the TCP stream and the websocket (trio-websocket), inflates and
decodes what arrives, runs the heartbeat timer, carries out the protocol's
actions, and hands every dispatch to ``on_dispatch``. Gateway rules live in
the protocol, not here.

Per connection there are three tasks in one nursery: trio-websocket's reader
(it assembles websocket messages), the shard's read loop (inflate, decode,
dispatch inline), and the timer (heartbeats and member-request timeouts).
The timer is its own task so heartbeats stay on schedule while a large
GUILD_CREATE is still arriving in many frames.
"""

from __future__ import annotations

import collections
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import msgspec
import trio

from vsb import models
from vsb.gateway.errors import GatewayFatalError, MemberRequestTimeout, ShardNotReady
from vsb.gateway.inflate import InflateError, Inflater, new_inflater
from vsb.gateway.protocol import (
    RESUMABLE_CLOSE,
    Action,
    Fatal,
    Identify,
    MemberChunks,
    Reconnect,
    Send,
    Session,
    ShardProtocol,
    ShardState,
)
from vsb.gateway.transport import ConnectionClosed, HandshakeError, WebSocket, connect
from vsb.secret import Secret

log = logging.getLogger(__name__)

DispatchCallback = Callable[[int, str, Any], Awaitable[None]]
"""``async def on_dispatch(shard_id, event_type, event)``."""

#: The biggest websocket message accepted: a large guild's GUILD_CREATE is
#: tens of MiB of JSON before compression.
MAX_MESSAGE_SIZE = 1 << 30
#: Seconds allowed for TCP + websocket handshake, and for our close handshake.
CONNECT_TIMEOUT = 30.0
CLOSE_TIMEOUT = 2.0


class IdentifyLock(Protocol):
    """Grants IDENTIFY turns: one per ``max_concurrency`` bucket per 5 s.

    The in-process implementation is
    :class:`vsb.gateway.sharding.LocalIdentifyLock`; one shared across
    processes can replace it.
    """

    def configure(
        self, *, max_concurrency: int, total: int, remaining: int, reset_after: float
    ) -> None:
        """Take the values of ``GET /gateway/bot`` (``reset_after`` in seconds)."""
        ...

    async def acquire(self, shard_id: int) -> None:
        """Return when ``shard_id`` may send IDENTIFY now."""
        ...


class SessionStore(Protocol):
    """Keeps sessions so a restarted process can resume instead of identify."""

    async def load(self, shard_id: int) -> Session | None:
        """The stored session of ``shard_id``, or None."""
        ...

    async def save(self, shard_id: int, session: Session | None) -> None:
        """Store (or with None, clear) the session of ``shard_id``."""
        ...


class Shard:
    """One shard's connection to the gateway, reconnecting until stopped.

    Args:
        shard_id: this shard's id.
        shard_count: total shards.
        token: the bot token.
        intents: the gateway intents bitfield.
        gateway_url: the URL from ``GET /gateway/bot``.
        on_dispatch: called inline with every decoded dispatch.
        identify_lock: grants IDENTIFY turns.
        compress: ``zlib-stream``, ``zstd-stream`` or ``none``.
        session_store: where sessions are loaded from and saved to.
        large_threshold: IDENTIFY's ``large_threshold``.
        presence: an initial presence for IDENTIFY.
        rng: randomness for jitter and backoff (seed it in tests).
    """

    def __init__(
        self,
        shard_id: int,
        shard_count: int,
        *,
        token: Secret,
        intents: int,
        gateway_url: str,
        on_dispatch: DispatchCallback,
        identify_lock: IdentifyLock,
        compress: str = "zlib-stream",
        session_store: SessionStore | None = None,
        large_threshold: int = 250,
        presence: dict[str, Any] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        new_inflater(compress)  # validates the name before any connection
        self.shard_id = shard_id
        self.gateway_url = gateway_url
        self.compress = compress
        self._on_dispatch = on_dispatch
        self._identify_lock = identify_lock
        self._session_store = session_store
        self.protocol = ShardProtocol(
            token,
            intents,
            shard_id=shard_id,
            shard_count=shard_count,
            large_threshold=large_threshold,
            presence=presence,
            rng=rng,
        )
        self._encode = msgspec.json.Encoder().encode
        self._decode_any = msgspec.json.Decoder().decode
        self._ws: WebSocket | None = None
        self._wake = trio.Event()
        self._chunk_waiters: dict[str, _ChunkWaiter] = {}
        self.connections = 0
        self.decode_errors = 0
        self.last_close_code: int | None = None
        self.reconnects: collections.Counter[str] = collections.Counter()
        self.events: dict[str, int] = {}

    # -- public API

    @property
    def latency(self) -> float | None:
        """Seconds between the last heartbeat and its ACK (None before one)."""
        return self.protocol.latency

    def stats(self) -> dict[str, Any]:
        """This shard's state and counters as plain data."""
        proto = self.protocol
        session = proto.session
        return {
            "shard_id": self.shard_id,
            "state": proto.state.value,
            "session_id": session.session_id if session else None,
            "seq": proto.seq,
            "latency_s": proto.latency,
            "last_ack_age_s": (
                trio.current_time() - proto.last_ack_at
                if proto.last_ack_at is not None
                else None
            ),
            "heartbeat_interval_s": proto.heartbeat_interval,
            "connections": self.connections,
            "last_close_code": self.last_close_code,
            "reconnects": dict(self.reconnects),
            "events": dict(self.events),
            "decode_errors": self.decode_errors,
        }

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Connect and stay connected until cancelled or fatally closed.

        Raises:
            GatewayFatalError: Discord closed with 4004 or 4010-4014.
        """
        if self._session_store is not None:
            stored = await self._session_store.load(self.shard_id)
            if stored is not None:
                self.protocol.restore(stored)
        task_status.started()
        try:
            await self._reconnect_forever()
        finally:
            if self.protocol.state is not ShardState.STOPPED:
                # Cancelled between connections (backoff, connecting).
                with trio.CancelScope(shield=True):
                    await self._stop(None)

    async def _reconnect_forever(self) -> None:
        while True:
            end = await self._connection()
            if isinstance(end, Fatal):
                log.error(
                    "gateway.fatal_close",
                    extra={"shard_id": self.shard_id, "close_code": end.close_code},
                )
                raise GatewayFatalError(end.close_code, self.shard_id, end.message)
            self.reconnects[end.reason] += 1
            log.warning(
                "gateway.reconnect",
                extra={
                    "shard_id": self.shard_id,
                    "reason": end.reason,
                    "resume": end.resume,
                    "retry_after": round(end.delay, 3),
                },
            )
            await trio.sleep(end.delay)

    async def send(self, payload: dict[str, Any]) -> None:
        """Send a payload within the send limit (waits for a free slot).

        Raises:
            ShardNotReady: the shard has no identified connection.
        """
        ws = self._ws
        if ws is None or self.protocol.state is not ShardState.CONNECTED:
            raise ShardNotReady(f"shard {self.shard_id} is not connected")
        await self._send(ws, payload, heartbeat=False)

    async def request_guild_members(
        self, guild_id: int, *, timeout: float = 30.0, **options: Any
    ) -> list[Any]:
        """Send REQUEST_GUILD_MEMBERS and wait for every chunk of the answer.

        ``options`` are those of
        :meth:`vsb.gateway.protocol.ShardProtocol.request_guild_members`.

        Returns:
            The GUILD_MEMBERS_CHUNK events in ``chunk_index`` order (each was
            also dispatched as usual).

        Raises:
            MemberRequestTimeout: not every chunk came within ``timeout``.
            ShardNotReady: the shard is not connected.
        """
        nonce, send = self.protocol.request_guild_members(
            guild_id, trio.current_time(), timeout=timeout, **options
        )
        waiter = _ChunkWaiter()
        self._chunk_waiters[nonce] = waiter
        self._wake.set()
        try:
            await self.send(send.payload)
            await waiter.done.wait()
        finally:
            self._chunk_waiters.pop(nonce, None)
            self.protocol.chunks.cancel(nonce)
        if isinstance(waiter.result, MemberRequestTimeout):
            raise waiter.result
        assert waiter.result is not None
        return list(waiter.result.chunks)

    async def update_presence(self, **presence: Any) -> None:
        """Send PRESENCE_UPDATE; the presence is also kept for later IDENTIFYs."""
        send = self.protocol.update_presence(**presence)
        if self._ws is not None and self.protocol.state is ShardState.CONNECTED:
            await self.send(send.payload)

    # -- one connection

    async def _connection(self) -> Reconnect | Fatal:
        """Open one connection, serve it, close it; say what comes next."""
        proto = self.protocol
        url = proto.connect(trio.current_time()) or self.gateway_url
        self.connections += 1
        log.info(
            "gateway.connect",
            extra={"shard_id": self.shard_id, "resume": proto.session is not None},
        )
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream, host, resource = await _open_stream(url, self.compress)
        except (OSError, trio.TooSlowError) as exc:
            return self._lost(exc)
        try:
            try:
                with trio.fail_after(CONNECT_TIMEOUT):
                    ws = await connect(
                        stream, host, resource, max_message_size=MAX_MESSAGE_SIZE
                    )
            except (HandshakeError, trio.TooSlowError) as exc:
                return self._lost(exc)
            end = await self._serve(ws)
            await self._close(ws, end)
            return end
        finally:
            self._ws = None
            # Whoever closed, the TCP stream is ours to close.
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _serve(self, ws: WebSocket) -> Reconnect | Fatal:
        """Run the read loop and the timer until one of them ends the connection."""
        self._ws = ws
        ended: list[Reconnect | Fatal] = []
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._timer, ws, ended, nursery.cancel_scope)
                ended.append(await self._read_loop(ws, new_inflater(self.compress)))
                nursery.cancel_scope.cancel()
        except BaseException:
            if self.protocol.state is not ShardState.STOPPED:
                await self._shutdown(ws)
            raise
        return ended[0]

    async def _close(self, ws: WebSocket, end: Reconnect | Fatal) -> None:
        if ws.closed:
            return
        code = end.close_code if isinstance(end, Reconnect) else 1000
        # A zombie server never answers our close frame: do not wait long.
        await ws.close(code, timeout=CLOSE_TIMEOUT)

    async def _shutdown(self, ws: WebSocket) -> None:
        """Cancelled from outside: close for good, or resumably with a store."""
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
            await self._stop(ws)

    async def _stop(self, ws: WebSocket | None) -> None:
        """Stop the shard; with a session store, keep the session resumable."""
        # Known limitation: the session is stored here only, on a clean stop;
        # after a crash the next process identifies anew.
        if self._session_store is None:
            code = self.protocol.shutdown()
        else:
            # Discord keeps a session closed with a code other than 1000/1001.
            code = RESUMABLE_CLOSE
            try:
                await self._session_store.save(self.shard_id, self.protocol.suspend())
            except Exception as exc:
                log.error(
                    "gateway.session_save_failed",
                    extra={"shard_id": self.shard_id, "error": type(exc).__name__},
                )
        if ws is not None:
            await ws.close(code, timeout=CLOSE_TIMEOUT)
        log.info("gateway.shutdown", extra={"shard_id": self.shard_id})

    def _lost(self, exc: BaseException) -> Reconnect | Fatal:
        log.warning(
            "gateway.connect_failed",
            extra={"shard_id": self.shard_id, "error": f"{type(exc).__name__}: {exc}"},
        )
        end = self.protocol.closed(None, trio.current_time())
        assert end is not None
        return end

    # -- the read loop (hot path)

    async def _read_loop(self, ws: WebSocket, inflater: Inflater) -> Reconnect | Fatal:
        proto = self.protocol
        decode_frame = models.decode_frame
        plain = self.compress == "none"
        while True:
            try:
                message = await ws.receive()
            except ConnectionClosed as exc:
                return self._closed_by_server(exc)
            if plain:
                payload = message
            else:
                try:
                    inflated = inflater.feed(message)
                except InflateError as exc:
                    return self._bad_stream(exc)
                if inflated is None:
                    continue
                payload = inflated
            try:
                frame = decode_frame(payload)
            except msgspec.DecodeError as exc:
                # Known limitation: zstd-stream has no end-of-payload marker, so
                # a split payload shows as a truncated decode and is decoded
                # again when the rest arrives; slow only if every one is split.
                if "truncated" in str(exc) and self.compress == "zstd-stream":
                    inflater.unread(payload)
                    continue
                return self._bad_stream(exc)
            if frame.op == 0:
                await self._dispatch(frame)
                continue
            data = self._decode_any(frame.d) if frame.d is not None else None
            log.debug(
                "gateway.receive", extra={"shard_id": self.shard_id, "op": frame.op}
            )
            end = await self._perform(
                ws, proto.receive(frame.op, data, trio.current_time())
            )
            if end is not None:
                return end

    async def _dispatch(self, frame: models.GatewayFrame) -> None:
        """Handle one DISPATCH: sequence, decode, session events, callback."""
        event_type = frame.t or ""
        self.protocol.dispatched(frame.s)
        events = self.events
        events[event_type] = events.get(event_type, 0) + 1
        try:
            event = models.decode_event(event_type, frame.d or b"null")
        except msgspec.MsgspecError as exc:
            # A malformed event is logged and skipped; the shard goes on.
            self.decode_errors += 1
            log.warning(
                "gateway.event_decode_failed",
                extra={
                    "shard_id": self.shard_id,
                    "event_type": event_type,
                    "seq": frame.s,
                    "error": str(exc),
                },
            )
            return
        if event_type in _SESSION_EVENTS:
            self._session_event(event_type, event)
        try:
            await self._on_dispatch(self.shard_id, event_type, event)
        except trio.Cancelled:
            raise
        except Exception as exc:
            log.exception(
                "gateway.dispatch_failed",
                extra={
                    "shard_id": self.shard_id,
                    "event_type": event_type,
                    "seq": frame.s,
                    "error": type(exc).__name__,
                },
            )

    def _session_event(self, event_type: str, event: Any) -> None:
        proto = self.protocol
        now = trio.current_time()
        if event_type == "READY":
            proto.ready(
                _field(event, "session_id"), _field(event, "resume_gateway_url"), now
            )
            log.info(
                "gateway.ready", extra={"shard_id": self.shard_id, "seq": proto.seq}
            )
        elif event_type == "RESUMED":
            proto.resumed(now)
            log.info(
                "gateway.resumed", extra={"shard_id": self.shard_id, "seq": proto.seq}
            )
        elif event_type == "GUILD_MEMBERS_CHUNK":
            done = proto.chunks.feed(
                _field(event, "nonce"),
                _field(event, "chunk_index"),
                _field(event, "chunk_count"),
                event,
            )
            if done is not None and done.nonce in self._chunk_waiters:
                self._chunk_waiters[done.nonce].finish(done)

    # -- actions and sends

    async def _perform(
        self, ws: WebSocket, actions: list[Action]
    ) -> Reconnect | Fatal | None:
        """Carry out actions; return the one that ends the connection, if any."""
        for action in actions:
            if isinstance(action, Send):
                await self._send(ws, action.payload, heartbeat=action.heartbeat)
            elif isinstance(action, Identify):
                await self._identify_lock.acquire(self.shard_id)
                log.info("gateway.identify", extra={"shard_id": self.shard_id})
                await self._send(ws, action.payload, heartbeat=False)
            else:
                return action
        self._wake.set()  # HELLO may have moved the next deadline
        return None

    async def _send(
        self,
        ws: WebSocket,
        payload: dict[str, Any],
        *,
        heartbeat: bool,
    ) -> None:
        sends = self.protocol.sends
        while (wait := sends.acquire(trio.current_time(), heartbeat=heartbeat)) > 0:
            await trio.sleep(wait)
        try:
            await ws.send_text(self._encode(payload).decode())
        except ConnectionClosed:
            # The read loop sees the close and decides what comes next.
            pass

    async def _timer(
        self,
        ws: WebSocket,
        ended: list[Reconnect | Fatal],
        scope: trio.CancelScope,
    ) -> None:
        """Heartbeats, zombie detection and member-request timeouts."""
        proto = self.protocol
        while True:
            with trio.move_on_at(proto.next_deadline()):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            self._expire_chunks(now)
            for action in proto.poll(now):
                if isinstance(action, Send):
                    await self._send(ws, action.payload, heartbeat=True)
                else:
                    log.warning("gateway.zombie", extra={"shard_id": self.shard_id})
                    ended.append(action)  # type: ignore[arg-type]
                    scope.cancel()
                    return

    def _expire_chunks(self, now: float) -> None:
        for nonce, received, expected in self.protocol.chunks.expire(now):
            waiter = self._chunk_waiters.get(nonce)
            if waiter is not None:
                waiter.finish(MemberRequestTimeout(nonce, received, expected))

    def _closed_by_server(self, exc: ConnectionClosed) -> Reconnect | Fatal:
        code = exc.code
        self.last_close_code = code
        log.warning(
            "gateway.closed", extra={"shard_id": self.shard_id, "close_code": code}
        )
        end = self.protocol.closed(code, trio.current_time())
        assert end is not None
        return end

    def _bad_stream(self, exc: Exception) -> Reconnect | Fatal:
        # An undecodable frame means the stream is out of step: reconnect.
        log.warning(
            "gateway.bad_payload",
            extra={"shard_id": self.shard_id, "error": str(exc)[:200]},
        )
        return self.protocol.closed(None, trio.current_time()) or Reconnect(
            resume=False, close_code=4000, reason="bad_payload"
        )


_Stream = trio.SocketStream | trio.SSLStream[trio.SocketStream]
_SESSION_EVENTS = frozenset({"READY", "RESUMED", "GUILD_MEMBERS_CHUNK"})


class _ChunkWaiter:
    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: MemberChunks | MemberRequestTimeout | None = None

    def finish(self, result: MemberChunks | MemberRequestTimeout) -> None:
        self.result = result
        self.done.set()


def _field(event: Any, name: str) -> Any:
    """A field of a decoded event, whether a Struct or (fallback) a dict."""
    return event[name] if isinstance(event, dict) else getattr(event, name)


def gateway_query(compress: str) -> str:
    """The query string of a gateway URL: v10, JSON, transport compression."""
    query = "v=10&encoding=json"
    return query if compress == "none" else f"{query}&compress={compress}"


async def _open_stream(url: str, compress: str) -> tuple[_Stream, str, str]:
    """Open the TCP (or TLS) stream for ``url``; return it, Host and resource."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    resource = f"{parts.path or '/'}?{gateway_query(compress)}"
    stream: _Stream
    if secure:
        stream = await trio.open_ssl_over_tcp_stream(
            host, port, ssl_context=ssl.create_default_context()
        )
    else:
        stream = await trio.open_tcp_stream(host, port)
    host_header = host if parts.port is None else f"{host}:{port}"
    return stream, host_header, resource
