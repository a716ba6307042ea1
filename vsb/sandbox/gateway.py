"""The emulated gateway: sessions, connections, dispatch, faults.

Theory of operation. A *connection* is one websocket; a *session* is
Discord's resumable session (``session_id``, the sequence counter and every
dispatch sent in it). IDENTIFY creates a session and binds it to the
connection; RESUME binds an existing session to a new connection and replays
each dispatch whose sequence is above the client's. Dispatches are appended
to a session whether or not a connection is bound, so a resume after a drop
replays what was missed. Each connection has a writer task that owns its
compression context (one per connection, as Discord does) and the socket's
send side; everything else only queues payloads for it.

Rules follow Discord's "Gateway" and "Opcodes and Status Codes" pages: HELLO
first; IDENTIFY/RESUME within the session rules; close codes 4000-4014; at
most 120 client payloads per 60 s (4008); a client close with 1000 or 1001
ends the session (a later RESUME gets op 9 ``false``); identify concurrency
buckets ``shard_id % max_concurrency`` one IDENTIFY per 5 s each; intents
filter dispatches and MESSAGE_CONTENT gates message content.
"""

from __future__ import annotations

import enum
import logging
import secrets
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
import trio
import trio_websocket

from vsb.gateway.protocol import Opcode as Op
from vsb.sandbox.actions import ActionLog
from vsb.sandbox.compress import StreamCompressor
from vsb.sandbox.intents import ALL_INTENTS, PRIVILEGED, Intent, required_intent
from vsb.sandbox.state import Guild, Member, State

log = logging.getLogger(__name__)

Json = dict[str, Any]


class CloseCode(enum.IntEnum):
    """Gateway close codes 4000-4014 (Discord's "Gateway Close Event Codes").

    UNKNOWN_ERROR: something went wrong; resume. UNKNOWN_OPCODE: an invalid
    opcode was sent. DECODE_ERROR: an invalid payload was sent.
    NOT_AUTHENTICATED: a payload was sent before IDENTIFY.
    AUTHENTICATION_FAILED: the token is wrong (do not reconnect).
    ALREADY_AUTHENTICATED: a second IDENTIFY. INVALID_SEQ: RESUME with a bad
    sequence (identify anew). RATE_LIMITED: more than 120 payloads in 60 s.
    SESSION_TIMED_OUT: no heartbeat in time (identify anew). INVALID_SHARD,
    SHARDING_REQUIRED, INVALID_API_VERSION, INVALID_INTENTS,
    DISALLOWED_INTENTS: fatal configuration errors.
    """

    UNKNOWN_ERROR = 4000
    UNKNOWN_OPCODE = 4001
    DECODE_ERROR = 4002
    NOT_AUTHENTICATED = 4003
    AUTHENTICATION_FAILED = 4004
    ALREADY_AUTHENTICATED = 4005
    INVALID_SEQ = 4007
    RATE_LIMITED = 4008
    SESSION_TIMED_OUT = 4009
    INVALID_SHARD = 4010
    SHARDING_REQUIRED = 4011
    INVALID_API_VERSION = 4012
    INVALID_INTENTS = 4013
    DISALLOWED_INTENTS = 4014


@dataclass
class GatewayConfig:
    """Gateway behaviour knobs (all times in seconds of trio time).

    Attributes:
        heartbeat_interval: sent in HELLO (Discord: 41.25 s).
        heartbeat_timeout: close 4009 when no heartbeat arrives for this
            long; None means interval * 1.5 + 5.
        shards: recommended shard count in ``GET /gateway/bot``.
        max_concurrency: identify buckets (``shard_id % max_concurrency``).
        identify_interval: one IDENTIFY per bucket per this many seconds.
        session_start_total / session_start_remaining /
            session_start_reset_after: the ``session_start_limit``.
        enabled_intents: privileged intents the application may use.
        send_limit / send_window: client payload limit (120 per 60 s).
        member_chunk_size: members per GUILD_MEMBERS_CHUNK.
        max_guilds_per_shard: more guilds on one shard close 4011.
        replay_limit: dispatches kept per session for RESUME.
    """

    heartbeat_interval: float = 41.25
    heartbeat_timeout: float | None = None
    shards: int = 1
    max_concurrency: int = 1
    identify_interval: float = 5.0
    session_start_total: int = 1000
    session_start_remaining: int = 1000
    session_start_reset_after: float = 86_400.0
    enabled_intents: int = int(PRIVILEGED)
    send_limit: int = 120
    send_window: float = 60.0
    member_chunk_size: int = 1000
    max_guilds_per_shard: int = 2500
    replay_limit: int = 10_000


