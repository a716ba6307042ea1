"""The shard driver against the sandbox (vsb.sandbox), under trio's MockClock.

The four cases of the gateway issue and op 9 both ways, with the emulator's
own fault injection.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from vsb import models
from vsb.gateway import GatewayFatalError, Session, ShardManager
from vsb.sandbox import Sandbox, open_sandbox
from vsb.secret import Secret

INTERVAL = 41.25
INTENTS = (1 << 0) | (1 << 1) | (1 << 9) | (1 << 15)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
async def sb(autojump_clock: Any) -> AsyncIterator[Sandbox]:
    async with open_sandbox(serve_http=False) as sandbox:
        yield sandbox


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def __call__(self, shard_id: int, event_type: str, event: Any) -> None:
        self.events.append((event_type, event))

    def count(self, event_type: str) -> int:
        return sum(1 for t, _ in self.events if t == event_type)


def manager(sb: Sandbox, recorder: Recorder, **kw: Any) -> ShardManager:
    async def get_gateway_bot() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=sb.asgi_app)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(
                f"{sb.api_base}/gateway/bot",
                headers={"Authorization": f"Bot {sb.bot_token}"},
            )
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data

    return ShardManager(
        Secret(sb.bot_token),
        INTENTS,
        get_gateway_bot=get_gateway_bot,
        on_dispatch=recorder,
        rng=random.Random(5),
        **kw,
    )


async def wait_for(predicate: Any, timeout: float = 600.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def started(
    sb: Sandbox, nursery: trio.Nursery, **kw: Any
) -> tuple[ShardManager, Recorder]:
    recorder = Recorder()
    mgr = manager(sb, recorder, **kw)
    await nursery.start(mgr.run)
    await wait_for(lambda: recorder.count("GUILD_CREATE") >= 1)
    return mgr, recorder


def shard(mgr: ShardManager) -> dict[str, Any]:
    stats: dict[str, Any] = mgr.stats()["shards"][0]
    return stats


async def test_case1_silent_server_zombie_resumes_at_resume_url(
    sb: Sandbox, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    mgr, recorder = await started(sb, nursery)
    await wait_for(lambda: shard(mgr)["latency_s"] is not None)  # first ACK
    session_id = shard(mgr)["session_id"]
    sb.faults.stop_heartbeat_acks()
    silent_at = trio.current_time()
    await wait_for(lambda: len(sb.gateway.connections) == 2)
    first, second = sb.gateway.connections
    assert first.closed_by == "client" and first.close_code not in (1000, 1001)
    assert second.path == "/resume"
    assert second.opened_at - silent_at <= 2 * INTERVAL + 3.0
    await wait_for(lambda: recorder.count("RESUMED") == 1)
    assert second.received_ops[0] == 6 and 2 not in second.received_ops
    assert shard(mgr)["session_id"] == session_id
    await trio.sleep(3 * INTERVAL)
    assert len(sb.gateway.connections) == 2
    assert shard(mgr)["reconnects"] == {"zombie": 1}


async def test_case2_reconnect_opcode_resumes(
    sb: Sandbox, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    mgr, recorder = await started(sb, nursery)
    sb.faults.reconnect()
    await wait_for(lambda: recorder.count("RESUMED") == 1)
    first, second = sb.gateway.connections
    # The sandbox ends a session closed with 1000/1001 (RESUME then gets op 9).
    assert first.close_code not in (1000, 1001)
    assert second.received_ops[0] == 6
    assert recorder.count("READY") == 1
    message = await sb.post_message("after the resume")
    await wait_for(lambda: recorder.count("MESSAGE_CREATE") == 1)
    assert recorder.events[-1][1].id == message.id


@pytest.mark.parametrize("code", [4004, 4010, 4011, 4012, 4013, 4014])
async def test_case3_fatal_close_codes(
    sb: Sandbox, nursery: trio.Nursery, autojump_clock: Any, code: int
) -> None:
    recorder = Recorder()
    mgr = manager(sb, recorder)

    async def close_when_ready() -> None:
        await wait_for(lambda: recorder.count("GUILD_CREATE") >= 1)
        await sb.faults.close(code)

    nursery.start_soon(close_when_ready)
    with pytest.raises(GatewayFatalError) as info:
        await mgr.run()
    assert info.value.close_code == code and str(code) in str(info.value)
    await trio.sleep(120)
    assert len(sb.gateway.connections) == 1


@pytest.mark.parametrize(("code", "op"), [(4007, 2), (4009, 2), (4000, 6)])
async def test_case3_close_codes_identify_or_resume(
    sb: Sandbox, nursery: trio.Nursery, autojump_clock: Any, code: int, op: int
) -> None:
    mgr, recorder = await started(sb, nursery)
    await sb.faults.close(code)
    await wait_for(
        lambda: (
            len(sb.gateway.connections) == 2
            and bool(sb.gateway.connections[1].received_ops)
        )
    )
    assert sb.gateway.connections[1].received_ops[0] == op
    await wait_for(lambda: shard(mgr)["state"] == "connected")


async def test_case4_big_guild_create_in_four_frames(
    sb: Sandbox, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    guild_id = sb.default.guild_id
    sb.state.add_members(guild_id, 240 - len(sb.state.guilds[guild_id].members))
    for index in range(900):
        sb.state.add_role(guild_id, f"role-{index:04d}-" + "x" * 80, position=1)
    guild_json = sb.state.guild_create_json(
        sb.state.guilds[guild_id], large_threshold=250
    )
    assert len(json.dumps(guild_json)) > 200_000
    sb.faults.split_frames("GUILD_CREATE", frames=4)
    mgr, recorder = await started(sb, nursery)
    guild = next(e for t, e in recorder.events if t == "GUILD_CREATE")
    assert isinstance(guild, models.Guild)
    assert len(guild.members) == 240 and len(guild.roles) == len(guild_json["roles"])
    assert shard(mgr)["decode_errors"] == 0


async def test_invalid_session_resumable_resumes(
    sb: Sandbox, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    mgr, recorder = await started(sb, nursery)
    sb.faults.invalid_session(True)
    await wait_for(lambda: recorder.count("RESUMED") == 1)
    assert sb.gateway.connections[1].received_ops[0] == 6
    assert recorder.count("READY") == 1


async def test_invalid_session_false_identifies_after_1_to_5_s(
    sb: Sandbox, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    mgr, recorder = await started(sb, nursery)
    old = shard(mgr)["session_id"]
    sb.faults.invalid_session(False)
    sent_at = trio.current_time()
    await wait_for(lambda: recorder.count("READY") == 2)
    second = sb.gateway.connections[1]
    assert second.received_ops[0] == 2
    assert 1.0 <= second.opened_at - sent_at <= 5.5
    assert shard(mgr)["session_id"] != old


class StoredSession:
    """A session store holding one session, as a previous process left it."""

    def __init__(self, session: Session) -> None:
        self.session: Session | None = session

    async def load(self, shard_id: int) -> Session | None:
        return self.session

    async def save(self, shard_id: int, session: Session | None) -> None:
        self.session = session


async def test_stored_session_with_a_dead_resume_url_identifies(
    sb: Sandbox, nursery: trio.Nursery, autojump_clock: Any
) -> None:
    # Bound but never listening: every connection to it is refused.
    with trio.socket.socket() as dead:
        await dead.bind(("127.0.0.1", 0))
        port = dead.getsockname()[1]
        store = StoredSession(Session("gone", 41, f"ws://127.0.0.1:{port}/"))
        mgr, recorder = await started(sb, nursery, session_store=store)
    [first] = sb.gateway.connections
    assert first.path != "/resume"
    assert first.received_ops[0] == 2  # IDENTIFY, no RESUME
    assert recorder.count("READY") == 1
    assert shard(mgr)["reconnects"] == {"connection_lost": 3}
    assert shard(mgr)["state"] == "connected"
