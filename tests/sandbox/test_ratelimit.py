"""Rate limits: headers, per-bucket 429s, the global limit, REST faults."""

from __future__ import annotations

import httpx
import pytest
import trio

from vsb.sandbox import Sandbox, open_sandbox
from vsb.sandbox.ratelimit import RateLimiter

ROUTE = "POST /channels/{channel_id}/messages"


async def test_headers_on_every_answer(
    autojump_clock, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    url = f"/channels/{sb.default.general_id}/messages"
    response = await http.post(url, json={"content": "1"})
    h = response.headers
    assert h["X-RateLimit-Limit"] == "5"
    assert h["X-RateLimit-Remaining"] == "4"
    assert float(h["X-RateLimit-Reset-After"]) == pytest.approx(5.0)
    assert float(h["X-RateLimit-Reset"]) == pytest.approx(
        sb.clock.unix() + 5.0, abs=0.01
    )
    assert h["X-RateLimit-Bucket"]
    assert h["X-RateLimit-Scope"] == "user"


async def test_bucket_429_then_reset(
    autojump_clock, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    url = f"/channels/{sb.default.general_id}/messages"
    for _ in range(5):
        assert (await http.post(url, json={"content": "x"})).status_code == 200
    await trio.sleep(2)
    response = await http.post(url, json={"content": "x"})
    assert response.status_code == 429
    body = response.json()
    assert body["global"] is False
    assert body["retry_after"] == pytest.approx(3.0)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.headers["Retry-After"] == "3"
    assert sb.actions.last("rest.rate_limited")["scope"] == "user"
    other = f"/channels/{sb.default.verify_id}/messages"
    assert (
        await http.post(other, json={"content": "x"})
    ).status_code == 200  # own resource
    await trio.sleep(3)
    assert (await http.post(url, json={"content": "x"})).status_code == 200


async def test_configurable_limits(autojump_clock) -> None:
    async with open_sandbox(rate_limits={ROUTE: (2, 10.0)}) as sb:
        headers = {"Authorization": f"Bot {sb.bot_token}"}
        async with httpx.AsyncClient(base_url=sb.api_base, headers=headers) as http:
            url = f"/channels/{sb.default.general_id}/messages"
            codes = [
                (await http.post(url, json={"content": "x"})).status_code
                for _ in range(3)
            ]
            assert codes == [200, 200, 429]


async def test_global_limit(autojump_clock) -> None:
    async with open_sandbox(global_limit=3) as sb:
        headers = {"Authorization": f"Bot {sb.bot_token}"}
        async with httpx.AsyncClient(base_url=sb.api_base, headers=headers) as http:
            codes = [(await http.get("/users/@me")).status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            response = await http.get("/users/@me")
            assert response.json()["global"] is True
            assert response.headers["X-RateLimit-Global"] == "true"
            assert response.headers["X-RateLimit-Scope"] == "global"
            await trio.sleep(1)
            assert (await http.get("/users/@me")).status_code == 200


async def test_interaction_callbacks_skip_global_limit(autojump_clock) -> None:
    async with open_sandbox(global_limit=1) as sb:
        async with httpx.AsyncClient(base_url=sb.api_base) as http:
            ix = await sb.run_command("ping")
            await http.get("/gateway")
            response = await http.post(
                f"/interactions/{ix.id}/{ix.token}/callback",
                json={"type": 4, "data": {"content": "pong"}},
                headers={"Authorization": f"Bot {sb.bot_token}"},
            )
            assert response.status_code == 204


@pytest.mark.parametrize("scope", ["user", "shared", "global"])
async def test_fault_429_with_scope(
    scope: str, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    sb.faults.fail_rest(2, status=429, scope=scope, retry_after=1.5)
    for _ in range(2):
        response = await http.get("/users/@me")
        assert response.status_code == 429
        assert response.json() == {
            "message": "You are being rate limited.",
            "retry_after": 1.5,
            "global": scope == "global",
        }
        assert response.headers["X-RateLimit-Scope"] == scope
        assert response.headers["Retry-After"] == "2"
    assert (await http.get("/users/@me")).status_code == 200


async def test_fault_5xx_on_one_route(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.faults.fail_rest(1, status=502, route="GET /users/@me")
    assert (await http.get("/gateway/bot")).status_code == 200
    assert (await http.get("/users/@me")).status_code == 502
    assert (await http.get("/users/@me")).status_code == 200
    assert sb.actions.last("rest.server_error")["status"] == 502


def test_invalid_request_counter_skips_shared() -> None:
    limiter = RateLimiter()
    limiter.note_invalid(401, None, 0.0)
    limiter.note_invalid(429, "shared", 1.0)
    limiter.note_invalid(429, "user", 2.0)
    limiter.note_invalid(200, None, 3.0)
    assert limiter.invalid_requests() == 2
    limiter.note_invalid(403, None, 601.0)
    assert limiter.invalid_requests() == 2  # the first one aged out
