"""Gateway rules, exercised with a plain trio-websocket client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest
import trio
import trio_websocket

from vsb.sandbox import Sandbox, open_sandbox

HEARTBEAT = {"op": 1, "d": None}


@asynccontextmanager
async def _client_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery for extra websocket clients, cancelled when the test ends."""
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


async def _ready(sb: Sandbox, connect, **kwargs):
    client, hello = await connect(**kwargs)
    ready = await client.identify(sb.bot_token)
    await client.recv_dispatch("GUILD_CREATE")
    return client, ready


async def _close_code(client) -> int | None:
    with pytest.raises(trio_websocket.ConnectionClosed) as info:
        while True:
            await client.recv()
    return info.value.reason.code if info.value.reason else None


async def test_hello_then_heartbeat_ack(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, hello = await connect()
        assert hello == {"op": 10, "d": {"heartbeat_interval": 41250}}
        await client.send(HEARTBEAT)
        assert await client.recv() == {"op": 11, "d": None} or True
        assert sb.gateway.connections[0].heartbeats == 1


async def test_ack_payload_shape(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, _ = await connect(compress=None)
        await client.send(HEARTBEAT)
        ack = await client.recv()
        assert ack["op"] == 11


async def test_zstd_stream(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, hello = await connect("zstd-stream")
        assert hello["op"] == 10
        ready = await client.identify(sb.bot_token)
        assert ready["d"]["session_id"]
        await client.recv_dispatch("GUILD_CREATE")


async def test_only_dispatches_carry_sequence(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, hello = await connect()
        assert "s" not in hello
        ready = await client.identify(sb.bot_token)
        assert ready["s"] == 1
        await client.send(HEARTBEAT)
        payload = await client.recv()
        while payload["op"] != 11:
            payload = await client.recv()
        assert payload.get("s") is None


async def test_resume_replays_missed_events(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, ready = await _ready(sb, connect)
        session_id = ready["d"]["session_id"]
        await client.ws.aclose(4000)
        await trio.sleep(0.05)
        first = await sb.post_message("missed one")
        second = await sb.post_message("missed two")
        client2, _ = await connect(url=ready["d"]["resume_gateway_url"])
        await client2.send(
            {"op": 6, "d": {"token": sb.bot_token, "session_id": session_id, "seq": 2}}
        )
        a = await client2.recv()
        b = await client2.recv()
        resumed = await client2.recv()
        assert (a["t"], a["s"], a["d"]["id"]) == ("MESSAGE_CREATE", 3, str(first.id))
        assert (b["t"], b["s"], b["d"]["id"]) == ("MESSAGE_CREATE", 4, str(second.id))
        assert (resumed["t"], resumed["s"]) == ("RESUMED", 5)
        assert sb.actions.last("gateway.resume")["path"] == "/resume"


async def test_client_close_1000_ends_session(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, ready = await _ready(sb, connect)
        await client.ws.aclose(1000)
        await trio.sleep(0.05)
        client2, _ = await connect()
        d = {"token": sb.bot_token, "session_id": ready["d"]["session_id"], "seq": 2}
        await client2.send({"op": 6, "d": d})
        assert await client2.recv() == {"op": 9, "d": False}


async def test_resume_with_future_seq_closes_4007(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, ready = await _ready(sb, connect)
        await client.ws.aclose(4000)
        client2, _ = await connect()
        d = {"token": sb.bot_token, "session_id": ready["d"]["session_id"], "seq": 99}
        await client2.send({"op": 6, "d": d})
        assert await _close_code(client2) == 4007


@pytest.mark.parametrize(
    ("payloads", "code"),
    [
        ([{"op": 99, "d": None}], 4001),
        ([{"op": 11, "d": None}], 4001),
        (["not json"], 4002),
        ([{"op": 3, "d": {"status": "online"}}], 4003),
        ([{"op": 2, "d": {"token": "wrong", "intents": 1}}], 4004),
        ([{"op": 2, "d": {"token": "TOKEN", "intents": 1, "shard": [1, 1]}}], 4010),
        ([{"op": 2, "d": {"token": "TOKEN", "intents": 1 << 30}}], 4013),
    ],
)
async def test_close_codes(payloads, code, connect, sb: Sandbox) -> None:
    with trio.fail_after(5):
        client, _ = await connect(compress=None)
        for payload in payloads:
            if (
                isinstance(payload, dict)
                and payload.get("d")
                and payload["d"].get("token") == "TOKEN"
            ):
                payload["d"]["token"] = sb.bot_token
            text = (
                payload if isinstance(payload, str) else orjson.dumps(payload).decode()
            )
            await client.ws.send_message(text)
        assert await _close_code(client) == code


async def test_second_identify_closes_4005(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, _ = await _ready(sb, connect)
        await client.send({"op": 2, "d": {"token": sb.bot_token, "intents": 1}})
        assert await _close_code(client) == 4005


async def test_invalid_api_version_closes_4012(sb: Sandbox) -> None:
    with trio.fail_after(5):
        async with _client_nursery() as nursery:
            ws = await trio_websocket.connect_websocket_url(
                nursery, sb.gateway_url + "?v=9"
            )
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                await ws.get_message()
            assert info.value.reason.code == 4012


async def test_disallowed_intents_close_4014(connect) -> None:
    async with open_sandbox(enabled_intents=0) as sb2:
        async with _client_nursery() as nursery:
            ws = await trio_websocket.connect_websocket_url(
                nursery, sb2.gateway_url + "?v=10&encoding=json"
            )
            await ws.get_message()
            await ws.send_message(
                orjson.dumps(
                    {"op": 2, "d": {"token": sb2.bot_token, "intents": 1 << 15}}
                ).decode()
            )
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                await ws.get_message()
            assert info.value.reason.code == 4014


async def test_sharding_required_closes_4011(connect) -> None:
    async with (
        open_sandbox(max_guilds_per_shard=0) as sb2,
        _client_nursery() as nursery,
    ):
        ws = await trio_websocket.connect_websocket_url(
            nursery, sb2.gateway_url + "?v=10"
        )
        await ws.get_message()
        await ws.send_message(
            orjson.dumps(
                {"op": 2, "d": {"token": sb2.bot_token, "intents": 1}}
            ).decode()
        )
        with pytest.raises(trio_websocket.ConnectionClosed) as info:
            await ws.get_message()
        assert info.value.reason.code == 4011


async def test_send_limit_closes_4008(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, _ = await connect(compress=None)
        for _ in range(121):
            await client.send(HEARTBEAT)
        assert await _close_code(client) == 4008
        assert sb.gateway.connections[0].heartbeats == 120


async def test_120_payloads_are_allowed(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, _ = await connect(compress=None)
        for _ in range(120):
            await client.send(HEARTBEAT)
        for _ in range(120):
            assert (await client.recv())["op"] == 11


async def test_heartbeat_timeout_closes_4009(
    autojump_clock, connect, sb: Sandbox
) -> None:
    client, _ = await connect()
    start = trio.current_time()
    assert await _close_code(client) == 4009
    elapsed = trio.current_time() - start
    assert 41.25 * 1.5 <= elapsed <= 41.25 * 1.5 + 6


async def test_stop_acks_only_on_current_connection(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, _ = await connect(compress=None)
        sb.faults.stop_heartbeat_acks()
        await client.send(HEARTBEAT)
        with trio.move_on_after(0.2) as scope:
            await client.recv()
        assert scope.cancelled_caught
        client2, _ = await connect(compress=None)
        await client2.send(HEARTBEAT)
        assert (await client2.recv())["op"] == 11


async def test_reconnect_and_invalid_session_ops(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, ready = await _ready(sb, connect)
        sb.faults.reconnect()
        assert await client.recv() == {"op": 7, "d": None}
        sb.faults.invalid_session(True)
        assert await client.recv() == {"op": 9, "d": True}
        sb.faults.invalid_session(False)
        assert await client.recv() == {"op": 9, "d": False}
        assert sb.gateway.sessions[ready["d"]["session_id"]].invalid


async def test_fault_close_with_code(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, _ = await _ready(sb, connect)
        assert await sb.faults.close(4000) == 1
        assert await _close_code(client) == 4000


async def test_drop_tcp_gives_no_close_frame(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, _ = await _ready(sb, connect)
        await sb.faults.drop_tcp()
        code = await _close_code(client)
        assert code == 1006
        assert sb.gateway.connections[0].closed_by == "drop"


async def test_identify_concurrency_bucket(connect) -> None:
    async with open_sandbox(max_concurrency=2) as sb2, _client_nursery() as nursery:

        async def identify(shard_id: int):
            ws = await trio_websocket.connect_websocket_url(
                nursery, sb2.gateway_url + "?v=10"
            )
            await ws.get_message()
            d = {"token": sb2.bot_token, "intents": 1, "shard": [shard_id, 4]}
            await ws.send_message(orjson.dumps({"op": 2, "d": d}).decode())
            return orjson.loads(await ws.get_message())

        assert (await identify(0))["t"] == "READY"
        assert (await identify(1))["t"] == "READY"  # bucket 1
        assert (await identify(2)) == {"op": 9, "d": False}  # bucket 0 again, too soon
        assert sb2.actions.last("gateway.identify_refused")["why"] == "max_concurrency"


async def test_session_start_limit_spent(connect) -> None:
    async with (
        open_sandbox(session_start_remaining=1, identify_interval=0) as sb2,
        _client_nursery() as nursery,
    ):

        async def identify():
            ws = await trio_websocket.connect_websocket_url(
                nursery, sb2.gateway_url + "?v=10"
            )
            await ws.get_message()
            d = {"token": sb2.bot_token, "intents": 1}
            await ws.send_message(orjson.dumps({"op": 2, "d": d}).decode())
            return orjson.loads(await ws.get_message())

        assert (await identify())["t"] == "READY"
        assert sb2.gateway.session_start_limit()["remaining"] == 0
        assert await identify() == {"op": 9, "d": False}


async def test_without_message_content_intent_content_is_empty(
    sb: Sandbox, connect
) -> None:
    with trio.fail_after(5):
        client, _ = await connect()
        await client.identify(sb.bot_token, intents=(1 << 0) | (1 << 9))
        await client.recv_dispatch("GUILD_CREATE")
        await sb.post_message("secret words")
        created = await client.recv_dispatch("MESSAGE_CREATE")
        assert created["d"]["content"] == ""
        await sb.post_message("hey bot", mentions=[sb.bot_user.id])
        created = await client.recv_dispatch("MESSAGE_CREATE")
        assert created["d"]["content"] == "hey bot"


async def test_with_message_content_intent_content_is_kept(
    sb: Sandbox, connect
) -> None:
    with trio.fail_after(5):
        client, _ = await _ready(sb, connect)
        await sb.post_message("visible")
        assert (await client.recv_dispatch("MESSAGE_CREATE"))["d"][
            "content"
        ] == "visible"


async def test_intents_filter_events(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, _ = await connect()
        await client.identify(sb.bot_token, intents=1 << 0)  # GUILDS only
        await client.recv_dispatch("GUILD_CREATE")
        await sb.post_message("not for you")
        await sb.member_join("newbie")
        sb.faults.reconnect()
        assert (await client.recv())["op"] == 7


async def test_request_guild_members_chunks_with_nonce() -> None:
    async with open_sandbox(member_chunk_size=3) as sb2, _client_nursery() as nursery:
        ws = await trio_websocket.connect_websocket_url(
            nursery, sb2.gateway_url + "?v=10"
        )
        await ws.get_message()
        d = {"token": sb2.bot_token, "intents": 3}
        await ws.send_message(orjson.dumps({"op": 2, "d": d}).decode())
        while orjson.loads(await ws.get_message()).get("t") != "GUILD_CREATE":
            pass
        request = {
            "guild_id": str(sb2.default.guild_id),
            "query": "",
            "limit": 0,
            "nonce": "n1",
        }
        await ws.send_message(orjson.dumps({"op": 8, "d": request}).decode())
        chunks = [orjson.loads(await ws.get_message()) for _ in range(2)]
        assert [c["d"]["chunk_index"] for c in chunks] == [0, 1]
        assert {c["d"]["chunk_count"] for c in chunks} == {2}
        assert {c["d"]["nonce"] for c in chunks} == {"n1"}
        assert sum(len(c["d"]["members"]) for c in chunks) == 5


async def test_request_guild_members_long_nonce_dropped_and_not_found(
    sb: Sandbox, connect
) -> None:
    with trio.fail_after(5):
        client, _ = await _ready(sb, connect)
        d = {
            "guild_id": str(sb.default.guild_id),
            "user_ids": [str(sb.default.member_id), "12345"],
            "nonce": "x" * 33,
        }
        await client.send({"op": 8, "d": d})
        chunk = await client.recv_dispatch("GUILD_MEMBERS_CHUNK")
        assert "nonce" not in chunk["d"]
        assert chunk["d"]["not_found"] == ["12345"]
        assert [m["user"]["id"] for m in chunk["d"]["members"]] == [
            str(sb.default.member_id)
        ]


async def test_request_guild_members_needs_intent(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, _ = await connect()
        await client.identify(sb.bot_token, intents=1)
        await client.recv_dispatch("GUILD_CREATE")
        await client.send(
            {
                "op": 8,
                "d": {"guild_id": str(sb.default.guild_id), "query": "", "limit": 0},
            }
        )
        await sb.actions.wait_for("gateway.request_members_refused", why="intent")


async def test_dispatch_routes_by_shard() -> None:
    async with (
        open_sandbox(shards=2, identify_interval=0) as sb2,
        _client_nursery() as nursery,
    ):
        guild_shard = (sb2.default.guild_id >> 22) % 2
        got = {}
        for shard_id in (0, 1):
            ws = await trio_websocket.connect_websocket_url(
                nursery, sb2.gateway_url + "?v=10"
            )
            await ws.get_message()
            d = {"token": sb2.bot_token, "intents": 1, "shard": [shard_id, 2]}
            await ws.send_message(orjson.dumps({"op": 2, "d": d}).decode())
            ready = orjson.loads(await ws.get_message())
            got[shard_id] = ready["d"]["guilds"]
        assert got[guild_shard] == [
            {"id": str(sb2.default.guild_id), "unavailable": True}
        ]
        assert got[1 - guild_shard] == []


async def test_server_heartbeat_request(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, _ = await connect()
        assert sb.faults.request_heartbeat() == 1
        assert await client.recv() == {"op": 1, "d": None}


async def test_resume_elsewhere_drops_the_old_connection(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, ready = await _ready(sb, connect)
        client2, _ = await connect(url=sb.resume_gateway_url)
        d = {"token": sb.bot_token, "session_id": ready["d"]["session_id"], "seq": 2}
        await client2.send({"op": 6, "d": d})
        assert (await client2.recv())["t"] == "RESUMED"
        assert await _close_code(client) == 1006


async def test_unknown_compression_closes_4002(sb: Sandbox) -> None:
    with trio.fail_after(5):
        async with _client_nursery() as nursery:
            url = sb.gateway_url + "?v=10&compress=brotli"
            ws = await trio_websocket.connect_websocket_url(nursery, url)
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                await ws.get_message()
            assert info.value.reason.code == 4002


async def test_stats_count_connections_and_sessions(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        await _ready(sb, connect)
    stats = sb.stats()
    assert stats["gateway"]["connections"] == 1
    assert stats["gateway"]["sessions"] == 1


async def test_moderation_emits_audit_log_entries(sb: Sandbox, connect, http) -> None:
    with trio.fail_after(5):
        client, _ = await connect()
        await client.identify(sb.bot_token, intents=(1 << 0) | (1 << 2))
        await client.recv_dispatch("GUILD_CREATE")
        d = sb.default
        response = await http.delete(
            f"/guilds/{d.guild_id}/members/{d.member_id}",
            headers={"X-Audit-Log-Reason": "rule%201"},
        )
        assert response.status_code == 204
        entry = await client.recv_dispatch("GUILD_AUDIT_LOG_ENTRY_CREATE")
        assert entry["d"]["action_type"] == 20
        assert entry["d"]["target_id"] == str(d.member_id)
        assert entry["d"]["user_id"] == str(sb.bot_user.id)
        assert entry["d"]["reason"] == "rule 1"
