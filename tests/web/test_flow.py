"""The OAuth2 verification flow through the ASGI app, provider scripted.

The end-to-end run against the sandbox's emulator is in test_sandbox_flow.py;
here each failure path is driven precisely.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from vsb.services.auth import pkce_challenge
from vsb.services.web import SESSION_COOKIE


async def _start(env: Any, client: httpx.AsyncClient, user: int | None = None) -> str:
    """Run /verify's link and /oauth/start; return the state sent to the provider."""
    link = await env.flow.verification_link(
        user_id=user or env.USER, guild_id=env.GUILD
    )
    assert link.startswith("https://vsb.test/oauth/start?state=")
    response = await client.get(link)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return query["state"][0]


async def test_start_redirects_with_pkce_and_exact_redirect_uri(env: Any) -> None:
    async with env.client() as client:
        link = await env.flow.verification_link(user_id=env.USER, guild_id=env.GUILD)
        response = await client.get(link)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert (
        f"{location.scheme}://{location.netloc}{location.path}"
        == "https://provider.test/authorize"
    )
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    state = query["state"]
    nonce = env.tokens.decode_state(state).nonce
    assert query["client_id"] == "client-1"
    assert query["redirect_uri"] == "https://vsb.test/oauth/callback"
    assert query["response_type"] == "code"
    assert query["scope"] == "identify"
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] == pkce_challenge(env.tokens.pkce_verifier(nonce))
    assert response.headers["referrer-policy"] == "no-referrer"
    env.assert_no_secret(response.headers["location"])


async def test_full_flow_verifies_and_signs_in(
    env: Any, captured_logs: pytest.LogCaptureFixture
) -> None:
    async with env.client() as client:
        state = await _start(env, client)
        response = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": state}
        )
        assert response.status_code == 200, response.text
        assert "You are verified" in response.text
        me = await client.get("/api/me")
    assert env.roles.given == [
        (env.GUILD, env.USER, env.ROLE, "Verified through OAuth2 as alice")
    ]
    assert (
        env.store.users[env.USER].verified
        and env.store.users[env.USER].login == "alice"
    )
    assert env.store.audit == [
        {"user_id": env.USER, "guild_id": env.GUILD, "role_id": env.ROLE}
    ]
    assert me.status_code == 200
    assert me.json() == {
        "id": str(env.USER),
        "login": "alice",
        "verified": True,
        "roles": [],
    }

    # The code exchange: HTTP Basic client auth, the PKCE verifier, the exact URI.
    exchange = env.provider.requests[0]
    assert (
        exchange.headers["authorization"]
        == httpx.BasicAuth("client-1", env.CLIENT_SECRET)._auth_header
    )
    form = parse_qs(exchange.content.decode())
    assert form["redirect_uri"] == ["https://vsb.test/oauth/callback"]
    nonce = env.tokens.decode_state(state).nonce
    assert form["code_verifier"] == [env.tokens.pkce_verifier(nonce)]

    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    lowered = cookie.lower()
    assert "httponly" in lowered and "secure" in lowered and "samesite=lax" in lowered
    assert "max-age=86400" in lowered
    for text in (response.text, str(response.headers), env.log_text(captured_logs)):
        env.assert_no_secret(text)
    assert "web.oauth_verified" in [r.getMessage() for r in captured_logs.records]


async def test_cookie_not_secure_over_plain_http(env: Any) -> None:
    env.app._secure_cookie = False
    transport = httpx.ASGITransport(app=env.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://vsb.test"
    ) as client:
        link = await env.flow.verification_link(user_id=env.USER, guild_id=env.GUILD)
        # The same path on plain http (a test deployment without TLS).
        start = await client.get("/oauth/start?" + urlsplit(link).query)
        assert "secure" not in start.headers["set-cookie"].lower()
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        response = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": state}
        )
    assert response.status_code == 200
    assert "secure" not in response.headers["set-cookie"].lower()


async def test_reused_state(env: Any) -> None:
    async with env.client() as client:
        state = await _start(env, client)
        first = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": state}
        )
        second = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": state}
        )
    assert first.status_code == 200
    assert second.status_code == 400 and "Link already used" in second.text
    assert "set-cookie" not in second.headers
    assert len(env.roles.given) == 1


async def test_expired_state(env: Any) -> None:
    async with env.client() as client:
        state = await _start(env, client)
        env.clock.now += 601
        response = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": state}
        )
        start_again = await client.get("/oauth/start", params={"state": state})
    assert response.status_code == 400 and "Link expired" in response.text
    assert start_again.status_code == 400 and "Link expired" in start_again.text
    assert env.roles.given == [] and env.provider.requests == []


async def test_tampered_state(env: Any) -> None:
    async with env.client() as client:
        state = await _start(env, client)
        forged = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
        response = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": forged}
        )
        start = await client.get("/oauth/start", params={"state": "not-a-jwt"})
    assert response.status_code == 400 and "Invalid link" in response.text
    assert start.status_code == 400 and "Invalid link" in start.text
    assert env.provider.requests == []


async def test_state_never_stored_is_refused(env: Any) -> None:
    token, claims = env.tokens.issue_state(user_id=env.USER, guild_id=env.GUILD)
    async with env.client() as client:
        client.cookies.set("vsb_oauth_" + claims.nonce, "1")
        response = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": token}
        )
    assert response.status_code == 400 and "already used" in response.text