@dataclass
class Session:
    """A resumable gateway session."""

    session_id: str
    shard_id: int
    shard_count: int
    intents: int
    large_threshold: int
    seq: int = 0
    events: deque[tuple[int, str, bytes]] = field(default_factory=deque)
    connection: Connection | None = None
    invalid: bool = False


@dataclass
class ConnectionInfo:
    """What tests can inspect about one websocket connection."""

    id: int
    path: str
    query: dict[str, str]
    compress: str | None
    opened_at: float
    closed_at: float | None = None
    close_code: int | None = None
    closed_by: str | None = None  # "server", "client" or "drop"
    received_ops: list[int] = field(default_factory=list)
    heartbeats: int = 0


class Connection:
    """One websocket connection and its writer queue."""

    def __init__(
        self,
        info: ConnectionInfo,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.abc.Stream,
    ) -> None:
        self.info = info
        self.ws = ws
        self.stream = stream
        self.compressor = StreamCompressor(info.compress)
        self.session: Session | None = None
        self.ack_heartbeats = True
        self.last_heartbeat = trio.current_time()
        self.received: deque[float] = deque()
        self.large_threshold = 50
        send, receive = trio.open_memory_channel[tuple[bytes, int] | None](10_000)
        self.outbox = send
        self.inbox = receive
        self.closing = False
        #: set when a server-side close or drop has finished with the socket.
        self.close_done = trio.Event()

    def queue(self, payload: bytes, frames: int = 1) -> None:
        """Queue a serialised payload for the writer (never blocks)."""
        if not self.closing:
            try:
                self.outbox.send_nowait((payload, frames))
            except (trio.WouldBlock, trio.ClosedResourceError):
                log.warning("sandbox.gateway_outbox_full")


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class GatewayServer:
    """The gateway side of the sandbox.

    Args:
        state: the emulated world.
        actions: the action log.
        config: behaviour knobs.
        bot_token: the only token IDENTIFY and RESUME accept.
        application_id: sent in READY.
    """

    def __init__(
        self,
        state: State,
        actions: ActionLog,
        config: GatewayConfig,
        *,
        bot_token: str,
        application_id: int,
    ) -> None:
        self.state = state
        self.actions = actions
        self.config = config
        self._bot_token = bot_token
        self.application_id = application_id
        self.url = ""
        self.resume_url = ""
        self.sessions: dict[str, Session] = {}
        self.connections: list[ConnectionInfo] = []
        self._live: dict[int, Connection] = {}
        self._identify_at: dict[int, float] = {}
        self._split: dict[str, list[int]] = {}
        self._reset_at = trio.current_time() + config.session_start_reset_after
        self._nursery: trio.Nursery | None = None
        self.payloads_sent = 0

    # -- serving ---------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on 127.0.0.1 (ephemeral port); report the port when ready."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            listeners = await nursery.start(
                partial(trio.serve_tcp, self._handle_stream, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}/"
            self.resume_url = f"ws://127.0.0.1:{port}/resume"
            task_status.started(port)

    async def _handle_stream(self, stream: trio.SocketStream) -> None:
        async with trio.open_nursery() as nursery:
            try:
                request = await trio_websocket.wrap_server_stream(nursery, stream)
                ws = await request.accept()
            except (trio_websocket.ConnectionClosed, trio.BrokenResourceError, OSError):
                return
            try:
                await self._serve(ws, stream, request.path)
            finally:
                nursery.cancel_scope.cancel()

    async def _serve(
        self, ws: trio_websocket.WebSocketConnection, stream: trio.abc.Stream, path: str
    ) -> None:
        parsed = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        info = ConnectionInfo(
            id=len(self.connections),
            path=parsed.path,
            query=query,
            compress=query.get("compress"),
            opened_at=trio.current_time(),
        )
        self.connections.append(info)
        if info.compress not in (None, "zlib-stream", "zstd-stream"):
            info.compress = None
            conn = Connection(info, ws, stream)
            await self._close(conn, CloseCode.DECODE_ERROR, "unknown compression")
            return
        conn = Connection(info, ws, stream)
        self._live[info.id] = conn
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, conn)
                nursery.start_soon(self._watchdog, conn)
                await self._reader(conn)
                if conn.closing:
                    # A close started elsewhere (a fault, a resume elsewhere)
                    # still needs this connection's reader for its handshake.
                    with trio.move_on_after(10):
                        await conn.close_done.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._live.pop(info.id, None)
            if conn.session is not None and conn.session.connection is conn:
                conn.session.connection = None
            if info.closed_at is None:
                info.closed_at = trio.current_time()

    async def _reader(self, conn: Connection) -> None:
        version = conn.info.query.get("v", "10")
        if version != "10":
            await self._close(
                conn, CloseCode.INVALID_API_VERSION, "Invalid API version"
            )
            return
        # Known limitation: only JSON; a client asking for ETF is closed 4002.
        if conn.info.query.get("encoding", "json") != "json":
            await self._close(conn, CloseCode.DECODE_ERROR, "Only json encoding")
            return
        interval_ms = int(self.config.heartbeat_interval * 1000)
        self._send(conn, {"op": Op.HELLO, "d": {"heartbeat_interval": interval_ms}})
        while True:
            try:
                message = await conn.ws.get_message()
            except trio_websocket.ConnectionClosed as exc:
                self._client_closed(conn, exc.reason.code if exc.reason else None)
                return
            try:
                await self._receive(conn, message)
            except _Close as close:
                await self._close(conn, close.code, close.reason)
                return

    def _client_closed(self, conn: Connection, code: int | None) -> None:
        info = conn.info
        if info.closed_by is not None:
            return
        info.closed_at = trio.current_time()
        info.close_code = code
        info.closed_by = "client"
        self.actions.record("gateway.client_close", close_code=code, connection=info.id)
        # Discord's docs: closing with 1000 or 1001 invalidates the session.
        if code in (1000, 1001) and conn.session is not None:
            conn.session.invalid = True

    async def _close(self, conn: Connection, code: int, reason: str) -> None:
        info = conn.info
        if info.closed_by is None:
            info.closed_at = trio.current_time()
            info.close_code = code
            info.closed_by = "server"
            self.actions.record(
                "gateway.server_close", close_code=code, connection=info.id
            )
            log.info("sandbox.gateway_close", extra={"close_code": code})
        conn.closing = True
        try:
            with trio.move_on_after(5):
                await conn.ws.aclose(code, reason)
            await conn.stream.aclose()
        finally:
            conn.close_done.set()

    async def _abort(self, conn: Connection) -> None:
        conn.closing = True
        try:
            await conn.stream.aclose()
        finally:
            conn.close_done.set()

    async def _writer(self, conn: Connection) -> None:
        async for item in conn.inbox:
            if item is None:
                return
            payload, frames = item
            try:
                for message in conn.compressor.frames(payload, frames):
                    await conn.ws.send_message(message)
            except (trio_websocket.ConnectionClosed, trio.BrokenResourceError):
                return
            self.payloads_sent += 1

    async def _watchdog(self, conn: Connection) -> None:
        timeout = self.config.heartbeat_timeout
        if timeout is None:
            timeout = self.config.heartbeat_interval * 1.5 + 5
        while True:
            deadline = conn.last_heartbeat + timeout
            await trio.sleep_until(deadline)
            if conn.last_heartbeat + timeout <= trio.current_time():
                await self._close(
                    conn, CloseCode.SESSION_TIMED_OUT, "Session timed out"
                )
                return

    # -- client payloads ---------------------------------------------------------

    async def _receive(self, conn: Connection, message: str | bytes) -> None:
        now = trio.current_time()
        conn.received.append(now)
        while conn.received and conn.received[0] <= now - self.config.send_window:
            conn.received.popleft()
        if len(conn.received) > self.config.send_limit:
            raise _Close(CloseCode.RATE_LIMITED, "You are being rate limited.")
        try:
            payload = orjson.loads(message)
            op = int(payload["op"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise _Close(
                CloseCode.DECODE_ERROR, "Error while decoding payload."
            ) from exc
        conn.info.received_ops.append(op)
        data = payload.get("d")
        if op == Op.HEARTBEAT:
            self._on_heartbeat(conn)
        elif op == Op.IDENTIFY:
            self._on_identify(conn, data)
        elif op == Op.RESUME:
            self._on_resume(conn, data)
        elif op not in Op.__members__.values() or op in (
            Op.DISPATCH,
            Op.RECONNECT,
            Op.INVALID_SESSION,
            Op.HELLO,
            Op.HEARTBEAT_ACK,
        ):
            raise _Close(CloseCode.UNKNOWN_OPCODE, "Unknown opcode.")
        elif conn.session is None:
            raise _Close(CloseCode.NOT_AUTHENTICATED, "Not authenticated.")
        elif op == Op.REQUEST_GUILD_MEMBERS:
            self._on_request_members(conn, data)
        else:
            self.actions.record("gateway.payload", op=op, data=data)

    def _on_heartbeat(self, conn: Connection) -> None:
        conn.last_heartbeat = trio.current_time()
        conn.info.heartbeats += 1
        if conn.ack_heartbeats:
            self._send(conn, {"op": Op.HEARTBEAT_ACK})

    def _on_identify(self, conn: Connection, data: Any) -> None:
        if conn.session is not None:
            raise _Close(CloseCode.ALREADY_AUTHENTICATED, "Already authenticated.")
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            raise _Close(CloseCode.DECODE_ERROR, "Error while decoding payload.")
        if _strip_bot(data["token"]) != self._bot_token:
            raise _Close(CloseCode.AUTHENTICATION_FAILED, "Authentication failed.")
        shard_id, shard_count = self._check_shard(data.get("shard", [0, 1]))
        intents = self._check_intents(data.get("intents"))
        if not self._identify_allowed(conn, shard_id):
            return
        threshold = data.get("large_threshold", 50)
        threshold = min(250, max(50, threshold if isinstance(threshold, int) else 50))
        session = Session(
            session_id=secrets.token_hex(16),
            shard_id=shard_id,
            shard_count=shard_count,
            intents=intents,
            large_threshold=threshold,
            connection=conn,
        )
        self.sessions[session.session_id] = session
        conn.session = session
        log.info("sandbox.gateway_identify", extra={"shard_id": shard_id})
        self.actions.record(
            "gateway.identify",
            shard_id=shard_id,
            shard_count=shard_count,
            intents=intents,
            session_id=session.session_id,
            connection=conn.info.id,
        )
        self._send_ready(session)

    def _check_shard(self, shard: Any) -> tuple[int, int]:
        if (
            not isinstance(shard, list)
            or len(shard) != 2
            or not all(isinstance(x, int) for x in shard)
            or shard[1] < 1
            or not 0 <= shard[0] < shard[1]
        ):
            raise _Close(CloseCode.INVALID_SHARD, "Invalid shard.")
        shard_id, shard_count = shard
        on_shard = [
            g for g in self.state.guilds if _shard_of(g, shard_count) == shard_id
        ]
        if len(on_shard) > self.config.max_guilds_per_shard:
            raise _Close(CloseCode.SHARDING_REQUIRED, "Sharding required.")
        return shard_id, shard_count

    def _check_intents(self, intents: Any) -> int:
        if not isinstance(intents, int) or intents < 0 or intents & ~ALL_INTENTS:
            raise _Close(CloseCode.INVALID_INTENTS, "Invalid intent(s).")
        if intents & int(PRIVILEGED) & ~self.config.enabled_intents:
            raise _Close(CloseCode.DISALLOWED_INTENTS, "Disallowed intent(s).")
        return intents

    def _identify_allowed(self, conn: Connection, shard_id: int) -> bool:
        """Apply the session start limit and identify concurrency.

        Over either limit the sandbox answers op 9 ``false`` (Discord's docs
        on identify rate limiting) and records ``gateway.identify_refused``.
        """
        now = trio.current_time()
        if now >= self._reset_at:
            self.config.session_start_remaining = self.config.session_start_total
            self._reset_at = now + self.config.session_start_reset_after
        bucket = shard_id % self.config.max_concurrency
        last = self._identify_at.get(bucket)
        why = None
        if self.config.session_start_remaining <= 0:
            why = "session_start_limit"
        elif last is not None and now - last < self.config.identify_interval:
            why = "max_concurrency"
        if why is not None:
            self.actions.record("gateway.identify_refused", shard_id=shard_id, why=why)
            self._send(conn, {"op": Op.INVALID_SESSION, "d": False})
            return False
        self._identify_at[bucket] = now
        self.config.session_start_remaining -= 1
        return True

    def _send_ready(self, session: Session) -> None:
        guild_ids = [
            g
            for g in self.state.guilds
            if _shard_of(g, session.shard_count) == session.shard_id
        ]
        ready = {
            "v": 10,
            "user": self.state.bot_user.to_json(),
            "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
            "session_id": session.session_id,
            "resume_gateway_url": self.resume_url,
            "shard": [session.shard_id, session.shard_count],
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "session_type": "normal",
        }
        self._append(session, "READY", ready)
        if session.intents & Intent.GUILDS:
            for guild_id in guild_ids:
                guild = self.state.guilds[guild_id]
                data = self.state.guild_create_json(
                    guild, large_threshold=session.large_threshold
                )
                self._append(session, "GUILD_CREATE", data)

    def _on_resume(self, conn: Connection, data: Any) -> None:
        if conn.session is not None:
            raise _Close(CloseCode.ALREADY_AUTHENTICATED, "Already authenticated.")
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            raise _Close(CloseCode.DECODE_ERROR, "Error while decoding payload.")
        if _strip_bot(data["token"]) != self._bot_token:
            raise _Close(CloseCode.AUTHENTICATION_FAILED, "Authentication failed.")
        session = self.sessions.get(str(data.get("session_id")))
        seq = data.get("seq")
        if session is None or session.invalid:
            self.actions.record(
                "gateway.resume_refused", session_id=data.get("session_id")
            )
            self._send(conn, {"op": Op.INVALID_SESSION, "d": False})
            return
        if (
            not isinstance(seq, int)
            or seq > session.seq
            or (session.events and seq < session.events[0][0] - 1)
        ):
            raise _Close(CloseCode.INVALID_SEQ, "Invalid seq.")
        old = session.connection
        if old is not None and old is not conn:
            old.closing = True
            if self._nursery is not None:
                self._nursery.start_soon(self._abort, old)
        session.connection = conn
        conn.session = session
        self.actions.record(
            "gateway.resume",
            session_id=session.session_id,
            seq=seq,
            connection=conn.info.id,
            path=conn.info.path,
        )
        log.info(
            "sandbox.gateway_resume", extra={"shard_id": session.shard_id, "seq": seq}
        )
        replayed = [(s, t, p) for s, t, p in session.events if s > seq]
        for _, event_type, payload in replayed:
            conn.queue(payload, self._frames_for(event_type))
        self._append(session, "RESUMED", {})

    def _on_request_members(self, conn: Connection, data: Any) -> None:
        session = conn.session
        assert session is not None
        if not isinstance(data, dict):
            raise _Close(CloseCode.DECODE_ERROR, "Error while decoding payload.")
        try:
            guild = self.state.guilds[int(data["guild_id"])]
        except (KeyError, ValueError, TypeError):
            self.actions.record("gateway.request_members_refused", why="unknown guild")
            return
        user_ids = [int(u) for u in data.get("user_ids") or []]
        query = data.get("query")
        wants_all = (query == "" and not data.get("limit")) or bool(user_ids)
        if wants_all and not session.intents & Intent.GUILD_MEMBERS:
            # Discord requires GUILD_MEMBERS for the whole list or user_ids.
            self.actions.record("gateway.request_members_refused", why="intent")
            return
        nonce = data.get("nonce")
        # Discord ignores a nonce over 32 bytes and sends none back.
        if not isinstance(nonce, str) or len(nonce.encode()) > 32:
            nonce = None
        self._send_chunks(
            session,
            guild.id,
            self._select(guild, query, data, user_ids),
            nonce,
            user_ids,
        )

    def _select(
        self, guild: Guild, query: Any, data: Json, user_ids: list[int]
    ) -> list[Member]:
        if user_ids:
            return [guild.members[u] for u in user_ids if u in guild.members]
        prefix = str(query or "").lower()
        limit = int(data.get("limit") or 0)
        found = [
            m
            for m in guild.members.values()
            if self.state.users[m.user_id].username.lower().startswith(prefix)
        ]
        return found[:limit] if limit else found

    def _send_chunks(
        self,
        session: Session,
        guild_id: int,
        members: list[Member],
        nonce: str | None,
        user_ids: list[int],
    ) -> None:
        size = self.config.member_chunk_size
        chunks = [members[i : i + size] for i in range(0, len(members), size)] or [[]]
        found = {m.user_id for m in members}
        for index, chunk in enumerate(chunks):
            data: Json = {
                "guild_id": str(guild_id),
                "members": [m.to_json(self.state) for m in chunk],
                "chunk_index": index,
                "chunk_count": len(chunks),
            }
            if user_ids and index == 0:
                data["not_found"] = [str(u) for u in user_ids if u not in found]
            if nonce is not None:
                data["nonce"] = nonce
            self._append(session, "GUILD_MEMBERS_CHUNK", data)

    # -- sending -----------------------------------------------------------------

    def _send(self, conn: Connection, payload: Json) -> None:
        conn.queue(orjson.dumps(payload))

    def _frames_for(self, event_type: str) -> int:
        pending = self._split.get(event_type)
        if not pending:
            return 1
        return pending.pop(0)

    def _append(self, session: Session, event_type: str, data: Json) -> int:
        session.seq += 1
        payload = orjson.dumps({"op": 0, "t": event_type, "s": session.seq, "d": data})
        session.events.append((session.seq, event_type, payload))
        if len(session.events) > self.config.replay_limit:
            session.events.popleft()
        conn = session.connection
        if conn is not None:
            conn.queue(payload, self._frames_for(event_type))
        return session.seq

    def dispatch(
        self,
        event_type: str,
        data: Json,
        *,
        guild_id: int | None = None,
        shape: Callable[[Session, Json], Json] | None = None,
    ) -> int:
        """Send a dispatch to every live session that should get it.

        Args:
            event_type: e.g. ``"MESSAGE_CREATE"``.
            data: the event's ``d``.
            guild_id: routes to the shard ``(guild_id >> 22) % shard_count``;
                None goes to shard 0 (DMs).
            shape: per-session rewrite (e.g. content blanked without the
                MESSAGE_CONTENT intent).

        Returns:
            How many sessions got it.
        """
        needed = required_intent(event_type, in_guild=guild_id is not None)
        count = 0
        for session in list(self.sessions.values()):
            if session.invalid:
                continue
            shard = 0 if guild_id is None else _shard_of(guild_id, session.shard_count)
            if shard != session.shard_id:
                continue
            if needed is not None and not session.intents & needed:
                continue
            self._append(
                session, event_type, data if shape is None else shape(session, data)
            )
            count += 1
        return count

    # -- faults --------------------------------------------------------------------

    def live(self, shard_id: int | None = None) -> list[Connection]:
        """Open connections (optionally those whose session is on a shard)."""
        return [
            c
            for c in self._live.values()
            if not c.closing
            and (
                shard_id is None
                or (c.session is not None and c.session.shard_id == shard_id)
            )
        ]

    def split_next(self, event_type: str, frames: int, times: int = 1) -> None:
        """Split the next ``times`` payloads of ``event_type`` into ``frames``."""
        self._split.setdefault(event_type, []).extend([frames] * times)

    def set_heartbeat_acks(self, enabled: bool, shard_id: int | None = None) -> None:
        for conn in self.live(shard_id):
            conn.ack_heartbeats = enabled

    def send_op(self, op: int, data: Any = None, shard_id: int | None = None) -> int:
        conns = self.live(shard_id)
        for conn in conns:
            self._send(conn, {"op": op, "d": data})
        return len(conns)

    def invalidate(self, resumable: bool, shard_id: int | None = None) -> int:
        """Send op 9; with ``resumable`` False the sessions are forgotten."""
        conns = self.live(shard_id)
        for conn in conns:
            if not resumable and conn.session is not None:
                conn.session.invalid = True
            self._send(conn, {"op": Op.INVALID_SESSION, "d": resumable})
        return len(conns)

    async def close(
        self, code: int, shard_id: int | None = None, reason: str = ""
    ) -> int:
        conns = self.live(shard_id)
        for conn in conns:
            await self._close(conn, code, reason or "closed by scenario")
        return len(conns)

    async def drop(self, shard_id: int | None = None) -> int:
        """Close TCP under the websocket: no close frame (the client sees 1006)."""
        conns = self.live(shard_id)
        for conn in conns:
            conn.closing = True
            conn.info.closed_by = "drop"
            conn.info.closed_at = trio.current_time()
            self.actions.record("gateway.drop", connection=conn.info.id)
            await self._abort(conn)
        return len(conns)

    def session_start_limit(self) -> Json:
        """The ``session_start_limit`` object of ``GET /gateway/bot``."""
        now = trio.current_time()
        if now >= self._reset_at:
            self.config.session_start_remaining = self.config.session_start_total
            self._reset_at = now + self.config.session_start_reset_after
        return {
            "total": self.config.session_start_total,
            "remaining": self.config.session_start_remaining,
            "reset_after": int((self._reset_at - now) * 1000),
            "max_concurrency": self.config.max_concurrency,
        }

    def stats(self) -> Json:
        return {
            "connections": len(self.connections),
            "live": len(self._live),
            "sessions": len(self.sessions),
            "payloads_sent": self.payloads_sent,
        }


def _shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's shard formula: ``(guild_id >> 22) % num_shards``."""
    return (guild_id >> 22) % shard_count


def _strip_bot(token: str) -> str:
    return token[4:] if token.startswith("Bot ") else token
