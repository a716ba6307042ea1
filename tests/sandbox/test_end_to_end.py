"""The issue's end-to-end case: zlib-stream connect, identify, READY,
GUILD_CREATE, a message posted through REST arrives as MESSAGE_CREATE."""

from __future__ import annotations

import httpx
import trio

from vsb.sandbox import Sandbox


async def test_zlib_stream_identify_ready_guild_create_and_message(
    sb: Sandbox, connect, http: httpx.AsyncClient
) -> None:
    with trio.fail_after(10):
        gw = (await http.get("/gateway/bot")).json()
        assert gw["url"] == sb.gateway_url
        client, hello = await connect("zlib-stream", url=gw["url"])
        assert hello["op"] == 10
        ready = await client.identify(sb.bot_token)
        assert ready["s"] == 1
        assert ready["d"]["session_id"]
        assert ready["d"]["resume_gateway_url"] == sb.resume_gateway_url
        guild_create = await client.recv_dispatch("GUILD_CREATE")
        assert guild_create["s"] == 2
        assert guild_create["d"]["id"] == str(sb.default.guild_id)

        response = await http.post(
            f"/channels/{sb.default.general_id}/messages", json={"content": "hello"}
        )
        assert response.status_code == 200
        created = await client.recv_dispatch("MESSAGE_CREATE")
        assert created["s"] == 3
        assert created["d"]["id"] == response.json()["id"]
        assert created["d"]["content"] == "hello"
        assert all(isinstance(f, bytes) for f in client.frames)


async def test_scenario_post_message_reaches_gateway(sb: Sandbox, connect) -> None:
    with trio.fail_after(10):
        client, _ = await connect()
        await client.identify(sb.bot_token)
        await client.recv_dispatch("GUILD_CREATE")
        message = await sb.post_message("from a member")
        created = await client.recv_dispatch("MESSAGE_CREATE")
        assert created["d"]["id"] == str(message.id)
        assert created["d"]["author"]["id"] == str(sb.default.member_id)
        assert created["d"]["guild_id"] == str(sb.default.guild_id)
