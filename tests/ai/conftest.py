"""Fixtures for the Groq client tests: the emulator served in process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from vsb.sandbox.groq import ASGI_API_BASE, GroqEmulator
from vsb.secret import Secret
from vsb.services.ai import GroqClient

KEY = "gsk_test_key_never_logged"


@pytest.fixture
def emulator() -> GroqEmulator:
    return GroqEmulator(api_key=KEY)


@pytest.fixture
async def ai(emulator: GroqEmulator) -> AsyncIterator[GroqClient]:
    client = GroqClient(
        Secret(KEY),
        api_base=ASGI_API_BASE,
        transport=httpx.ASGITransport(app=emulator.asgi_app),
        timeout_s=10.0,
        breaker_threshold=3,
        breaker_cooldown_s=30.0,
        max_retry_wait_s=5.0,
        cache_ttl_s=600.0,
    )
    async with client:
        yield client