async def test_denied_at_provider(
    env: Any, captured_logs: pytest.LogCaptureFixture
) -> None:
    async with env.client() as client:
        state = await _start(env, client)
        response = await client.get(
            "/oauth/callback", params={"error": "access_denied", "state": state}
        )
        retry = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": state}
        )
    assert response.status_code == 400 and "Verification cancelled" in response.text
    assert retry.status_code == 400 and "already used" in retry.text
    assert env.roles.given == [] and env.USER not in env.store.users
    assert "web.oauth_denied" in [r.getMessage() for r in captured_logs.records]


async def test_missing_code_or_state(env: Any) -> None:
    async with env.client() as client:
        no_state = await client.get("/oauth/callback", params={"code": env.CODE})
        state = await _start(env, client)
        no_code = await client.get("/oauth/callback", params={"state": state})
        no_start_state = await client.get("/oauth/start")
    assert no_state.status_code == 400 and "Incomplete request" in no_state.text
    assert no_code.status_code == 400 and "Incomplete request" in no_code.text
    assert no_start_state.status_code == 400


@pytest.mark.parametrize("step", ["token", "identity"])
async def test_provider_error(
    env: Any, step: str, captured_logs: pytest.LogCaptureFixture
) -> None:
    if step == "token":
        env.provider.token_status = 400
    else:
        env.provider.identity_status = 500
    async with env.client() as client:
        state = await _start(env, client)
        response = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": state}
        )
    assert response.status_code == 502 and "Sign-in provider error" in response.text
    assert env.roles.given == [] and env.USER not in env.store.users
    env.assert_no_secret(env.log_text(captured_logs))


async def test_provider_unreachable(env: Any) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    env.flow.oauth._transport = httpx.MockTransport(broken)
    async with env.client() as client:
        state = await _start(env, client)
        response = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": state}
        )
    assert response.status_code == 502


async def test_wrong_account(env: Any) -> None:
    env.provider.account_id = "9999"
    async with env.client() as client:
        state = await _start(env, client)
        response = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": state}
        )
    assert response.status_code == 403 and "Different account" in response.text
    assert env.roles.given == [] and "set-cookie" not in response.headers


@pytest.mark.parametrize(
    ("status", "title", "code"),
    [
        (403, "Role could not be given", 502),
        (404, "Not a member", 409),
        (500, "Role not given yet", 503),
        (429, "Role not given yet", 503),
    ],
)
async def test_role_assignment_fails(
    env: Any, status: int, title: str, code: int
) -> None:
    env.roles.fail_with = status
    async with env.client() as client:
        state = await _start(env, client)
        response = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": state}
        )
    assert response.status_code == code and title in response.text
    # Nothing half-done: not recorded as verified, no session.
    assert env.USER not in env.store.users and env.store.audit == []
    assert "set-cookie" not in response.headers


async def test_no_verified_role_configured(env: Any) -> None:
    env.store.roles_by_guild.clear()
    async with env.client() as client:
        state = await _start(env, client)
        response = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": state}
        )
    assert response.status_code == 409 and "No verified role" in response.text
    assert env.roles.given == [] and env.USER not in env.store.users


async def test_record_fails_after_role_says_what_is_pending(env: Any) -> None:
    env.store.fail_record = True
    async with env.client() as client:
        state = await _start(env, client)
        response = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": state}
        )
    assert response.status_code == 500
    assert "Pending: the record" in response.text
    assert len(env.roles.given) == 1 and env.USER not in env.store.users


async def test_web_login_without_guild(env: Any) -> None:
    async with env.client() as client:
        response = await client.get("/oauth/login")
        assert response.status_code == 302
        state = parse_qs(urlsplit(response.headers["location"]).query)["state"][0]
        callback = await client.get(
            "/oauth/callback", params={"code": env.CODE, "state": state}
        )
        me = await client.get("/api/me")
    assert callback.status_code == 200 and "Signed in" in callback.text
    assert env.roles.given == []
    # Signed in but never verified: /api/me needs a verified user.
    assert me.status_code == 401


async def test_pages_never_echo_secrets(env: Any) -> None:
    async with env.client() as client:
        state = await _start(env, client)
        response = await client.get(
            "/oauth/callback",
            params={"code": env.CODE, "state": state, "error": "<script>"},
        )
    assert "<script>" not in response.text
    env.assert_no_secret(
        response.text + str(response.headers), (state, env.ACCESS_TOKEN)
    )


async def test_callback_in_another_browser_is_refused(env: Any) -> None:
    """Login CSRF: a callback URL made in one browser, opened in another."""
    async with env.client() as attacker, env.client() as victim:
        state = await _start(env, attacker)
        callback = {"code": env.CODE, "state": state}
        refused = await victim.get("/oauth/callback", params=callback)
        # The nonce was not used up: the browser that started can finish.
        finished = await attacker.get("/oauth/callback", params=callback)
    assert refused.status_code == 400 and "Different browser" in refused.text
    assert "set-cookie" not in refused.headers
    assert finished.status_code == 200 and "You are verified" in finished.text
    assert len(env.roles.given) == 1


async def test_flow_cookie_is_scoped_and_http_only(env: Any) -> None:
    async with env.client() as client:
        link = await env.flow.verification_link(user_id=env.USER, guild_id=env.GUILD)
        response = await client.get(link)
    nonce = env.tokens.decode_state(parse_qs(urlsplit(link).query)["state"][0]).nonce
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"vsb_oauth_{nonce}=1;")
    lowered = cookie.lower()
    assert "httponly" in lowered and "path=/oauth/" in lowered
    assert (
        "samesite=lax" in lowered and "secure" in lowered and "max-age=600" in lowered
    )
