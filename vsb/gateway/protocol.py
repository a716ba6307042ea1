"""The gateway session of one shard as a sans-I/O state machine.

This module owns Discord's gateway rules for one shard: when to heartbeat,
when a connection is a zombie, whether to IDENTIFY or RESUME, what each close
code and opcode means, the per-connection send limit, and the assembly of
REQUEST_GUILD_MEMBERS answers. It imports no trio, socket or websocket code.

Theory of operation
-------------------

The driver (``shard.py``) owns the websocket. For every connection it calls
:meth:`ShardProtocol.connect` (which says where to connect), then feeds every
decoded payload to :meth:`ShardProtocol.receive` (or, for dispatches, the
fast :meth:`ShardProtocol.dispatched` plus :meth:`ready`/:meth:`resumed`),
calls :meth:`ShardProtocol.poll` whenever :meth:`next_deadline` passes, and
reports the end of the connection with :meth:`ShardProtocol.closed`. Each
call takes ``now`` (seconds on any monotonic clock) and returns *actions*:

- :class:`Send`: encode and send this payload (``heartbeat`` ones bypass the
  send budget kept for everything else);
- :class:`Identify`: send this IDENTIFY once the identify lock allows it;
- :class:`Reconnect`: close the connection with ``close_code`` (unless the
  server already closed it), wait ``delay`` seconds, connect again;
- :class:`Fatal`: close, never reconnect, stop the process with ``message``.

Sources: Discord developer docs, "Gateway" (connection lifecycle, resuming,
rate limiting), "Opcodes and Status Codes" (close codes), "Gateway Events"
(IDENTIFY, RESUME, REQUEST_GUILD_MEMBERS, PRESENCE_UPDATE).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
import random
import secrets
import sys
from collections.abc import Sequence
from typing import Any, Final

from vsb.secret import Secret

#: Send limit per connection ("Gateway > Rate Limiting"): 120 payloads / 60 s.
SEND_LIMIT: Final = 120
SEND_WINDOW: Final = 60.0
#: Close code we use when the session must stay resumable. Discord invalidates
#: the session on 1000 and 1001 ("Gateway > Resuming"), so anything else works.
RESUMABLE_CLOSE: Final = 4000
#: Our close on shutdown (or after INVALID_SESSION false): the session ends.
NORMAL_CLOSE: Final = 1000
#: REQUEST_GUILD_MEMBERS nonces are at most 32 bytes ("Gateway Events").
MAX_NONCE_BYTES: Final = 32
#: Privileged intents and where to enable them, for the 4014 message.
PRIVILEGED_INTENTS: Final = {
    1 << 1: "GUILD_MEMBERS (Server Members Intent)",
    1 << 8: "GUILD_PRESENCES (Presence Intent)",
    1 << 15: "MESSAGE_CONTENT (Message Content Intent)",
}


class Opcode(enum.IntEnum):
    """Gateway opcodes, named as in Discord's docs."""

    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


class CloseCode(enum.IntEnum):
    """Gateway close codes with Discord's reconnect flag.

    ``reconnect`` is False for codes after which reconnecting cannot help;
    ``new_session`` is True where the session is gone and a reconnect must
    IDENTIFY rather than RESUME.
    """

    reconnect: bool
    new_session: bool

    def __new__(cls, value: int, reconnect: bool, new_session: bool) -> CloseCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.reconnect = reconnect
        member.new_session = new_session
        return member

    UNKNOWN_ERROR = (4000, True, False)
    UNKNOWN_OPCODE = (4001, True, False)
    DECODE_ERROR = (4002, True, False)
    NOT_AUTHENTICATED = (4003, True, False)
    AUTHENTICATION_FAILED = (4004, False, True)
    ALREADY_AUTHENTICATED = (4005, True, False)
    INVALID_SEQ = (4007, True, True)
    RATE_LIMITED = (4008, True, False)
    SESSION_TIMED_OUT = (4009, True, True)
    INVALID_SHARD = (4010, False, True)
    SHARDING_REQUIRED = (4011, False, True)
    INVALID_API_VERSION = (4012, False, True)
    INVALID_INTENTS = (4013, False, True)
    DISALLOWED_INTENTS = (4014, False, True)


