"""The JSON API: sessions, roles (401/403), bad input (4xx JSON), rate limit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from vsb.services.auth import WebUser
from vsb.services.web import SESSION_COOKIE, WebApp


def _signed_in(env: Any, user: WebUser | None, user_id: int = 5) -> httpx.AsyncClient:
    if user is not None:
        env.store.users[user.user_id] = user
    client = env.client()
    client.cookies.set(
        SESSION_COOKIE, env.tokens.issue_session(user_id=user_id, login="u")
    )
    return client


async def test_no_session_is_401(env: Any) -> None:
    async with env.client() as client:
        for path in ("/api/me", "/api/cases?guild=1", "/api/review"):
            response = await client.get(path)
            assert response.status_code == 401, path
            assert response.json()["error"] == "unauthenticated"


async def test_bad_session_is_401(env: Any) -> None:
    env.store.users[5] = WebUser(5, "u", True, frozenset({"moderator"}))
    async with env.client() as client:
        good = env.tokens.issue_session(user_id=5, login="u")
        client.cookies.set(SESSION_COOKIE, good[:-3] + "abc")
        assert (await client.get("/api/me")).status_code == 401
        client.cookies.set(SESSION_COOKIE, good)
        assert (await client.get("/api/me")).status_code == 200
        env.clock.now += 86_401
        assert (await client.get("/api/me")).status_code == 401


async def test_state_token_is_not_a_session(env: Any) -> None:
    env.store.users[5] = WebUser(5, "u", True, frozenset())
    state, _ = env.tokens.issue_state(user_id=5, guild_id=None)
    async with env.client() as client:
        client.cookies.set(SESSION_COOKIE, state)
        assert (await client.get("/api/me")).status_code == 401


async def test_unverified_user_gets_403_on_me(env: Any) -> None:
    async with _signed_in(env, WebUser(5, "u", False, frozenset())) as client:
        response = await client.get("/api/me")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"


async def test_verified_user_is_not_a_moderator(env: Any) -> None:
    async with _signed_in(env, WebUser(5, "u", True, frozenset())) as client:
        assert (await client.get("/api/me")).status_code == 200
        cases = await client.get("/api/cases", params={"guild": "1"})
        review = await client.get("/api/review")
    assert cases.status_code == 403 and review.status_code == 403
    assert "moderator" in cases.json()["message"]


@pytest.mark.parametrize("role", ["moderator", "admin"])
async def test_moderator_reads_cases_and_review(env: Any, role: str) -> None:
    env.store.case_rows[1] = [{"number": 2}, {"number": 1}]
    env.store.review_rows = [{"id": 9}]
    async with _signed_in(env, WebUser(5, "u", True, frozenset({role}))) as client:
        cases = await client.get("/api/cases", params={"guild": "1", "limit": "1"})
        review = await client.get("/api/review")
    assert cases.status_code == 200
    assert cases.json() == {"guild": "1", "cases": [{"number": 2}]}
    assert review.json() == {"items": [{"id": 9}]}


@pytest.mark.parametrize(
    "query",
    [{}, {"guild": "abc"}, {"guild": "1", "limit": "0"}, {"guild": "1", "limit": "x"}],
)
async def test_bad_input_is_400_json(env: Any, query: dict[str, str]) -> None:
    async with _signed_in(
        env, WebUser(5, "u", True, frozenset({"moderator"}))
    ) as client:
        response = await client.get("/api/cases", params=query)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "bad_request"


@pytest.mark.parametrize("path", ["/api/cases", "/api/review"])
@pytest.mark.parametrize(
    "query",
    [
        {"guild": "\u00b2"},  # superscript two: str.isdigit() says yes
        {"guild": "\u0663"},  # Arabic-Indic three
        {"guild": "1", "limit": "\u00b2"},
        {"guild": "1", "limit": "\u0663"},
        {"guild": "1", "limit": "9" * 5000},  # past int()'s digit limit
        {"guild": str(2**63)},  # past PostgreSQL's bigint
        {"guild": str(2**64 - 1)},
        {"guild": "+1"},
        {"guild": " 1"},
    ],
)
async def test_non_ascii_digits_and_huge_snowflakes_are_400(
    env: Any, path: str, query: dict[str, str]
) -> None:
    async with _signed_in(
        env, WebUser(5, "u", True, frozenset({"moderator"}))
    ) as client:
        response = await client.get(path, params=query)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


async def test_largest_bigint_snowflake_is_accepted(env: Any) -> None:
    env.store.case_rows[2**63 - 1] = [{"number": 1}]
    async with _signed_in(
        env, WebUser(5, "u", True, frozenset({"moderator"}))
    ) as client:
        cases = await client.get("/api/cases", params={"guild": str(2**63 - 1)})
        review = await client.get("/api/review", params={"guild": "0042"})
    assert cases.status_code == 200
    assert cases.json() == {"guild": str(2**63 - 1), "cases": [{"number": 1}]}
    assert review.status_code == 200


async def test_unknown_user_in_session_is_401(env: Any) -> None:
    async with _signed_in(env, None, user_id=77) as client:
        assert (await client.get("/api/me")).status_code == 401


async def test_rate_limit_per_ip(env: Any, captured_logs: Any) -> None:
    app = WebApp(flow=env.flow, rate=1.0, burst=3, clock=env.clock)
    env.app = app
    async with (
        env.client(client_ip="10.0.0.1") as first,
        env.client(client_ip="10.0.0.2") as second,
    ):
        statuses = [(await first.get("/api/me")).status_code for _ in range(4)]
        other = await second.get("/api/me")
        health = await first.get("/livez")
        limited = await first.get("/oauth/start")
        env.clock.now += 1.0
        again = await first.get("/api/me")
    assert statuses == [401, 401, 401, 429]
    assert other.status_code == 401  # another address has its own bucket
    assert health.status_code == 200  # probes are never limited
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["error"] == "rate_limited"
    assert again.status_code == 401
    assert app.stats()["rate_limited"] == 2
    assert "web.rate_limited" in [r.getMessage() for r in captured_logs.records]


async def test_api_disabled_without_store() -> None:
    app = WebApp()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/api/me")).status_code == 404
        assert (await client.get("/oauth/start?state=x")).status_code == 404
        assert (await client.post("/interactions", content=b"{}")).status_code == 404
        assert (await client.get("/metrics")).status_code == 404


async def test_unknown_route_and_failing_store_answer_json(env: Any) -> None:
    async def broken(user_id: int) -> None:
        raise ConnectionError("database down")

    env.store.user = broken
    # Starlette answers 500 and then re-raises for the server to log.
    transport = httpx.ASGITransport(app=env.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        client.cookies.set(
            SESSION_COOKIE, env.tokens.issue_session(user_id=5, login="u")
        )
        missing = await client.get("/nowhere")
        failed = await client.get("/api/me")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert failed.status_code == 500 and failed.json()["error"] == "internal_error"
