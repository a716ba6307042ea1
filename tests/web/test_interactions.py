"""POST /interactions: Ed25519 signatures, PING, and the handler."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vsb.models import Interaction
from vsb.services.web import InteractionVerifier, WebApp

NOW = 1_800_000_000.0
TOKEN = "interaction-token-secret-abcdef"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _body(type_: int, **extra: Any) -> bytes:
    payload = {
        "id": "10",
        "application_id": "20",
        "type": type_,
        "token": TOKEN,
        "version": 1,
    }
    return json.dumps({**payload, **extra}).encode()


def _signed(
    key: Ed25519PrivateKey, body: bytes, timestamp: str = str(int(NOW))
) -> dict[str, str]:
    signature = key.sign(timestamp.encode() + body).hex()
    return {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": timestamp}


class Handler:
    def __init__(self) -> None:
        self.seen: list[Interaction] = []

    async def __call__(self, interaction: Interaction) -> dict[str, Any]:
        self.seen.append(interaction)
        return {"type": 4, "data": {"content": "pong from handler", "flags": 64}}


def _client(key: Ed25519PrivateKey, handler: Any = None) -> httpx.AsyncClient:
    verifier = InteractionVerifier(_public_hex(key), clock=lambda: NOW)
    app = WebApp(interaction_verifier=verifier, interaction_handler=handler)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    )


async def test_ping_answers_pong(key: Ed25519PrivateKey) -> None:
    body = _body(1)
    async with _client(key) as client:
        response = await client.post(
            "/interactions", content=body, headers=_signed(key, body)
        )
    assert response.status_code == 200
    assert response.json() == {"type": 1}


async def test_command_goes_to_the_handler(key: Ed25519PrivateKey) -> None:
    handler = Handler()
    body = _body(2, guild_id="30", data={"id": "40", "name": "verify", "type": 1})
    async with _client(key, handler) as client:
        response = await client.post(
            "/interactions", content=body, headers=_signed(key, body)
        )
    assert response.status_code == 200
    assert response.json()["data"]["content"] == "pong from handler"
    assert handler.seen[0].data is not None and handler.seen[0].data.name == "verify"
    assert handler.seen[0].guild_id == 30


async def test_bad_signatures_are_401(key: Ed25519PrivateKey) -> None:
    body = _body(1)
    good = _signed(key, body)
    other = Ed25519PrivateKey.generate()
    cases = [
        {},
        {**good, "X-Signature-Ed25519": "zz"},
        {**good, "X-Signature-Ed25519": "00" * 64},
        _signed(other, body),
        {**good, "X-Signature-Timestamp": str(int(NOW) + 1)},
        _signed(key, body, timestamp=str(int(NOW) - 3600)),
        _signed(key, body, timestamp="nan"),
    ]
    handler = Handler()
    async with _client(key, handler) as client:
        for headers in cases:
            response = await client.post("/interactions", content=body, headers=headers)
            assert response.status_code == 401, headers
        tampered = await client.post("/interactions", content=_body(2), headers=good)
    assert tampered.status_code == 401
    assert handler.seen == []


async def test_malformed_signed_body_is_400(key: Ed25519PrivateKey) -> None:
    for body in (b"not json", b'{"type": 1}'):
        async with _client(key) as client:
            response = await client.post(
                "/interactions", content=body, headers=_signed(key, body)
            )
        assert response.status_code == 400


async def test_no_handler_is_503_and_failing_handler_is_500(
    key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(interaction: Interaction) -> dict[str, Any]:
        raise RuntimeError(f"boom {interaction.token}")

    body = _body(2)
    async with _client(key) as client:
        assert (
            await client.post("/interactions", content=body, headers=_signed(key, body))
        ).status_code == 503
    async with _client(key, broken) as client:
        response = await client.post(
            "/interactions", content=body, headers=_signed(key, body)
        )
    assert response.status_code == 500
    assert TOKEN not in response.text and TOKEN not in caplog.text


async def test_get_is_not_allowed(key: Ed25519PrivateKey) -> None:
    async with _client(key) as client:
        assert (await client.get("/interactions")).status_code == 405
