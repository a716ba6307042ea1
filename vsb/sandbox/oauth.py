"""The OAuth2 emulator: authorize, token exchange, Bearer identity.

Owns Discord's authorization-code flow as its "OAuth2" page describes it:
``GET /oauth2/authorize`` auto-approves the test user (``state.oauth_user_id``)
and redirects to ``redirect_uri`` with ``code`` and ``state``; ``POST
/api/v10/oauth2/token`` exchanges a code (client authenticated by HTTP Basic
or form fields; ``redirect_uri`` must match; PKCE S256 verified when the
authorize call carried a challenge) or a refresh token; ``GET
/api/v10/users/@me`` with ``Authorization: Bearer`` returns the test user.
Codes live 10 minutes and work once; access tokens live 7 days.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Final

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from vsb.sandbox.core import SandboxCore
from vsb.sandbox.errors import ApiError

Json = dict[str, Any]

CODE_LIFETIME: Final = 600.0
ACCESS_LIFETIME: Final = 604_800.0


@dataclass
class _Grant:
    user_id: int
    scope: str
    redirect_uri: str | None
    challenge: str | None
    expires_at: float


@dataclass
class OAuthServer:
    """OAuth2 state of one sandbox; ``deny_next`` makes the user refuse."""

    codes: dict[str, _Grant] = field(default_factory=dict)
    access: dict[str, _Grant] = field(default_factory=dict)
    refresh: dict[str, _Grant] = field(default_factory=dict)
    deny: int = 0

    def deny_next(self, count: int = 1) -> None:
        """The test user denies the next ``count`` authorizations."""
        self.deny += count


def server_of(core: SandboxCore) -> OAuthServer:
    """The OAuth2 state attached to a sandbox core."""
    if core.oauth is None:
        core.oauth = OAuthServer()
    found: OAuthServer = core.oauth
    return found


def page_routes() -> list[BaseRoute]:
    """Starlette routes of the OAuth2 emulator (mounted before the REST API)."""
    return [
        Route("/oauth2/authorize", _authorize, methods=["GET"]),
        Route("/api/v10/oauth2/token", _token, methods=["POST"]),
        Route("/api/v10/oauth2/token/revoke", _revoke, methods=["POST"]),
    ]


def _core_of(request: Request) -> SandboxCore:
    core: SandboxCore = request.app.state.core
    return core


def _error_page(status: int, text: str) -> Response:
    return Response(f"<h1>{status}</h1><p>{text}</p>", status, media_type="text/html")


async def _authorize(request: Request) -> Response:
    core = _core_of(request)
    q = request.query_params
    if q.get("client_id") != str(core.identity.application_id):
        return _error_page(400, "Unknown client_id")
    redirect_uri = q.get("redirect_uri")
    allowed = core.identity.redirect_uris
    if not redirect_uri or (allowed is not None and redirect_uri not in allowed):
        return _error_page(400, "Invalid redirect_uri")
    if q.get("response_type") != "code":
        return _redirect(
            redirect_uri, error="unsupported_response_type", state=q.get("state")
        )
    server = server_of(core)
    if server.deny > 0:
        server.deny -= 1
        core.actions.record("oauth.denied", redirect_uri=redirect_uri)
        return _redirect(
            redirect_uri,
            error="access_denied",
            error_description="The resource owner or authorization server denied the request",
            state=q.get("state"),
        )
    challenge = q.get("code_challenge")
    if challenge is not None and q.get("code_challenge_method", "plain") != "S256":
        return _redirect(redirect_uri, error="invalid_request", state=q.get("state"))
    code = secrets.token_urlsafe(24)
    user_id = core.state.oauth_user_id or core.state.bot_user.id
    server.codes[code] = _Grant(
        user_id,
        q.get("scope", "identify"),
        redirect_uri,
        challenge,
        trio.current_time() + CODE_LIFETIME,
    )
    core.actions.record(
        "oauth.authorize",
        user_id=user_id,
        scope=q.get("scope"),
        pkce=challenge is not None,
    )
    return _redirect(redirect_uri, code=code, state=q.get("state"))


def _redirect(uri: str, **params: str | None) -> Response:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    sep = "&" if "?" in uri else "?"
    return RedirectResponse(f"{uri}{sep}{query}", status_code=302)


class _OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


async def _token(request: Request) -> Response:
    core = _core_of(request)
    fields = await _form(request)
    try:
        _client_auth(core, request, fields)
        grant = _grant_for(core, fields)
    except _OAuthError as exc:
        body = {"error": exc.error, "error_description": exc.description}
        return JSONResponse(body, exc.status)
    server = server_of(core)
    access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    now = trio.current_time()
    server.access[access] = _Grant(
        grant.user_id, grant.scope, None, None, now + ACCESS_LIFETIME
    )
    server.refresh[refresh] = _Grant(
        grant.user_id, grant.scope, None, None, now + 10 * ACCESS_LIFETIME
    )
    core.actions.record(
        "oauth.token", grant_type=fields.get("grant_type"), user_id=grant.user_id
    )
    return JSONResponse(
        {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(ACCESS_LIFETIME),
            "refresh_token": refresh,
            "scope": grant.scope,
        }
    )


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (RFC 6749 section 4.1.3)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(urllib.parse.parse_qsl(body, keep_blank_values=True))


def _client_auth(core: SandboxCore, request: Request, fields: dict[str, str]) -> None:
    client_id, secret = fields.get("client_id"), fields.get("client_secret")
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret = (
                urllib.parse.unquote(client_id),
                urllib.parse.unquote(secret),
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise _OAuthError(401, "invalid_client", "Bad Basic credentials") from exc
    if (
        client_id != str(core.identity.application_id)
        or secret != core.identity.client_secret
    ):
        raise _OAuthError(401, "invalid_client", "Invalid client")


def _grant_for(core: SandboxCore, fields: dict[str, str]) -> _Grant:
    server = server_of(core)
    now = trio.current_time()
    kind = fields.get("grant_type")
    if kind == "authorization_code":
        grant = server.codes.pop(fields.get("code", ""), None)
        if grant is None or grant.expires_at <= now:
            raise _OAuthError(400, "invalid_grant", 'Invalid "code" in request.')
        if fields.get("redirect_uri") != grant.redirect_uri:
            raise _OAuthError(
                400, "invalid_grant", 'Invalid "redirect_uri" in request.'
            )
        _check_pkce(grant, fields.get("code_verifier"))
        return grant
    if kind == "refresh_token":
        grant = server.refresh.pop(fields.get("refresh_token", ""), None)
        if grant is None or grant.expires_at <= now:
            raise _OAuthError(400, "invalid_grant", "Invalid refresh token")
        return grant
    raise _OAuthError(400, "unsupported_grant_type", "Unsupported grant type")


def _check_pkce(grant: _Grant, verifier: str | None) -> None:
    """RFC 7636 section 4.6: BASE64URL(SHA256(verifier)) == challenge."""
    if grant.challenge is None:
        return
    if not verifier:
        raise _OAuthError(400, "invalid_grant", "code_verifier required")
    digest = hashlib.sha256(verifier.encode()).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    if not secrets.compare_digest(computed, grant.challenge):
        raise _OAuthError(400, "invalid_grant", "Invalid code_verifier")


async def _revoke(request: Request) -> Response:
    core = _core_of(request)
    token = (await _form(request)).get("token", "")
    server = server_of(core)
    server.access.pop(token, None)
    server.refresh.pop(token, None)
    return Response(status_code=200)


def bearer_user(core: SandboxCore, token: str) -> Json:
    """The user a Bearer token stands for (401 when unknown or expired)."""
    grant = server_of(core).access.get(token)
    if grant is None or grant.expires_at <= trio.current_time():
        raise ApiError(401, 0, "401: Unauthorized")
    user = core.state.users[grant.user_id]
    data = user.to_json()
    data.update(
        locale="en-US", mfa_enabled=False, flags=0, public_flags=0, premium_type=0
    )
    if "email" in grant.scope.split():
        data.update(email=user.email, verified=user.verified)
    return data