_CLOSE_CODES: Final[dict[int, CloseCode]] = {c.value: c for c in CloseCode}


class ShardState(enum.Enum):
    """Where one shard's session stands."""

    DISCONNECTED = "disconnected"  # no connection; about to (re)connect
    CONNECTING = "connecting"  # connection open, waiting for HELLO
    IDENTIFYING = "identifying"  # IDENTIFY due or sent, waiting for READY
    RESUMING = "resuming"  # RESUME sent, waiting for RESUMED or replay end
    CONNECTED = "connected"  # READY or RESUMED received
    STOPPED = "stopped"  # shut down or fatally closed; never reconnects


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    """Everything needed to resume: Discord's session id, last seq, resume URL."""

    session_id: str
    seq: int | None
    resume_url: str


# --------------------------------------------------------------------------
# Actions


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    """Send ``payload`` as JSON. Heartbeats may use the slots kept for them."""

    payload: dict[str, Any]
    heartbeat: bool = False

    def __repr__(self) -> str:  # IDENTIFY/RESUME payloads hold the token
        return f"Send(op={self.payload.get('op')}, heartbeat={self.heartbeat})"


@dataclasses.dataclass(frozen=True, slots=True)
class Identify:
    """Send this IDENTIFY once the identify lock gives this shard its turn."""

    payload: dict[str, Any]

    def __repr__(self) -> str:
        return "Identify(...)"


@dataclasses.dataclass(frozen=True, slots=True)
class Reconnect:
    """Close the connection with ``close_code``, wait ``delay``, connect again.

    ``resume`` says whether the next connection will RESUME (a session is
    kept) or IDENTIFY. ``reason`` is a short stable name for stats and logs.
    """

    resume: bool
    close_code: int
    reason: str
    delay: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Fatal:
    """Close and stop for good: Discord refused this shard with ``close_code``."""

    close_code: int
    message: str


Action = Send | Identify | Reconnect | Fatal


# --------------------------------------------------------------------------
# Helpers


