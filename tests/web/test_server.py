"""The web service through a real hypercorn listener on 127.0.0.1."""

from __future__ import annotations

import logging

import httpx
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vsb.services.web import MAX_BODY_BYTES, InteractionVerifier, WebApp, WebService


async def test_serves_on_an_ephemeral_port_and_drains() -> None:
    app = WebApp()
    web = WebService(app, host="127.0.0.1", port=0, graceful_timeout=1.0)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(web.run)
        assert port > 0 and web.port == port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            live = await client.get("/livez")
            ready = await client.get("/readyz")
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        assert ready.status_code == 200
        assert "server" not in live.headers
        await web.drain()
    # run() returned on its own after drain: the nursery closed without cancel.
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/livez")


async def test_cancelling_the_nursery_stops_it() -> None:
    web = WebService(WebApp(), host="127.0.0.1", port=0)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(web.run)
        nursery.cancel_scope.cancel()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/livez")


async def test_port_in_use_fails_to_start() -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    web = WebService(WebApp(), host="127.0.0.1", port=port)
    with pytest.raises(BaseException) as info:  # OSError, maybe in a group
        async with trio.open_nursery() as nursery:
            await nursery.start(web.run)
    sock.close()
    error = info.value
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    assert isinstance(error, OSError)


async def test_big_body_and_client_gone_mid_body_on_a_real_listener(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    public = Ed25519PrivateKey.generate().public_key()
    key = public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    app = WebApp(interaction_verifier=InteractionVerifier(key))
    web = WebService(app, host="127.0.0.1", port=0)

    def requests_logged() -> int:
        return sum(1 for r in caplog.records if r.getMessage() == "web.request")

    async with trio.open_nursery() as nursery:
        port = await nursery.start(web.run)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            big = await client.post("/interactions", content=b"a" * 4 * MAX_BODY_BYTES)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(
            b"POST /interactions HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{"
        )
        await stream.aclose()  # gone with 999 bytes still to send
        with trio.fail_after(10):
            while requests_logged() < 2:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert big.status_code == 413 and big.json()["error"] == "payload_too_large"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    [gone] = [r for r in caplog.records if r.getMessage() == "web.client_disconnected"]
    assert gone.levelno == logging.INFO and gone.exc_info is None
