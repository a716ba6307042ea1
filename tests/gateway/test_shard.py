"""The trio shard driver against a scripted gateway, under trio's MockClock."""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import pytest
import trio
import trio.testing

from vsb import models
from vsb.gateway import GatewayFatalError, Session, ShardManager
from vsb.secret import Secret

INTERVAL = 41.25
INTENTS = (1 << 0) | (1 << 1) | (1 << 9) | (1 << 15)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[int, str, Any]] = []

    async def __call__(self, shard_id: int, event_type: str, event: Any) -> None:
        self.events.append((shard_id, event_type, event))

    def types(self) -> list[str]:
        return [t for _, t, _ in self.events]


def manager(gateway: Any, recorder: Recorder, **kw: Any) -> ShardManager:
    return ShardManager(
        Secret("bot-token-abcdef"),
        INTENTS,
        get_gateway_bot=gateway.gateway_bot,
        on_dispatch=recorder,
        rng=random.Random(7),
        **kw,
    )


async def wait_for(predicate: Any, timeout: float = 600.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def test_identify_ready_and_dispatch(
    gateway: Any, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    recorder = Recorder()
    mgr = manager(gateway, recorder)
    await nursery.start(mgr.run)
    await wait_for(lambda: "READY" in recorder.types())
    conn = gateway.connections[0]
    assert "v=10" in conn.path and "encoding=json" in conn.path
    assert "compress=zlib-stream" in conn.path
    identify = conn.received[0]
    assert identify["op"] == 2 and identify["d"]["shard"] == [0, 1]
    ready = recorder.events[0][2]
    assert isinstance(ready, models.Ready) and ready.session_id == "S0"
    stats = mgr.stats()["shards"][0]
    assert stats["state"] == "connected" and stats["session_id"] == "S0"
    assert stats["events"] == {"READY": 1}


async def test_case1_silent_server_is_a_zombie_resumed_at_r1(
    gateway: Any, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    # Only the first heartbeat of the first connection gets an ACK.
    gateway.ack = lambda conn, n: conn.index > 0 or n == 1
    recorder = Recorder()
    mgr = manager(gateway, recorder)
    await nursery.start(mgr.run)
    await wait_for(lambda: len(gateway.connections) == 2)
    first, second = gateway.connections
    await wait_for(lambda: first.closed_at is not None)
    assert first.client_close_code not in (1000, 1001)
    assert second.path.startswith("/r0")
    assert second.received[0] == {
        "op": 6,
        "d": {"token": "bot-token-abcdef", "session_id": "S0", "seq": 1},
    }
    # Detected within about two intervals of the last ACK.
    assert second.opened_at - first.opened_at <= 2 * INTERVAL + INTERVAL
    await wait_for(lambda: "RESUMED" in recorder.types())
    await trio.sleep(3 * INTERVAL)
    assert len(gateway.connections) == 2
    assert second.heartbeats >= 3
    assert mgr.stats()["shards"][0]["reconnects"] == {"zombie": 1}


async def test_case2_reconnect_opcode_resumes(
    gateway: Any, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    gateway.ready_seq = 5

    async def reconnect_once(conn: Any) -> None:
        if conn.index == 0:
            await gateway.send(conn, {"op": 7, "d": None})

    gateway.after_ready = reconnect_once
    recorder = Recorder()
    mgr = manager(gateway, recorder)
    await nursery.start(mgr.run)
    await wait_for(lambda: "RESUMED" in recorder.types())
    first, second = gateway.connections
    assert first.client_close_code not in (1000, 1001)
    assert second.received[0]["op"] == 6 and second.received[0]["d"]["seq"] == 5
    assert [p["op"] for c in gateway.connections for p in c.received].count(2) == 1
    assert mgr.stats()["shards"][0]["state"] == "connected"


@pytest.mark.parametrize("code", [4004, 4010, 4011, 4012, 4013, 4014])
async def test_case3_fatal_close_codes_stop_with_clear_error(
    gateway: Any, autojump_clock: Any, code: int
) -> None:
    async def close(conn: Any) -> None:
        await conn.ws.aclose(code)

    gateway.after_ready = close
    mgr = manager(gateway, Recorder())
    with pytest.raises(GatewayFatalError) as info:
        with trio.fail_after(600):
            await mgr.run()
    assert info.value.close_code == code
    assert str(code) in str(info.value)
    if code == 4014:
        assert "GUILD_MEMBERS" in str(info.value)
        assert "MESSAGE_CONTENT" in str(info.value)
    await trio.sleep(60)
    assert len(gateway.connections) == 1


@pytest.mark.parametrize(("code", "op"), [(4007, 2), (4009, 2), (4000, 6)])
async def test_case3_close_codes_identify_or_resume(
    gateway: Any, nursery: trio.Nursery, autojump_clock: Any, code: int, op: int
) -> None:
    async def close_once(conn: Any) -> None:
        if conn.index == 0:
            await conn.ws.aclose(code)

    gateway.after_ready = close_once
    mgr = manager(gateway, Recorder())
    await nursery.start(mgr.run)
    await wait_for(
        lambda: len(gateway.connections) == 2 and gateway.connections[1].received
    )
    assert gateway.connections[1].received[0]["op"] == op
    await wait_for(lambda: mgr.stats()["shards"][0]["state"] == "connected")
    assert mgr.stats()["shards"][0]["reconnects"] == {f"close_{code}": 1}


def guild_create(members: int = 1800) -> dict[str, Any]:
    rng = random.Random(1)
    return {
        "id": "900",
        "name": "big",
        "member_count": members,
        "roles": [{"id": "900", "name": "@everyone", "permissions": "1024"}],
        "channels": [{"id": "901", "type": 0, "name": "general"}],
        "members": [
            {
                "user": {
                    "id": str(1000 + i),
                    "username": "".join(rng.choice("abcdefghij") for _ in range(30)),
                    "avatar": f"{rng.getrandbits(128):032x}",
                },
                "roles": [],
                "joined_at": "2024-01-01T00:00:00+00:00",
            }
            for i in range(members)
        ],
    }


async def test_case4_guild_create_split_over_four_frames(
    gateway: Any, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    body = guild_create()
    assert len(json.dumps(body)) > 200_000

    async def big_guild(conn: Any) -> None:
        await gateway.dispatch(conn, "S0", "GUILD_CREATE", body, split=4)

    gateway.after_ready = big_guild
    recorder = Recorder()
    mgr = manager(gateway, recorder)
    await nursery.start(mgr.run)
    await wait_for(lambda: "GUILD_CREATE" in recorder.types())
    guild = recorder.events[-1][2]
    assert isinstance(guild, models.Guild)
    assert guild.id == 900 and len(guild.members) == 1800
    assert guild.members[-1].user.id == 2799


async def test_heartbeats_keep_schedule_while_a_message_arrives_slowly(
    gateway: Any, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    body = guild_create(400)
    window: list[float] = []

    async def slow_guild(conn: Any) -> None:
        # Like Discord, ACKs wait behind the payload already on the wire.
        conn.hold_acks = True
        payload = {"op": 0, "s": 2, "t": "GUILD_CREATE", "d": body}
        data = conn.compressor.compress(json.dumps(payload).encode())
        data += conn.compressor.flush(2)  # Z_SYNC_FLUSH
        step = len(data) // 4 + 1
        window.append(trio.current_time())
        for i in range(0, len(data), step):
            await conn.ws.send_message(data[i : i + step])
            await trio.sleep(12.0)  # 4 frames over ~48 s
        window.append(trio.current_time())
        conn.hold_acks = False
        for _ in range(conn.held_acks):
            await gateway.send(conn, {"op": 11})

    async def after_ready(conn: Any) -> None:
        nursery.start_soon(slow_guild, conn)

    gateway.after_ready = after_ready
    recorder = Recorder()
    mgr = manager(gateway, recorder)
    await nursery.start(mgr.run)
    await wait_for(lambda: "GUILD_CREATE" in recorder.types())
    await trio.sleep(3 * INTERVAL)
    conn = gateway.connections[0]
    start, end = window
    assert any(start < t < end for t in conn.heartbeat_times)
    gaps = [b - a for a, b in zip(conn.heartbeat_times, conn.heartbeat_times[1:])]
    assert gaps and all(g == pytest.approx(INTERVAL, abs=0.5) for g in gaps)
    assert len(gateway.connections) == 1


async def test_invalid_session_true_resumes(
    gateway: Any, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    async def invalid_once(conn: Any) -> None:
        if conn.index == 0:
            await gateway.send(conn, {"op": 9, "d": True})

    gateway.after_ready = invalid_once
    recorder = Recorder()
    mgr = manager(gateway, recorder)
    await nursery.start(mgr.run)
    await wait_for(lambda: "RESUMED" in recorder.types())
    assert gateway.connections[1].received[0]["op"] == 6


async def test_invalid_session_false_identifies_after_1_to_5_s(
    gateway: Any, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    sent_at: list[float] = []

    async def invalid_once(conn: Any) -> None:
        if conn.index == 0:
            sent_at.append(trio.current_time())
            await gateway.send(conn, {"op": 9, "d": False})

    gateway.after_ready = invalid_once
    recorder = Recorder()
    mgr = manager(gateway, recorder)
    await nursery.start(mgr.run)
    await wait_for(lambda: recorder.types().count("READY") == 2)
    second = gateway.connections[1]
    assert second.received[0]["op"] == 2
    assert 1.0 <= second.opened_at - sent_at[0] <= 5.5
    assert mgr.stats()["shards"][0]["session_id"] == "S1"


async def test_malformed_event_is_logged_and_skipped(
    gateway: Any,
    nursery: trio.Nursery,
    autojump_clock: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def bad_then_good(conn: Any) -> None:
        await gateway.dispatch(conn, "S0", "MESSAGE_CREATE", {"id": "1"})
        await gateway.dispatch(conn, "S0", "GUILD_DELETE", {"id": "5"})

    gateway.after_ready = bad_then_good
    recorder = Recorder()
    mgr = manager(gateway, recorder)
    await nursery.start(mgr.run)
    await wait_for(lambda: "GUILD_DELETE" in recorder.types())
    assert "MESSAGE_CREATE" not in recorder.types()
    [record] = [r for r in caplog.records if r.msg == "gateway.event_decode_failed"]
    assert record.event_type == "MESSAGE_CREATE" and record.seq == 2  # type: ignore[attr-defined]
    stats = mgr.stats()["shards"][0]
    assert stats["decode_errors"] == 1 and stats["seq"] == 3
    assert not any("bot-token-abcdef" in repr(vars(r)) for r in caplog.records)


async def test_request_guild_members_assembles_chunks(
    gateway: Any, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    async def on_payload(conn: Any, payload: dict[str, Any]) -> None:
        if payload["op"] == 8:
            d = payload["d"]
            for index in (1, 0):
                chunk = {
                    "guild_id": d["guild_id"],
                    "members": [{"user": {"id": str(index + 1)}}],
                    "chunk_index": index,
                    "chunk_count": 2,
                    "nonce": d["nonce"],
                }
                await gateway.dispatch(conn, "S0", "GUILD_MEMBERS_CHUNK", chunk)
        else:
            await original(conn, payload)

    original = gateway.on_payload
    gateway.on_payload = on_payload
    recorder = Recorder()
    mgr = manager(gateway, recorder)
    await nursery.start(mgr.run)
    await wait_for(lambda: mgr.stats()["shards"][0]["state"] == "connected")
    chunks = await mgr.request_guild_members(5 << 22, query="", limit=0)
    assert [c.chunk_index for c in chunks] == [0, 1]
    assert recorder.types().count("GUILD_MEMBERS_CHUNK") == 2


async def test_request_guild_members_times_out(
    gateway: Any, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    from vsb.gateway import MemberRequestTimeout

    mgr = manager(gateway, Recorder())
    await nursery.start(mgr.run)
    await wait_for(lambda: mgr.stats()["shards"][0]["state"] == "connected")
    with pytest.raises(MemberRequestTimeout):
        await mgr.request_guild_members(1, user_ids=[1], timeout=10.0)


async def test_shutdown_closes_with_1000(gateway: Any, autojump_clock: Any) -> None:
    mgr = manager(gateway, Recorder())
    async with trio.open_nursery() as nursery:
        await nursery.start(mgr.run)
        await wait_for(lambda: mgr.stats()["shards"][0]["state"] == "connected")
        nursery.cancel_scope.cancel()
    await wait_for(lambda: gateway.connections[0].closed_at is not None)
    assert gateway.connections[0].client_close_code == 1000
    assert mgr.stats()["shards"][0]["state"] == "stopped"


@pytest.mark.parametrize("compress", ["zstd-stream", "none"])
async def test_other_transport_compressions(
    gateway: Any, nursery: trio.Nursery, autojump_clock: Any, compress: str
) -> None:
    body = guild_create(300)

    async def guild(conn: Any) -> None:
        await gateway.dispatch(conn, "S0", "GUILD_CREATE", body, split=3)

    gateway.after_ready = guild
    recorder = Recorder()
    mgr = manager(gateway, recorder, compress=compress)
    await nursery.start(mgr.run)
    await wait_for(lambda: "GUILD_CREATE" in recorder.types())
    assert len(recorder.events[-1][2].members) == 300
    path = gateway.connections[0].path
    assert ("compress=" not in path) if compress == "none" else (compress in path)


class UnreachableStore:
    """A stored session whose resume URL nothing listens on."""

    def __init__(self) -> None:
        self.saved: list[Any] = []

    async def load(self, shard_id: int) -> Any:
        return Session("A", 7, "ws://127.0.0.1:1/")

    async def save(self, shard_id: int, session: Any) -> None:
        self.saved.append(session)


@pytest.mark.parametrize(
    ("failures", "saved"),
    [
        # Cancelled while still trying the resume URL: the session is kept.
        (2, Session("A", 7, "ws://127.0.0.1:1/")),
        # Three connections to it failed: the session was given up.
        (3, None),
    ],
)
async def test_cancel_between_connections_saves_the_session(
    autojump_clock: Any, failures: int, saved: Session | None
) -> None:
    async def gateway_bot() -> dict[str, Any]:
        return {"url": "ws://127.0.0.1:1/", "shards": 1}

    store = UnreachableStore()
    mgr = ShardManager(
        Secret("t"),
        1,
        get_gateway_bot=gateway_bot,
        on_dispatch=Recorder(),
        session_store=store,
        rng=random.Random(1),
    )

    def lost() -> int:
        reconnects: dict[str, int] = mgr.stats()["shards"][0]["reconnects"]
        return reconnects.get("connection_lost", 0)

    async with trio.open_nursery() as nursery:
        await nursery.start(mgr.run)
        await wait_for(lambda: lost() == failures)  # waiting out the backoff
        nursery.cancel_scope.cancel()
    stats = mgr.stats()["shards"][0]
    assert stats["connections"] == failures and stats["state"] == "stopped"
    assert store.saved == [saved]
