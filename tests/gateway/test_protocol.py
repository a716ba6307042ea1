"""Sans-I/O rules of the gateway session, one test per rule."""

from __future__ import annotations

import random

import pytest

from vsb.gateway.protocol import (
    NORMAL_CLOSE,
    RESUMABLE_CLOSE,
    ChunkAssembler,
    CloseCode,
    Fatal,
    Identify,
    Opcode,
    Reconnect,
    Send,
    SendLimiter,
    Session,
    ShardProtocol,
    ShardState,
    backoff_delay,
)
from vsb.secret import Secret

TOKEN = Secret("token-value-xyz")
INTERVAL_MS = 41_250
INTERVAL = INTERVAL_MS / 1000


class FixedRandom(random.Random):
    """random() always returns ``value``: jitter becomes predictable."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def new_protocol(jitter: float = 0.5, **kw: object) -> ShardProtocol:
    return ShardProtocol(TOKEN, 513, rng=FixedRandom(jitter), **kw)  # type: ignore[arg-type]


def hello(proto: ShardProtocol, now: float = 0.0) -> list[object]:
    proto.connect(now)
    return list(proto.receive(Opcode.HELLO, {"heartbeat_interval": INTERVAL_MS}, now))


def connected(now: float = 0.0, seq: int = 1) -> ShardProtocol:
    proto = new_protocol()
    hello(proto, now)
    proto.dispatched(seq)
    proto.ready("A", "ws://r1", now)
    return proto


def test_hello_first_heartbeat_after_interval_times_jitter() -> None:
    proto = new_protocol(jitter=0.25)
    hello(proto, now=100.0)
    assert proto.next_deadline() == pytest.approx(100.0 + INTERVAL * 0.25)
    assert proto.poll(100.0 + INTERVAL * 0.25 - 0.001) == []
    [beat] = proto.poll(100.0 + INTERVAL * 0.25)
    assert isinstance(beat, Send) and beat.heartbeat
    assert beat.payload == {"op": 1, "d": None}


def test_heartbeats_then_every_interval() -> None:
    proto = new_protocol(jitter=0.0)
    hello(proto)
    proto.poll(0.0)
    proto.receive(Opcode.HEARTBEAT_ACK, None, 0.1)
    assert proto.next_deadline() == pytest.approx(INTERVAL)
    [beat] = proto.poll(INTERVAL)
    assert isinstance(beat, Send)


def test_server_heartbeat_request_is_answered_at_once() -> None:
    proto = connected(seq=7)
    [beat] = proto.receive(Opcode.HEARTBEAT, None, 3.0)
    assert isinstance(beat, Send) and beat.payload == {"op": 1, "d": 7}


def test_heartbeat_carries_last_sequence_null_before_any() -> None:
    proto = new_protocol(jitter=0.0)
    hello(proto)
    [first] = proto.poll(0.0)
    assert isinstance(first, Send) and first.payload["d"] is None
    proto.receive(Opcode.HEARTBEAT_ACK, None, 0.0)
    proto.dispatched(42)
    [second] = proto.poll(INTERVAL)
    assert isinstance(second, Send) and second.payload["d"] == 42


def test_only_dispatch_advances_sequence() -> None:
    proto = connected(seq=5)
    proto.receive(Opcode.HEARTBEAT_ACK, None, 1.0)
    proto.dispatched(None)  # a dispatch without s keeps the last one
    assert proto.seq == 5
    proto.dispatched(6)
    assert proto.seq == 6


def test_missing_ack_when_next_beat_due_is_a_zombie_resume() -> None:
    proto = connected()
    proto.poll(INTERVAL * 0.5)  # first beat, never acknowledged
    [action] = proto.poll(INTERVAL * 1.5)
    assert isinstance(action, Reconnect)
    assert action.resume and action.reason == "zombie"
    assert action.close_code not in (1000, 1001)


def test_ack_state_resets_with_each_hello() -> None:
    proto = connected()
    proto.poll(INTERVAL * 0.5)  # unacknowledged beat on the old connection
    hello(proto, now=100.0)
    [beat] = proto.poll(100.0 + INTERVAL * 0.5)
    assert isinstance(beat, Send)


def test_latency_is_ack_time_minus_beat_time() -> None:
    proto = connected()
    proto.poll(INTERVAL * 0.5)
    proto.receive(Opcode.HEARTBEAT_ACK, None, INTERVAL * 0.5 + 0.125)
    assert proto.latency == pytest.approx(0.125)


def test_identify_payload() -> None:
    proto = new_protocol(shard_id=3, shard_count=8, large_threshold=100)
    proto.update_presence(status="idle")
    [action] = hello(proto)
    assert isinstance(action, Identify)
    d = action.payload["d"]
    assert action.payload["op"] == 2
    assert d["token"] == "token-value-xyz" and d["intents"] == 513
    assert d["shard"] == [3, 8] and d["large_threshold"] == 100
    assert set(d["properties"]) == {"os", "browser", "device"}
    assert d["presence"]["status"] == "idle"
    assert "token-value-xyz" not in repr(action)
    assert proto.state is ShardState.IDENTIFYING


def test_ready_makes_one_session_value() -> None:
    proto = connected(seq=1)
    assert proto.session == Session("A", 1, "ws://r1")
    assert proto.state is ShardState.CONNECTED


def test_resume_goes_to_resume_url_with_session_and_seq() -> None:
    proto = connected(seq=9)
    proto.receive(Opcode.RECONNECT, None, 1.0)
    assert proto.connect(2.0) == "ws://r1"
    [resume] = proto.receive(Opcode.HELLO, {"heartbeat_interval": INTERVAL_MS}, 2.0)
    assert isinstance(resume, Send)
    assert resume.payload == {
        "op": 6,
        "d": {"token": "token-value-xyz", "session_id": "A", "seq": 9},
    }
    assert proto.state is ShardState.RESUMING


def test_resume_url_survives_a_resume() -> None:
    proto = connected()
    proto.receive(Opcode.RECONNECT, None, 1.0)
    proto.connect(2.0)
    proto.receive(Opcode.HELLO, {"heartbeat_interval": INTERVAL_MS}, 2.0)
    proto.resumed(2.5)
    assert proto.state is ShardState.CONNECTED
    assert proto.connect(3.0) == "ws://r1"


def test_resume_attempts_are_bounded_then_identify() -> None:
    proto = ShardProtocol(TOKEN, 1, max_resume_attempts=2, rng=FixedRandom(0.5))
    proto.restore(Session("A", 3, "ws://r1"))
    kinds = []
    for attempt in range(3):
        proto.connect(float(attempt))
        [action] = proto.receive(Opcode.HELLO, {"heartbeat_interval": 1000}, 0.0)
        kinds.append(type(action).__name__)
        proto.closed(4000, float(attempt))
    assert kinds == ["Send", "Send", "Identify"]


def test_unreachable_resume_url_is_given_up_for_identify() -> None:
    # A session stored before a restart whose resume URL no longer answers:
    # every connection to it fails before HELLO.
    proto = new_protocol()
    proto.restore(Session("A", 3, "ws://gone"))
    resumes = []
    for attempt in range(proto.max_resume_attempts):
        assert proto.connect(float(attempt)) == "ws://gone"
        action = proto.closed(None, float(attempt))
        assert isinstance(action, Reconnect)
        resumes.append(action.resume)
    assert resumes == [True, True, False]
    assert proto.session is None and proto.seq is None
    assert proto.connect(10.0) is None  # the GET /gateway/bot URL
    [identify] = proto.receive(Opcode.HELLO, {"heartbeat_interval": 1000}, 10.0)
    assert isinstance(identify, Identify)


def test_failed_connects_and_failed_resumes_count_together() -> None:
    proto = new_protocol()
    proto.restore(Session("A", 3, "ws://r1"))
    proto.connect(0.0)
    proto.closed(None, 0.0)  # refused
    proto.connect(1.0)
    [resume] = proto.receive(Opcode.HELLO, {"heartbeat_interval": 1000}, 1.0)
    assert isinstance(resume, Send) and resume.payload["op"] == Opcode.RESUME
    proto.closed(4000, 1.5)  # closed before RESUMED
    proto.connect(2.0)
    action = proto.closed(None, 2.0)  # refused again: three in a row
    assert isinstance(action, Reconnect) and not action.resume
    assert proto.connect(3.0) is None


def test_resumed_restarts_the_count_of_resume_attempts() -> None:
    proto = new_protocol()
    proto.restore(Session("A", 3, "ws://r1"))
    for attempt in range(proto.max_resume_attempts - 1):
        proto.connect(float(attempt))
        proto.closed(None, float(attempt))
    proto.connect(5.0)
    proto.receive(Opcode.HELLO, {"heartbeat_interval": 1000}, 5.0)
    proto.resumed(5.0)
    for attempt in range(proto.max_resume_attempts - 1):
        assert proto.connect(6.0 + attempt) == "ws://r1"
        action = proto.closed(None, 6.0 + attempt)
        assert isinstance(action, Reconnect) and action.resume


def test_reconnect_opcode_closes_resumably() -> None:
    proto = connected()
    [action] = proto.receive(Opcode.RECONNECT, None, 1.0)
    assert action == Reconnect(True, RESUMABLE_CLOSE, "reconnect_requested")


def test_invalid_session_resumable_resumes() -> None:
    proto = connected()
    [action] = proto.receive(Opcode.INVALID_SESSION, True, 1.0)
    assert isinstance(action, Reconnect) and action.resume
    assert proto.session is not None


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_invalid_session_false_forgets_and_waits_1_to_5_s(jitter: float) -> None:
    proto = new_protocol(jitter=jitter)
    hello(proto)
    proto.ready("A", "ws://r1", 0.0)
    [action] = proto.receive(Opcode.INVALID_SESSION, False, 1.0)
    assert isinstance(action, Reconnect) and not action.resume
    assert 1.0 <= action.delay < 5.0
    assert proto.session is None and proto.connect(2.0) is None
    [identify] = proto.receive(Opcode.HELLO, {"heartbeat_interval": 1000}, 2.0)
    assert isinstance(identify, Identify)


FATAL = [4004, 4010, 4011, 4012, 4013, 4014]
NEW_SESSION = [4007, 4009]
RESUME = [4000, 4001, 4002, 4003, 4005, 4008, 1001, 1006, 1011, 4999]


@pytest.mark.parametrize("code", FATAL)
def test_fatal_close_codes_stop(code: int) -> None:
    proto = connected()
    action = proto.closed(code, 1.0)
    assert isinstance(action, Fatal) and action.close_code == code
    assert str(code) in action.message
    assert proto.state is ShardState.STOPPED
    with pytest.raises(RuntimeError):
        proto.connect(2.0)


@pytest.mark.parametrize("code", NEW_SESSION)
def test_new_session_close_codes_identify(code: int) -> None:
    proto = connected()
    action = proto.closed(code, 1.0)
    assert isinstance(action, Reconnect) and not action.resume
    assert proto.session is None


@pytest.mark.parametrize("code", [*RESUME, None])
def test_other_close_codes_resume(code: int | None) -> None:
    proto = connected()
    action = proto.closed(code, 1.0)
    assert isinstance(action, Reconnect) and action.resume
    assert proto.connect(2.0) == "ws://r1"


@pytest.mark.parametrize(
    ("code", "reconnect", "new_session"),
    [(c.value, c.reconnect, c.new_session) for c in CloseCode],
)
def test_close_code_enum_flags(code: int, reconnect: bool, new_session: bool) -> None:
    assert reconnect is (code not in FATAL)
    if reconnect:
        assert new_session is (code in NEW_SESSION)


def test_disallowed_intents_names_the_privileged_intent() -> None:
    proto = ShardProtocol(TOKEN, (1 << 1) | (1 << 15) | 1)
    action = proto.closed(4014, 0.0)
    assert isinstance(action, Fatal)
    assert "GUILD_MEMBERS" in action.message and "MESSAGE_CONTENT" in action.message
    assert "PRESENCES" not in action.message


def test_shutdown_is_1000_and_never_resumes() -> None:
    proto = connected()
    assert proto.shutdown() == NORMAL_CLOSE
    assert proto.session is None
    assert proto.closed(1000, 1.0) is None


def test_suspend_keeps_session_for_a_restart() -> None:
    proto = connected(seq=12)
    assert proto.suspend() == Session("A", 12, "ws://r1")
    assert proto.state is ShardState.STOPPED


def test_backoff_grows_capped_with_jitter() -> None:
    low, high = FixedRandom(0.0), FixedRandom(0.999)
    assert backoff_delay(0, low) == 0.0
    assert backoff_delay(1, low) == 0.5
    assert backoff_delay(4, high) == pytest.approx(8 * 0.9995)
    assert backoff_delay(30, high) <= 60.0


def test_repeated_failures_back_off_and_success_resets() -> None:
    proto = connected()
    delays = []
    for _ in range(3):
        action = proto.closed(None, 0.0)
        assert isinstance(action, Reconnect)
        delays.append(action.delay)
        proto.connect(0.0)
    assert delays == sorted(delays) and delays[0] > 0
    proto.receive(Opcode.HELLO, {"heartbeat_interval": 1000}, 0.0)
    proto.resumed(0.0)
    action = proto.closed(None, 0.0)
    assert isinstance(action, Reconnect) and action.delay == delays[0]


def test_send_limit_keeps_room_for_heartbeats() -> None:
    limiter = SendLimiter()
    limiter.reset(INTERVAL)
    reserved = limiter.reserved
    assert reserved >= 3
    sent = 0
    while limiter.acquire(0.0) == 0.0:
        sent += 1
    assert sent == 120 - reserved
    assert limiter.acquire(0.0) == pytest.approx(60.0)
    for _ in range(reserved):
        assert limiter.acquire(0.0, heartbeat=True) == 0.0
    assert limiter.acquire(0.0, heartbeat=True) > 0
    assert limiter.acquire(60.0) == 0.0  # the window slid past the burst


def test_send_limit_resets_per_connection() -> None:
    proto = connected()
    while proto.sends.acquire(0.0) == 0.0:
        pass
    hello(proto, now=1.0)
    assert proto.sends.acquire(1.0) == 0.0


def test_request_guild_members_payload_and_nonce() -> None:
    proto = connected()
    nonce, send = proto.request_guild_members(5, 0.0, user_ids=[1, 2], presences=True)
    assert len(nonce.encode()) <= 32
    assert send.payload == {
        "op": 8,
        "d": {
            "guild_id": "5",
            "limit": 0,
            "user_ids": ["1", "2"],
            "presences": True,
            "nonce": nonce,
        },
    }
    _, by_query = proto.request_guild_members(5, 0.0, query="ab", limit=10)
    assert by_query.payload["d"]["query"] == "ab"


def test_request_guild_members_rejects_long_nonce() -> None:
    proto = connected()
    with pytest.raises(ValueError, match="32 bytes"):
        proto.request_guild_members(5, 0.0, nonce="é" * 17)


def test_chunks_assembled_by_nonce_in_index_order() -> None:
    chunks = ChunkAssembler()
    chunks.expect("n1", 0.0, 10.0)
    assert chunks.feed("n1", 2, 3, "c2") is None
    assert chunks.feed("other", 0, 1, "x") is None
    assert chunks.feed(None, 0, 1, "x") is None
    assert chunks.feed("n1", 0, 3, "c0") is None
    done = chunks.feed("n1", 1, 3, "c1")
    assert done is not None and done.chunks == ("c0", "c1", "c2")
    assert chunks.next_deadline() == float("inf")


def test_chunks_time_out() -> None:
    chunks = ChunkAssembler()
    chunks.expect("n1", 0.0, 10.0)
    chunks.feed("n1", 0, 2, "c0")
    assert chunks.expire(9.9) == []
    assert chunks.expire(10.0) == [("n1", 1, 2)]
    assert chunks.feed("n1", 1, 2, "c1") is None


def test_presence_update_payload() -> None:
    proto = connected()
    send = proto.update_presence(status="dnd", activities=[{"name": "x", "type": 0}])
    assert send.payload == {
        "op": 3,
        "d": {
            "since": None,
            "activities": [{"name": "x", "type": 0}],
            "status": "dnd",
            "afk": False,
        },
    }
    with pytest.raises(ValueError):
        proto.update_presence(status="busy")
