"""POST /interactions: Ed25519 signatures, PING, and the handler."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vsb.models import Interaction
from vsb.services.web import MAX_BODY_BYTES, InteractionVerifier, WebApp

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


async def test_body_over_the_cap_is_413_before_the_handler(
    key: Ed25519PrivateKey,
) -> None:
    handler = Handler()
    pad = "a" * MAX_BODY_BYTES
    body = _body(2, data={"id": "40", "name": "verify", "type": 1}, pad=pad)
    async with _client(key, handler) as client:
        response = await client.post(
            "/interactions", content=body, headers=_signed(key, body)
        )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert handler.seen == []


async def test_declared_length_over_the_cap_is_413_without_reading(
    key: Ed25519PrivateKey,
) -> None:
    # Content-Length alone decides: not one chunk of the body is read.
    received: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        more = len(received) < 3
        message = {"type": "http.request", "body": b"{", "more_body": more}
        received.append(message)
        return message

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    verifier = InteractionVerifier(_public_hex(key), clock=lambda: NOW)
    app = WebApp(interaction_verifier=verifier)
    headers = [(b"content-length", str(20 * 1024 * 1024).encode())]
    await app(_scope("POST", "/interactions", headers), receive, send)
    assert sent[0]["status"] == 413 and received == []


async def test_streamed_body_is_cut_off_at_the_cap(key: Ed25519PrivateKey) -> None:
    chunk = 16 * 1024
    pulled = 0

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length
        nonlocal pulled
        for _ in range(2000):  # 32 MiB if read to the end
            pulled += 1
            yield b"a" * chunk

    async with _client(key) as client:
        response = await client.post(
            "/interactions",
            content=chunked(),
            headers={"X-Signature-Ed25519": "00" * 64, "X-Signature-Timestamp": "1"},
        )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert pulled <= MAX_BODY_BYTES // chunk + 2


async def test_client_gone_mid_body_is_a_quiet_log_line(
    key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    messages = iter(
        [
            {"type": "http.request", "body": b'{"type": 1', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        pass

    verifier = InteractionVerifier(_public_hex(key), clock=lambda: NOW)
    app = WebApp(interaction_verifier=verifier)
    await app(_scope("POST", "/interactions", []), receive, send)  # no raise
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    [gone] = [r for r in caplog.records if r.getMessage() == "web.client_disconnected"]
    assert gone.exc_info is None and gone.levelno <= logging.INFO


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> Any:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
    }