class SendLimiter:
    """Sliding-window count of payloads sent on one connection.

    Discord closes a connection with 4008 after more than 120 payloads in 60
    seconds. Ordinary sends may use ``limit - reserved`` slots; heartbeats may
    use all of them, so user traffic can never starve the heartbeat.
    """

    def __init__(self, limit: int = SEND_LIMIT, window: float = SEND_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self.reserved = 0
        self._sent: collections.deque[float] = collections.deque()

    def reset(self, heartbeat_interval: float | None = None) -> None:
        """Start counting afresh (new connection); keep room for heartbeats."""
        self._sent.clear()
        if heartbeat_interval:
            # One heartbeat per interval plus one server-requested, per window.
            self.reserved = math.ceil(self.window / heartbeat_interval) + 1
        else:
            self.reserved = 3

    def acquire(self, now: float, *, heartbeat: bool = False) -> float:
        """Take a slot for a payload sent at ``now``.

        Returns:
            0.0 if the payload may go now (the slot is then taken), else the
            seconds to wait before asking again.
        """
        sent = self._sent
        while sent and sent[0] <= now - self.window:
            sent.popleft()
        cap = self.limit if heartbeat else self.limit - self.reserved
        if len(sent) < cap:
            sent.append(now)
            return 0.0
        # The oldest slot that must expire before the count drops under cap.
        return sent[len(sent) - cap] + self.window - now


@dataclasses.dataclass(slots=True)
class _Chunks:
    deadline: float
    expected: int = 0
    parts: dict[int, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class MemberChunks:
    """A complete REQUEST_GUILD_MEMBERS answer: every chunk, in index order."""

    nonce: str
    chunks: tuple[Any, ...]


class ChunkAssembler:
    """Collects GUILD_MEMBERS_CHUNK events by nonce until all have arrived."""

    def __init__(self) -> None:
        self._pending: dict[str, _Chunks] = {}

    def expect(self, nonce: str, now: float, timeout: float) -> None:
        """Start waiting for the answer to the request tagged ``nonce``."""
        self._pending[nonce] = _Chunks(deadline=now + timeout)

    def feed(
        self, nonce: str | None, chunk_index: int, chunk_count: int, chunk: Any
    ) -> MemberChunks | None:
        """Add one chunk; return the whole answer when it is complete.

        Chunks with no nonce, or a nonce nobody waits for, return None.
        """
        entry = self._pending.get(nonce) if nonce is not None else None
        if entry is None or nonce is None:
            return None
        entry.expected = chunk_count
        entry.parts[chunk_index] = chunk
        if len(entry.parts) < chunk_count:
            return None
        del self._pending[nonce]
        ordered = tuple(entry.parts[i] for i in sorted(entry.parts))
        return MemberChunks(nonce, ordered)

    def expire(self, now: float) -> list[tuple[str, int, int]]:
        """Drop the requests past their deadline: (nonce, received, expected)."""
        late = [n for n, e in self._pending.items() if e.deadline <= now]
        result = []
        for nonce in late:
            entry = self._pending.pop(nonce)
            result.append((nonce, len(entry.parts), entry.expected))
        return result

    def cancel(self, nonce: str) -> None:
        """Stop waiting for ``nonce`` (its requester went away)."""
        self._pending.pop(nonce, None)

    def next_deadline(self) -> float:
        """The earliest deadline of a pending request, or infinity."""
        return min((e.deadline for e in self._pending.values()), default=math.inf)


def fatal_message(code: CloseCode, intents: int) -> str:
    """A message for a fatal close code that says what the operator must do."""
    head = f"Discord closed the gateway with {code.value} {code.name}: "
    if code is CloseCode.DISALLOWED_INTENTS:
        wanted = [name for bit, name in PRIVILEGED_INTENTS.items() if intents & bit]
        return head + (
            "enable the privileged intent(s) "
            + (", ".join(wanted) or "requested")
            + " for the bot in the Developer Portal (Bot page), or remove them "
            "from DISCORD_INTENTS"
        )
    hints = {
        CloseCode.AUTHENTICATION_FAILED: "the bot token is wrong or was reset; "
        "set DISCORD_BOT_TOKEN to the current token",
        CloseCode.INVALID_SHARD: "the shard id or count is invalid; check "
        "SHARD_COUNT and SHARD_IDS",
        CloseCode.SHARDING_REQUIRED: "the bot is in too many guilds for this "
        "shard count; raise SHARD_COUNT or leave it unset",
        CloseCode.INVALID_API_VERSION: "the gateway API version is not supported",
        CloseCode.INVALID_INTENTS: f"the intents bitfield {intents} is invalid; "
        "check DISCORD_INTENTS",
    }
    return head + hints.get(code, "reconnecting is not allowed")


def backoff_delay(failures: int, rng: random.Random, cap: float = 60.0) -> float:
    """Capped exponential backoff with jitter for the ``failures``-th retry.

    No wait after a connection that worked; then about 1, 2, 4 ... seconds,
    capped at ``cap``, each scaled by a random factor in [0.5, 1) so that many
    shards dropped at once do not reconnect in step.
    """
    if failures <= 0:
        return 0.0
    return min(cap, 2.0 ** (failures - 1)) * (0.5 + rng.random() / 2)


# --------------------------------------------------------------------------
# The session


class ShardProtocol:
    """One shard's gateway session: payloads and ``now`` in, actions out.

    Args:
        token: the bot token; revealed only into IDENTIFY and RESUME payloads.
        intents: the gateway intents bitfield.
        shard_id: this shard's id.
        shard_count: the total number of shards.
        large_threshold: members above which a guild is sent without offline
            members (50-250).
        presence: an optional initial presence for IDENTIFY.
        session: a stored session to resume on the first connection.
        max_resume_attempts: connections to the resume URL tried in a row
            without a RESUMED (refused, dropped, or closed before it) before
            the session is forgotten and the next connection identifies.
        rng: randomness for heartbeat jitter and waits (seed it in tests).
    """

    def __init__(
        self,
        token: Secret,
        intents: int,
        *,
        shard_id: int = 0,
        shard_count: int = 1,
        large_threshold: int = 250,
        presence: dict[str, Any] | None = None,
        session: Session | None = None,
        max_resume_attempts: int = 3,
        rng: random.Random | None = None,
    ) -> None:
        self._token = token
        self.intents = intents
        self.shard_id = shard_id
        self.shard_count = shard_count
        self.large_threshold = large_threshold
        self.presence = presence
        self.max_resume_attempts = max_resume_attempts
        self._rng = rng or random.Random()

        self.state = ShardState.DISCONNECTED
        # Invariant: _session_id and _resume_url are both set or both None;
        # _seq is the last DISPATCH sequence of this session.
        self._session_id: str | None = None
        self._resume_url: str | None = None
        self.seq: int | None = None

        self.heartbeat_interval: float | None = None
        self.latency: float | None = None
        #: When the last HEARTBEAT_ACK came (for /health's ACK age).
        self.last_ack_at: float | None = None
        self._next_beat = math.inf
        self._beat_sent_at: float | None = None
        self._acked = True
        self._resume_attempts = 0
        self._failures = 0
        self.sends = SendLimiter()
        self.chunks = ChunkAssembler()
        if session is not None:
            self.restore(session)

    # -- reading state

    @property
    def session(self) -> Session | None:
        """The resumable session, or None when the next connect identifies."""
        if self._session_id is None or self._resume_url is None:
            return None
        return Session(self._session_id, self.seq, self._resume_url)

    def next_deadline(self) -> float:
        """When :meth:`poll` next has work: a heartbeat or a chunk timeout."""
        return min(self._next_beat, self.chunks.next_deadline())

    # -- connection lifecycle

    def restore(self, session: Session) -> None:
        """Resume ``session`` (e.g. stored before a restart) on the next connect."""
        self._session_id = session.session_id
        self._resume_url = session.resume_url
        self.seq = session.seq
        self._resume_attempts = 0

    def connect(self, now: float) -> str | None:
        """Begin a new connection.

        Returns:
            The resume URL to connect to, or None to use the gateway URL from
            ``GET /gateway/bot`` (the next HELLO will then IDENTIFY).
        """
        if self.state is ShardState.STOPPED:
            raise RuntimeError("a stopped shard cannot connect again")
        self.state = ShardState.CONNECTING
        self.heartbeat_interval = None
        self._next_beat = math.inf
        self._acked = True
        self._beat_sent_at = None
        self.sends.reset()
        self._give_up_spent_session()
        if self._session_id is None:
            return None
        # Counted here, not at HELLO, so that a resume URL nobody answers
        # any more (say, stored before a restart) is given up like one whose
        # RESUME fails; either way the shard goes back to IDENTIFY.
        self._resume_attempts += 1
        return self._resume_url

    def receive(self, op: int, data: Any, now: float) -> list[Action]:
        """Handle one non-DISPATCH payload (``data`` is its decoded ``d``)."""
        if op == Opcode.HEARTBEAT_ACK:
            self._acked = True
            self.last_ack_at = now
            if self._beat_sent_at is not None:
                self.latency = now - self._beat_sent_at
            return []
        if op == Opcode.HELLO:
            return self._on_hello(data, now)
        if op == Opcode.HEARTBEAT:
            # "Gateway > Sending Heartbeats": answer a server heartbeat at once.
            return [self._heartbeat(now)]
        if op == Opcode.RECONNECT:
            return [self._reconnect("reconnect_requested", resume=True)]
        if op == Opcode.INVALID_SESSION:
            return [self._on_invalid_session(bool(data))]
        return []

    def dispatched(self, seq: int | None) -> None:
        """Note a DISPATCH (op 0). Only dispatches advance the sequence."""
        if seq is not None:
            self.seq = seq

    def ready(self, session_id: str, resume_url: str, now: float) -> None:
        """READY arrived: a new session that later connections resume."""
        self._session_id = session_id
        self._resume_url = resume_url
        self._session_established()

    def resumed(self, now: float) -> None:
        """RESUMED arrived: the session (and its resume URL) carries on."""
        self._session_established()

    def poll(self, now: float) -> list[Action]:
        """Run what is due at ``now``: heartbeat or zombie detection.

        Chunk timeouts are read separately with ``chunks.expire(now)``.
        """
        if now < self._next_beat:
            return []
        if not self._acked:
            # "Gateway > Sending Heartbeats": no ACK since the last heartbeat
            # means a zombied connection: close (not 1000/1001) and resume.
            return [self._reconnect("zombie", resume=True)]
        beat = self._heartbeat(now)
        self._acked = False
        assert self.heartbeat_interval is not None
        self._next_beat = now + self.heartbeat_interval
        return [beat]

    def closed(self, code: int | None, now: float) -> Reconnect | Fatal | None:
        """The connection ended without an action of ours asking for it.

        Args:
            code: the server's close code, or None when the TCP connection
                dropped or could not be opened.

        Returns:
            What to do next; None after our own shutdown.
        """
        if self.state is ShardState.STOPPED:
            return None
        known = _CLOSE_CODES.get(code) if code is not None else None
        if known is not None and not known.reconnect:
            self.state = ShardState.STOPPED
            return Fatal(known.value, fatal_message(known, self.intents))
        reason = f"close_{code}" if code is not None else "connection_lost"
        self.state = ShardState.DISCONNECTED
        self._failures += 1
        if known is not None and known.new_session:
            self._forget_session()
        self._give_up_spent_session()
        return Reconnect(
            resume=self._session_id is not None,
            close_code=RESUMABLE_CLOSE,
            reason=reason,
            delay=backoff_delay(self._failures, self._rng),
        )

    def shutdown(self) -> int:
        """Stop for good (our own close); returns the close code to send.

        Discord ends the session on 1000, so a shutdown never resumes.
        """
        self.state = ShardState.STOPPED
        self._forget_session()
        return NORMAL_CLOSE

    def suspend(self) -> Session | None:
        """Stop for good but keep the session resumable (a deploy restart).

        Returns the session to store; the driver closes with
        :data:`RESUMABLE_CLOSE` so Discord keeps it.
        """
        session = self.session
        self.state = ShardState.STOPPED
        return session

    # -- payloads the bot asks for

    def request_guild_members(
        self,
        guild_id: int,
        now: float,
        *,
        query: str | None = "",
        limit: int = 0,
        user_ids: Sequence[int] | None = None,
        presences: bool = False,
        nonce: str | None = None,
        timeout: float = 30.0,
    ) -> tuple[str, Send]:
        """Build REQUEST_GUILD_MEMBERS (op 8) and start collecting its answer.

        Give either ``query`` (a username prefix, "" for all members) or
        ``user_ids`` (up to 100).

        Returns:
            The nonce tagging the answer, and the payload to send.

        Raises:
            ValueError: the nonce is longer than 32 bytes, or the options
                contradict Discord's rules.
        """
        nonce = nonce if nonce is not None else secrets.token_hex(16)
        if len(nonce.encode()) > MAX_NONCE_BYTES:
            raise ValueError("a REQUEST_GUILD_MEMBERS nonce is at most 32 bytes")
        d: dict[str, Any] = {"guild_id": str(guild_id), "limit": limit}
        if user_ids is not None:
            if len(user_ids) > 100:
                raise ValueError("REQUEST_GUILD_MEMBERS takes at most 100 user ids")
            d["user_ids"] = [str(u) for u in user_ids]
        else:
            d["query"] = query or ""
        if presences:
            d["presences"] = True
        d["nonce"] = nonce
        self.chunks.expect(nonce, now, timeout)
        return nonce, Send({"op": int(Opcode.REQUEST_GUILD_MEMBERS), "d": d})

    def update_presence(
        self,
        *,
        status: str = "online",
        activities: Sequence[dict[str, Any]] = (),
        afk: bool = False,
        since: int | None = None,
    ) -> Send:
        """Build PRESENCE_UPDATE (op 3); the presence is also used on IDENTIFY."""
        if status not in ("online", "dnd", "idle", "invisible", "offline"):
            raise ValueError(f"unknown presence status {status!r}")
        d = {"since": since, "activities": list(activities), "status": status}
        d["afk"] = afk
        self.presence = d
        return Send({"op": int(Opcode.PRESENCE_UPDATE), "d": d})

    # -- internals

    def _on_hello(self, data: Any, now: float) -> list[Action]:
        interval = float(data["heartbeat_interval"]) / 1000.0
        self.heartbeat_interval = interval
        self.sends.reset(interval)
        # A fresh connection: ACK state starts over ("Gateway > Heartbeating"),
        # and the first beat waits interval * jitter, jitter in [0, 1).
        self._acked = True
        self._next_beat = now + interval * self._rng.random()
        if self._session_id is not None:
            self.state = ShardState.RESUMING
            resume = {
                "op": int(Opcode.RESUME),
                "d": {
                    "token": self._token.reveal(),
                    "session_id": self._session_id,
                    "seq": self.seq,
                },
            }
            return [Send(resume)]
        self.state = ShardState.IDENTIFYING
        return [Identify(self._identify_payload())]

    def _identify_payload(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "token": self._token.reveal(),
            "intents": self.intents,
            "properties": {"os": sys.platform, "browser": "vsb", "device": "vsb"},
            "shard": [self.shard_id, self.shard_count],
            "large_threshold": self.large_threshold,
        }
        if self.presence is not None:
            d["presence"] = self.presence
        return {"op": int(Opcode.IDENTIFY), "d": d}

    def _on_invalid_session(self, resumable: bool) -> Reconnect:
        if resumable and self._session_id is not None:
            return self._reconnect("invalid_session_resumable", resume=True)
        # "Gateway > Invalid Session": forget the session, wait 1-5 s at
        # random, then identify on a new connection.
        self._forget_session()
        self.state = ShardState.DISCONNECTED
        return Reconnect(
            resume=False,
            close_code=NORMAL_CLOSE,
            reason="invalid_session",
            delay=1.0 + 4.0 * self._rng.random(),
        )

    def _reconnect(self, reason: str, *, resume: bool) -> Reconnect:
        self.state = ShardState.DISCONNECTED
        self._give_up_spent_session()
        return Reconnect(
            resume=resume and self._session_id is not None,
            close_code=RESUMABLE_CLOSE,
            reason=reason,
        )

    def _heartbeat(self, now: float) -> Send:
        self._beat_sent_at = now
        return Send({"op": int(Opcode.HEARTBEAT), "d": self.seq}, heartbeat=True)

    def _session_established(self) -> None:
        self.state = ShardState.CONNECTED
        self._resume_attempts = 0
        self._failures = 0

    def _give_up_spent_session(self) -> None:
        """Forget the session after ``max_resume_attempts`` failed resumes in a row.

        A failed resume is a connection to the resume URL that was refused,
        dropped, or closed before RESUMED.
        """
        if (
            self._session_id is not None
            and self._resume_attempts >= self.max_resume_attempts
        ):
            self._forget_session()

    def _forget_session(self) -> None:
        self._session_id = None
        self._resume_url = None
        self.seq = None
        self._resume_attempts = 0
