"""OAuth2 emulator: authorize, code exchange (Basic auth, PKCE), refresh,
Bearer identity."""

from __future__ import annotations

import base64
import hashlib
import urllib.parse

import httpx

from vsb.sandbox import Sandbox

REDIRECT = "http://127.0.0.1:9/callback"


def _basic(sb: Sandbox) -> dict[str, str]:
    raw = f"{sb.client_id}:{sb.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def _authorize(
    client: httpx.AsyncClient, sb: Sandbox, **extra: str
) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": sb.client_id,
        "redirect_uri": REDIRECT,
        "scope": "identify email",
        "state": "s1",
        **extra,
    }
    response = await client.get(sb.oauth_authorize_url, params=params)
    assert response.status_code == 302
    location = urllib.parse.urlsplit(response.headers["location"])
    assert location.path == "/callback"
    return dict(urllib.parse.parse_qsl(location.query))


async def test_full_flow_with_pkce_and_refresh(sb: Sandbox) -> None:
    verifier = "v" * 50
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        .rstrip(b"=")
        .decode()
    )
    async with httpx.AsyncClient() as client:
        query = await _authorize(
            client, sb, code_challenge=challenge, code_challenge_method="S256"
        )
        assert query["state"] == "s1"
        form = {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        token = (
            await client.post(sb.oauth_token_url, data=form, headers=_basic(sb))
        ).json()
        assert token["token_type"] == "Bearer"
        me = (
            await client.get(
                sb.oauth_userinfo_url,
                headers={"Authorization": f"Bearer {token['access_token']}"},
            )
        ).json()
        assert me["id"] == str(sb.default.oauth_user_id)
        assert me["email"] == "verifier@example.test"
        reused = await client.post(sb.oauth_token_url, data=form, headers=_basic(sb))
        assert reused.json()["error"] == "invalid_grant"
        refreshed = await client.post(
            sb.oauth_token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": token["refresh_token"],
            },
            headers=_basic(sb),
        )
        assert refreshed.json()["access_token"] != token["access_token"]


async def test_wrong_verifier_and_wrong_client(sb: Sandbox) -> None:
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(b"right").digest())
        .rstrip(b"=")
        .decode()
    )
    async with httpx.AsyncClient() as client:
        query = await _authorize(
            client, sb, code_challenge=challenge, code_challenge_method="S256"
        )
        form = {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": "wrong",
        }
        response = await client.post(sb.oauth_token_url, data=form, headers=_basic(sb))
        assert (response.status_code, response.json()["error"]) == (
            400,
            "invalid_grant",
        )
        query = await _authorize(client, sb)
        form = {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT,
        }
        bad = {
            "Authorization": "Basic "
            + base64.b64encode(f"{sb.client_id}:nope".encode()).decode()
        }
        response = await client.post(sb.oauth_token_url, data=form, headers=bad)
        assert (response.status_code, response.json()["error"]) == (
            401,
            "invalid_client",
        )


async def test_redirect_uri_must_match(sb: Sandbox) -> None:
    async with httpx.AsyncClient() as client:
        query = await _authorize(client, sb)
        form = {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT + "x",
        }
        response = await client.post(sb.oauth_token_url, data=form, headers=_basic(sb))
        assert response.json()["error"] == "invalid_grant"


async def test_denied_authorization(sb: Sandbox) -> None:
    sb.oauth.deny_next()
    async with httpx.AsyncClient() as client:
        query = await _authorize(client, sb)
        assert query == {
            "error": "access_denied",
            "error_description": query["error_description"],
            "state": "s1",
        }


async def test_unknown_client_gets_no_redirect(sb: Sandbox) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            sb.oauth_authorize_url,
            params={
                "response_type": "code",
                "client_id": "1",
                "redirect_uri": REDIRECT,
            },
        )
        assert response.status_code == 400


async def test_bearer_token_unknown_is_401(sb: Sandbox) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            sb.oauth_userinfo_url, headers={"Authorization": "Bearer nope"}
        )
        assert response.status_code == 401
