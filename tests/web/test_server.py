"""The web service through a real hypercorn listener on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest
import trio

from vsb.services.web import WebApp, WebService


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
