"""RestClient with scripted answers (httpx.MockTransport) under MockClock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import httpx
import pytest
import trio
from trio.testing import MockClock

import vsb
from vsb.rest import (
    RateLimited,
    RequestRefused,
    RestClient,
    TransportError,
    ValidationError,
)
from vsb.rest.routes import encode_audit_reason
from vsb.secret import Secret

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123"
NOW = 1_790_000_000.0


@pytest.fixture
def clock() -> MockClock:
    return MockClock(autojump_threshold=0)


def client(
    handler: Callable[[httpx.Request], httpx.Response], **kw: object
) -> RestClient:
    return RestClient(
        Secret(TOKEN),
        api_base="http://discord.test/api/v10",
        transport=httpx.MockTransport(handler),
        wall_clock=lambda: NOW,
        **kw,  # type: ignore[arg-type]
    )


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"id": "1"})


async def test_bot_requests_carry_auth_user_agent_and_json(clock: MockClock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok(request)

    async with client(handler) as rest:
        await rest.create_message(5, content="hi")

    request = seen[0]
    assert request.url.path == "/api/v10/channels/5/messages"
    assert request.headers["authorization"] == f"Bot {TOKEN}"
    assert (
        request.headers["user-agent"]
        == f"DiscordBot ({vsb.rest.client.PROJECT_URL}, {vsb.__version__})"
    )
    assert request.headers["content-type"] == "application/json"
    assert request.content == b'{"content":"hi"}'


async def test_interaction_routes_send_no_bot_token(clock: MockClock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with client(handler) as rest:
        result = await rest.create_interaction_response(7, Secret("itok"), 5)

    assert result is None
    assert "authorization" not in seen[0].headers
    assert seen[0].url.path == "/api/v10/interactions/7/itok/callback"


@pytest.mark.parametrize(
    "reason",
    [
        "Spam — Лимит 🚫 50% off",
        "x" * 600,
        "a" * 511 + "e\u0301zz",  # the accent would be cut from its letter
        "a" * 510 + "👍🏽" + "b",  # the skin tone stays with its emoji
    ],
)
def test_audit_reason_is_percent_encoded_and_cut_whole(reason: str) -> None:
    encoded = encode_audit_reason(reason)
    decoded = unquote(encoded, errors="strict")

    assert encoded.isascii() and len(decoded) <= 512
    assert reason.startswith(decoded)
    if len(reason) <= 512:
        assert decoded == reason
    else:
        tail = reason[len(decoded)]
        assert tail not in "\u0301\U0001f3fd"  # cut before the whole character


async def test_non_json_429_is_an_ip_block(
    clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(
            429,
            text="<html>Access denied</html>",
            headers={"content-type": "text/html"},
        )

    async with client(handler) as rest:
        with pytest.raises(RateLimited) as caught:
            await rest.get_guild_roles(1)
        with pytest.raises(RateLimited):
            await rest.get_member(2, 3)  # every request stops, none is sent

    assert caught.value.scope == "ip" and calls == 1
    assert any(
        r.levelno == logging.ERROR and r.getMessage() == "rest.ip_blocked"
        for r in caplog.records
    )


async def test_transport_errors_are_retried_only_when_idempotent(
    clock: MockClock,
) -> None:
    calls: dict[str, int] = {"GET": 0, "POST": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls[request.method] += 1
        if calls[request.method] <= 2:
            raise httpx.ConnectError("refused", request=request)
        return ok(request)

    async with client(handler) as rest:
        assert await rest.get_member(1, 2) == {"id": "1"}
        with pytest.raises(TransportError) as caught:
            await rest.create_message(1, content="x")

    assert calls == {"GET": 3, "POST": 1}
    assert caught.value.route == "POST /channels/{channel_id}/messages"
    assert TOKEN not in str(caught.value)


async def test_invalid_request_guard_refuses_after_the_threshold(
    clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(
            403, json={"code": 50013, "message": "Missing Permissions"}
        )

    async with client(handler, invalid_limit=3) as rest:
        for user in range(3):
            with pytest.raises(vsb.rest.Forbidden):
                await rest.kick_member(1, user)
        with pytest.raises(RequestRefused) as caught:
            await rest.kick_member(1, 99)

    assert calls == 3 and caught.value.retry_after > 500
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "rest.invalid_request_guard"
    ]


async def test_bucket_hash_change_under_load_sends_each_request_once(
    clock: MockClock,
) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.content.decode()
        sent.append(body)
        bucket = "old" if len(sent) <= 3 else "new"
        headers = {
            "x-ratelimit-bucket": bucket,
            "x-ratelimit-limit": "5",
            "x-ratelimit-remaining": str(max(0, 5 - len(sent) % 5 - 1)),
            "x-ratelimit-reset-after": "1.0",
        }
        return httpx.Response(200, json={"id": "1"}, headers=headers)

    async with client(handler) as rest:
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(lambda i=i: rest.create_message(1, content=str(i)))

    assert sorted(sent) == sorted(f'{{"content":"{i}"}}' for i in range(20))


async def test_timeouts_are_checked_locally(clock: MockClock) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return ok(request)

    now = datetime.fromtimestamp(NOW, UTC)
    async with client(handler) as rest:
        await rest.timeout_member(1, 2, now + timedelta(days=28))
        await rest.timeout_member(1, 2, None)
        with pytest.raises(ValidationError, match="28 days"):
            await rest.timeout_member(1, 2, now + timedelta(days=28, seconds=1))
        with pytest.raises(ValidationError, match="timezone"):
            await rest.timeout_member(1, 2, datetime(2030, 1, 1))
        with pytest.raises(ValidationError, match="unknown fields"):
            await rest.modify_member(1, 2, banned=True)

    assert calls == 2


async def test_stats_count_routes_statuses_and_scopes(clock: MockClock) -> None:
    answers = iter(
        [
            httpx.Response(
                429,
                json={"retry_after": 0.2, "global": False},
                headers={"x-ratelimit-scope": "shared"},
            ),
            httpx.Response(200, json={}),
            httpx.Response(404, json={"code": 10008, "message": "Unknown Message"}),
        ]
    )

    async with client(lambda request: next(answers)) as rest:
        await rest.get_message(1, 2)
        with pytest.raises(vsb.rest.NotFound):
            await rest.get_message(1, 3)
        stats = rest.stats()

    assert stats["requests"] == {
        "GET /channels/{channel_id}/messages/{message_id}": {429: 1, 200: 1, 404: 1}
    }
    assert stats["rate_limited"] == {"shared": 1}
