"""Fixtures for the REST client tests: the sandbox served in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from vsb.rest import RestClient
from vsb.sandbox import Sandbox, open_sandbox
from vsb.secret import Secret

API_BASE = "http://sandbox.test/api/v10"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with open_sandbox(serve_http=False) as sb:
        yield sb


@pytest.fixture
async def rest(sandbox: Sandbox) -> AsyncIterator[RestClient]:
    transport = httpx.ASGITransport(app=sandbox.asgi_app)
    client = RestClient(
        Secret(sandbox.bot_token),
        api_base=API_BASE,
        transport=transport,
        wall_clock=sandbox.clock.unix,
    )
    async with client:
        yield client
