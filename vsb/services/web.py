"""The bot's web server: verification pages, JSON API, health, metrics.

One starlette application served by hypercorn's trio worker inside the bot's
nursery (:class:`WebService`). Its routes:

- ``GET /oauth/start``, ``GET /oauth/login``, ``GET /oauth/callback``: the
  OAuth2 verification flow of :mod:`vsb.services.auth`, ending in a small
  HTML page per outcome and, when it succeeds, a session cookie.
- ``GET /api/me`` (verified users), ``GET /api/cases?guild=`` and
  ``GET /api/review`` (moderators): JSON, 401 without a session, 403 without
  the role, 4xx JSON bodies for bad input.
- ``POST /interactions``: Discord's HTTP interactions, signed with Ed25519.
- ``GET /health`` (JSON checks, 200 or 503), ``/livez``, ``/readyz``, and
  ``GET /metrics`` (Prometheus text, a plain route: a mounted ASGI app would
  redirect ``/metrics`` to ``/metrics/``).

``/oauth/*`` and ``/api/*`` share a per-IP token bucket (:class:`TokenBuckets`,
sans-I/O, clock passed in); an empty bucket answers 429 with ``Retry-After``.
Request bodies are capped at :data:`MAX_BODY_BYTES` on every route (413), by
``Content-Length`` first and then by counting the chunks as they stream in.

Health and metrics take their sources as arguments (callables returning
plain data), so ``app.py`` wires the gateway, database and AI services in.

Nothing here logs a query string, a cookie, a code, a state or a header: each
request is logged once as ``web.request`` with its path and status.
"""

from __future__ import annotations

import collections
import dataclasses
import html
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import msgspec
import trio
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from vsb.models import Interaction, decode_event
from vsb.services.auth import (
    MODERATOR,
    STATE_LIFETIME,
    AuthStore,
    Outcome,
    OutcomeKind,
    TokenError,
    TokenSigner,
    VerificationFlow,
    WebUser,
    has_role,
)

log = logging.getLogger(__name__)

SESSION_COOKIE: Final = "vsb_session"
#: Marks the browser that started an OAuth flow: ``vsb_oauth_<nonce>``.
_FLOW_COOKIE_PREFIX: Final = "vsb_oauth_"
_PROBE_TIMEOUT: Final = 3.0
#: The largest request body read (413 above it), counted as it streams in.
#: Interactions are a few KB; a message command carries the whole message
#: (content, ten embeds, the message it replies to), which stays far below.
MAX_BODY_BYTES: Final = 256 * 1024
#: Snowflakes go to PostgreSQL ``bigint`` columns; Discord's stay below 2**63
#: until the year 2154.
_MAX_SNOWFLAKE: Final = 2**63 - 1
#: Discord's interaction types (docs: Interactions > Receiving and Responding).
_PING: Final = 1
_PONG: Final = 1
_JSON_HEADERS: Final = {"Cache-Control": "no-store"}
_PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    # The state sits in the /oauth/start URL: no Referer may carry it away.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
}


# -- rate limiting ------------------------------------------------------------------


class TokenBuckets:
    """Per-key token buckets (sans-I/O): ``rate`` tokens a second, ``burst`` deep.

    At most ``max_keys`` buckets are kept, least recently used dropped first,
    so a flood of source addresses cannot grow memory without bound.
    """

    def __init__(self, *, rate: float, burst: float, max_keys: int = 10_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = (
            collections.OrderedDict()
        )

    def take(self, key: str, now: float) -> float:
        """Take one token for ``key``: 0.0 when allowed, else seconds to wait."""
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


# -- health -----------------------------------------------------------------------------

Probe = Callable[[], Awaitable[Any] | Any]
"""A health probe: returns a mapping or msgspec Struct with ``ok: bool``.

``Database.health`` is one as it is.
"""


@dataclasses.dataclass(frozen=True, slots=True)
class HealthCheck:
    """One named check of ``/health``.

    Attributes:
        name: its key in the ``checks`` object.
        probe: returns ``{"ok": bool, ...details}``; sync or async.
        critical: a failing critical check makes ``/health`` and ``/readyz``
            answer 503; a failing non-critical one only shows.
    """

    name: str
    probe: Probe
    critical: bool = True


async def _run_probe(check: HealthCheck) -> dict[str, Any]:
    """Run one probe within the timeout; errors become ``ok: false``."""
    started = time.perf_counter()
    result: dict[str, Any] = {"ok": False, "error": "timeout"}
    with trio.move_on_after(_PROBE_TIMEOUT):
        try:
            value = check.probe()
            if inspect.isawaitable(value):
                value = await value
            # A msgspec Struct (``Database.health``'s PoolHealth) or a mapping.
            result = dict(msgspec.to_builtins(value))
        except Exception as exc:  # noqa: BLE001 - any failure is a failed check
            # The type only: a driver's message may quote a URL with a password.
            result = {"ok": False, "error": type(exc).__name__}
    result["ok"] = bool(result.get("ok"))
    result["critical"] = check.critical
    result.setdefault("elapsed_ms", round((time.perf_counter() - started) * 1000, 3))
    return result


def shards_probe(
    stats: Callable[[], Mapping[str, Any]], *, max_ack_age: float = 90.0
) -> Probe:
    """A probe over ``ShardManager.stats()``: every shard connected and beating.

    A shard fails when its state is not ``connected`` or, if its stats carry
    ``last_ack_age_s``, when the last heartbeat ACK is older than
    ``max_ack_age`` seconds.
    """

    def probe() -> dict[str, Any]:
        shards: dict[str, Any] = {}
        ok = True
        for shard_id, shard in dict(stats().get("shards", {})).items():
            age = shard.get("last_ack_age_s")
            shard_ok = shard.get("state") == "connected" and (
                age is None or age <= max_ack_age
            )
            ok = ok and shard_ok
            shards[str(shard_id)] = {
                "ok": shard_ok,
                "state": shard.get("state"),
                "last_ack_age_s": age,
                "latency_s": shard.get("latency_s"),
            }
        return {"ok": ok and bool(shards), "shards": shards}

    return probe


def database_probe(
    ping: Callable[[], Awaitable[Any]],
    pool_stats: Callable[[], Mapping[str, Any]] | None = None,
) -> Probe:
    """A probe timing ``ping`` (a ``SELECT 1``) and showing the pool's stats."""

    async def probe() -> dict[str, Any]:
        started = time.perf_counter()
        await ping()
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        result: dict[str, Any] = {"ok": True, "select_1_ms": elapsed}
        if pool_stats is not None:
            result["pool"] = dict(pool_stats())
        return result

    return probe


def breaker_probe(stats: Callable[[], Mapping[str, Any]]) -> Probe:
    """A probe over the AI service's stats: fails while its breaker is open."""

    def probe() -> dict[str, Any]:
        data = stats()
        breaker = data.get("breaker", data.get("breaker_state"))
        if isinstance(breaker, Mapping):
            breaker = breaker.get("state")
        return {"ok": breaker != "open", "breaker": breaker}

    return probe


# -- pages ------------------------------------------------------------------------------

_PAGES: Final[dict[OutcomeKind, tuple[int, str, str]]] = {
    OutcomeKind.VERIFIED: (
        200,
        "You are verified",
        "Your account is verified and the server's verified role was given to you. "
        "You can close this page and go back to Discord.",
    ),
    OutcomeKind.SIGNED_IN: (200, "Signed in", "You are signed in."),
    OutcomeKind.DENIED: (
        400,
        "Verification cancelled",
        "You declined the authorization, so nothing changed. "
        "Run /verify again in the server if you want to verify.",
    ),
    OutcomeKind.BAD_REQUEST: (
        400,
        "Incomplete request",
        "The link is missing a part. Start again with /verify in the server.",
    ),
    OutcomeKind.STATE_INVALID: (
        400,
        "Invalid link",
        "This verification link is not valid. Start again with /verify in the server.",
    ),
    OutcomeKind.STATE_EXPIRED: (
        400,
        "Link expired",
        "This verification link has expired (links last 10 minutes). "
        "Run /verify again in the server for a new one.",
    ),
    OutcomeKind.STATE_REUSED: (
        400,
        "Link already used",
        "This verification link was already used; each link works once. "
        "Run /verify again in the server for a new one.",
    ),
    OutcomeKind.OTHER_BROWSER: (
        400,
        "Different browser",
        "This sign-in was not started in this browser, so nothing changed. "
        "Open your /verify link again and finish in the same browser.",
    ),
    OutcomeKind.PROVIDER_ERROR: (
        502,
        "Sign-in provider error",
        "The sign-in provider did not complete the login, so nothing changed. "
        "Please try /verify again in a few minutes.",
    ),
    OutcomeKind.WRONG_ACCOUNT: (
        403,
        "Different account",
        "You signed in with a different account than the one that ran /verify, "
        "so nothing changed. Sign in with the same Discord account.",
    ),
    OutcomeKind.NO_ROLE_CONFIGURED: (
        409,
        "No verified role",
        "This server has no verified role set up, so you were not verified. "
        "Please tell a moderator.",
    ),
    OutcomeKind.NOT_IN_GUILD: (
        409,
        "Not a member",
        "You are not a member of the server this link is for, so you were not verified.",
    ),
    OutcomeKind.ROLE_REFUSED: (
        502,
        "Role could not be given",
        "Discord refused to give you the verified role (the bot lacks the "
        "permission or its role is too low), so you were not verified. "
        "Please tell a moderator.",
    ),
    OutcomeKind.ROLE_FAILED: (
        503,
        "Role not given yet",
        "Discord did not answer when giving you the verified role, so you were "
        "not verified. Please run /verify again in a few minutes.",
    ),
    OutcomeKind.RECORD_PENDING: (
        500,
        "Verification record pending",
        "You have the verified role, but saving your verification record failed. "
        "Pending: the record. Run /verify again later to complete it.",
    ),
}


def _page(status: int, title: str, message: str) -> HTMLResponse:
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<meta name=viewport content='width=device-width'>"
        "<style>body{font:16px sans-serif;max-width:36em;margin:4em auto}</style>"
        f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
        "</body></html>"
    )
    return HTMLResponse(body, status_code=status, headers=_PAGE_HEADERS)


def outcome_page(outcome: Outcome) -> HTMLResponse:
    """The page shown at the end of the OAuth callback."""
    return _page(*_PAGES[outcome.kind])


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 as JSON bodies like every other error."""
    assert isinstance(exc, HTTPException)
    names = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    response = _error(exc.status_code, names.get(exc.status_code, "error"), exc.detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _client_disconnected(request: Request, exc: Exception) -> Response:
    # The client left while sending its body: nothing failed on our side, and
    # nobody is left to read an answer (the server drops it). 499 is nginx's
    # "client closed request", so the request log and metrics still say why.
    log.info("web.client_disconnected", extra={"route": request.url.path})
    return Response(status_code=499)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this answer, so the traceback reaches the log
    # once, through hypercorn's error logger.
    log.error(
        "web.request_failed",
        extra={"route": request.url.path, "error": type(exc).__name__},
    )
    return _error(500, "internal_error", "Something went wrong on our side.")


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "message": message}, status_code=status, headers=_JSON_HEADERS
    )


# -- Discord HTTP interactions ----------------------------------------------------------

InteractionHandler = Callable[[Interaction], Awaitable[Mapping[str, Any]]]
"""Answers one interaction with its response body (``{"type": 4, "data": ...}``)."""


class InteractionVerifier:
    """Checks Discord's Ed25519 signature on an HTTP interaction.

    Discord signs ``timestamp + body`` with the application's key and sends
    ``X-Signature-Ed25519`` and ``X-Signature-Timestamp`` (docs: Interactions >
    Overview > Setting Up an Endpoint). A request whose timestamp is more
    than ``max_skew`` seconds from ``clock()`` is refused too, so a captured
    request cannot be replayed later.
    """

    def __init__(
        self,
        public_key: str,
        *,
        max_skew: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
        self._max_skew = max_skew
        self._clock = clock

    def verify(self, signature: str | None, timestamp: str | None, body: bytes) -> bool:
        """True when the signature is valid for this body and timestamp."""
        if not signature or not timestamp:
            return False
        try:
            sig = bytes.fromhex(signature)
            sent_at = float(timestamp)
        except ValueError:
            return False
        if not math.isfinite(sent_at) or abs(self._clock() - sent_at) > self._max_skew:
            return False
        try:
            self._key.verify(sig, timestamp.encode() + body)
        except InvalidSignature:
            return False
        return True


# -- the application ----------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class WebStats:
    """Counters of the web service."""

    requests: collections.Counter[tuple[str, int]] = dataclasses.field(
        default_factory=collections.Counter
    )
    rate_limited: int = 0
    started_at: float | None = None


class WebApp:
    """The ASGI application; an instance is what hypercorn serves.

    Args:
        health: the checks of ``/health`` and ``/readyz``.
        metrics: renders the Prometheus text, sync or async
            (``MetricsExporter.render_async``); None: 404.
        flow: the OAuth2 verification flow; None: ``/oauth/*`` answer 404.
        tokens: signs and checks session cookies; needed for ``/api/*``.
        store: users, roles, cases and the review queue for ``/api/*``.
        interaction_verifier: checks ``POST /interactions``; None: 404.
        interaction_handler: answers verified interactions other than PING.
        rate: requests per second per IP on ``/oauth/*`` and ``/api/*``.
        burst: bucket depth of that limit.
        clock: monotonic seconds for the rate limit (trio's clock).
        client_ip_header: behind a reverse proxy, the header holding the
            visitor's address (``X-Forwarded-For``, ``X-Real-IP``); the last
            address in it is used. None: the TCP peer. Set it only when a
            proxy always sets the header, or visitors could pick their key.
        max_body: the largest request body in bytes on any route; a larger
            ``Content-Length`` is answered 413 before the route runs, and a
            streamed body is cut off with 413 once it passes the cap.
    """

    def __init__(
        self,
        *,
        health: Sequence[HealthCheck] = (),
        metrics: Callable[[], Awaitable[bytes] | bytes] | None = None,
        flow: VerificationFlow | None = None,
        tokens: TokenSigner | None = None,
        store: AuthStore | None = None,
        interaction_verifier: InteractionVerifier | None = None,
        interaction_handler: InteractionHandler | None = None,
        rate: float = 2.0,
        burst: float = 20.0,
        clock: Callable[[], float] = trio.current_time,
        client_ip_header: str | None = None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.health = list(health)
        self.metrics = metrics
        self.flow = flow
        self.tokens = tokens if tokens is not None else (flow.tokens if flow else None)
        self.store = store if store is not None else (flow.store if flow else None)
        self.interaction_verifier = interaction_verifier
        self.interaction_handler = interaction_handler
        self.limiter = TokenBuckets(rate=rate, burst=burst)
        self.max_body = max_body
        self._stats = WebStats()
        self._clock = clock
        self._client_ip_header = (
            client_ip_header.lower().encode("latin-1") if client_ip_header else None
        )
        self._secure_cookie = bool(
            flow and flow.oauth.config.redirect_uri.startswith("https://")
        )
        routes = self._routes()
        self._paths = frozenset(route.path for route in routes)
        self._starlette = Starlette(
            routes=routes,
            exception_handlers={
                HTTPException: _http_error,
                ClientDisconnect: _client_disconnected,
                Exception: _server_error,
            },
        )

    def _routes(self) -> list[Route]:
        return [
            Route("/health", self.health_endpoint),
            Route("/livez", self.livez),
            Route("/readyz", self.readyz),
            Route("/metrics", self.metrics_endpoint),
            Route("/oauth/start", self.oauth_start),
            Route("/oauth/login", self.oauth_login),
            Route("/oauth/callback", self.oauth_callback),
            Route("/api/me", self.api_me),
            Route("/api/cases", self.api_cases),
            Route("/api/review", self.api_review),
            Route("/interactions", self.interactions, methods=["POST"]),
        ]

    def stats(self) -> dict[str, Any]:
        """Requests by path and status, 429s, uptime: plain data."""
        return {
            "requests": [
                {"path": path, "status": status, "count": count}
                for (path, status), count in sorted(self._stats.requests.items())
            ],
            "rate_limited": self._stats.rate_limited,
            "started": self._stats.started_at is not None,
        }

    def mark_started(self) -> None:
        """Called by :class:`WebService` once the listener is bound."""
        self._stats.started_at = self._clock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._starlette(scope, receive, send)
            return
        path: str = scope["path"]
        started = time.perf_counter()
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        refused = self._refused(scope)
        try:
            if refused is not None:
                await refused(scope, receive, send_status)
            else:
                capped = _capped_receive(receive, self.max_body, path)
                await self._starlette(scope, capped, send_status)
        finally:
            self._count(path, status, started)

    def _refused(self, scope: Scope) -> Response | None:
        """The 413 or 429 answered before routing, or None to route."""
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_body:
            log.warning("web.body_too_large", extra={"route": scope["path"]})
            return _error(413, "payload_too_large", _too_large(self.max_body))
        if scope["path"].startswith(("/oauth/", "/api/")):
            return self._rate_limited(scope)
        return None

    def _rate_limited(self, scope: Scope) -> Response | None:
        key = self._client_address(scope)
        wait = self.limiter.take(key, self._clock())
        if wait <= 0:
            return None
        self._stats.rate_limited += 1
        retry_after = max(1, math.ceil(wait))
        log.warning(
            "web.rate_limited",
            extra={"route": scope["path"], "retry_after": retry_after},
        )
        response = _error(429, "rate_limited", "Too many requests; slow down.")
        response.headers["Retry-After"] = str(retry_after)
        return response

    def _client_address(self, scope: Scope) -> str:
        if self._client_ip_header is not None:
            for name, value in scope["headers"]:
                if name == self._client_ip_header:
                    # The proxy appends the address it saw last.
                    return str(value.decode("latin-1").rsplit(",", 1)[-1].strip())
        client = scope.get("client")
        return str(client[0]) if client else "unknown"

    def _count(self, path: str, status: int, started: float) -> None:
        # Only known routes are counted by path: unknown ones are unbounded.
        route = path if path in self._paths else "<unmatched>"
        self._stats.requests[(route, status)] += 1
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        log.info(
            "web.request",
            extra={"route": route, "status": status, "elapsed_ms": elapsed_ms},
        )

    # -- health and metrics

    async def _checks(self) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}

        async def run_one(check: HealthCheck) -> None:
            results[check.name] = await _run_probe(check)

        async with trio.open_nursery() as nursery:
            for check in self.health:
                nursery.start_soon(run_one, check)
        results["web"] = {
            "ok": self._stats.started_at is not None,
            "critical": True,
            "uptime_s": (
                round(self._clock() - self._stats.started_at, 3)
                if self._stats.started_at is not None
                else None
            ),
            "rate_limited": self._stats.rate_limited,
        }
        return results

    async def health_endpoint(self, request: Request) -> Response:
        checks = await self._checks()
        healthy = all(c["ok"] for c in checks.values() if c["critical"])
        body = {"status": "ok" if healthy else "unhealthy", "checks": checks}
        return JSONResponse(
            body, status_code=200 if healthy else 503, headers=_JSON_HEADERS
        )

    async def livez(self, request: Request) -> Response:
        # Alive means the event loop answers; dependencies belong to /readyz.
        return JSONResponse({"status": "ok"}, headers=_JSON_HEADERS)

    async def readyz(self, request: Request) -> Response:
        checks = await self._checks()
        failing = sorted(n for n, c in checks.items() if c["critical"] and not c["ok"])
        status = 503 if failing else 200
        body = {"status": "ready" if not failing else "not_ready", "failing": failing}
        return JSONResponse(body, status_code=status, headers=_JSON_HEADERS)

    async def metrics_endpoint(self, request: Request) -> Response:
        if self.metrics is None:
            return _error(404, "not_found", "Metrics are not enabled.")
        body = self.metrics()
        if inspect.isawaitable(body):
            body = await body
        return Response(
            body,
            media_type="text/plain; version=0.0.4; charset=utf-8",
            headers=_JSON_HEADERS,
        )

    # -- OAuth2

    async def oauth_start(self, request: Request) -> Response:
        if self.flow is None:
            return _error(404, "not_found", "Verification is not enabled.")
        state = request.query_params.get("state")
        if not state:
            return outcome_page(Outcome(OutcomeKind.BAD_REQUEST))
        try:
            url, nonce = self.flow.authorize_redirect(state)
        except TokenError as exc:
            expired = exc.reason == "expired"
            kind = OutcomeKind.STATE_EXPIRED if expired else OutcomeKind.STATE_INVALID
            log.warning("web.oauth_start_refused", extra={"error": exc.reason})
            return outcome_page(Outcome(kind))
        return self._to_provider(request, url, nonce)

    async def oauth_login(self, request: Request) -> Response:
        if self.flow is None or not self.flow.oauth.config.identity_is_discord:
            # A login needs the provider to say which Discord user signs in.
            return _error(404, "not_found", "Web sign-in is not enabled.")
        url, nonce = self.flow.authorize_redirect(await self.flow.login_state())
        return self._to_provider(request, url, nonce)

    def _to_provider(self, request: Request, url: str, nonce: str) -> Response:
        """Redirect to the provider, marking this browser as the flow's own."""
        response = RedirectResponse(url, status_code=302, headers=_PAGE_HEADERS)
        # One cookie per flow, so two links open in two tabs both work.
        response.set_cookie(
            _FLOW_COOKIE_PREFIX + nonce,
            "1",
            max_age=int(STATE_LIFETIME),
            httponly=True,
            secure=self._secure(request),
            samesite="lax",  # sent on the provider's top-level redirect back
            path="/oauth/",
        )
        return response

    def _secure(self, request: Request) -> bool:
        return self._secure_cookie or request.url.scheme == "https"

    async def oauth_callback(self, request: Request) -> Response:
        if self.flow is None:
            return _error(404, "not_found", "Verification is not enabled.")
        params = request.query_params
        started_here = {
            name.removeprefix(_FLOW_COOKIE_PREFIX)
            for name in request.cookies
            if name.startswith(_FLOW_COOKIE_PREFIX)
        }
        outcome = await self.flow.finish(
            state=params.get("state"),
            code=params.get("code"),
            error=params.get("error"),
            browser_nonces=started_here,
        )
        response = outcome_page(outcome)
        if outcome.kind.ok and outcome.user_id is not None and self.tokens is not None:
            token = self.tokens.issue_session(
                user_id=outcome.user_id, login=outcome.login or ""
            )
            response.set_cookie(
                SESSION_COOKIE,
                token,
                max_age=int(self.tokens.session_lifetime),
                httponly=True,
                secure=self._secure(request),
                samesite="lax",
                path="/",
            )
        return response

    # -- JSON API

    async def _user(self, request: Request) -> WebUser | Response:
        """The signed-in user, or the 401 to send."""
        if self.tokens is None or self.store is None:
            return _error(404, "not_found", "The API is not enabled.")
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return _error(401, "unauthenticated", "Sign in first.")
        try:
            claims = self.tokens.decode_session(cookie)
        except TokenError as exc:
            log.warning("web.session_refused", extra={"error": exc.reason})
            return _error(
                401, "unauthenticated", "Your session is not valid; sign in again."
            )
        user = await self.store.user(claims.user_id)
        if user is None:
            return _error(401, "unauthenticated", "Unknown user; sign in again.")
        return user

    async def _with_role(self, request: Request, role: str) -> WebUser | Response:
        user = await self._user(request)
        if isinstance(user, WebUser) and not has_role(user.roles, role):
            return _error(403, "forbidden", f"This needs the {role} role.")
        return user

    async def api_me(self, request: Request) -> Response:
        user = await self._user(request)
        if not isinstance(user, WebUser):
            return user
        if not user.verified:
            return _error(403, "forbidden", "Verify with /verify first.")
        body = {
            "id": str(user.user_id),
            "login": user.login,
            "verified": user.verified,
            "roles": sorted(user.roles),
        }
        return JSONResponse(body, headers=_JSON_HEADERS)

    async def api_cases(self, request: Request) -> Response:
        user = await self._with_role(request, MODERATOR)
        if not isinstance(user, WebUser):
            return user
        guild = _snowflake_param(request, "guild", required=True)
        limit = _limit_param(request)
        if isinstance(guild, Response):
            return guild
        if isinstance(limit, Response):
            return limit
        assert self.store is not None and guild is not None  # checked by _user
        cases = await self.store.cases(guild, limit)
        return JSONResponse(
            {"guild": str(guild), "cases": cases}, headers=_JSON_HEADERS
        )

    async def api_review(self, request: Request) -> Response:
        user = await self._with_role(request, MODERATOR)
        if not isinstance(user, WebUser):
            return user
        guild = _snowflake_param(request, "guild", required=False)
        limit = _limit_param(request)
        if isinstance(guild, Response):
            return guild
        if isinstance(limit, Response):
            return limit
        assert self.store is not None  # checked by _user
        items = await self.store.review_queue(guild, limit)
        return JSONResponse({"items": items}, headers=_JSON_HEADERS)

    # -- Discord HTTP interactions

    async def interactions(self, request: Request) -> Response:
        if self.interaction_verifier is None:
            return _error(404, "not_found", "HTTP interactions are not enabled.")
        body = await request.body()
        signed = self.interaction_verifier.verify(
            request.headers.get("X-Signature-Ed25519"),
            request.headers.get("X-Signature-Timestamp"),
            body,
        )
        if not signed:
            log.warning("web.interaction_bad_signature")
            return _error(401, "invalid_signature", "Invalid request signature.")
        try:
            interaction = decode_event("INTERACTION_CREATE", body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return _error(400, "bad_request", "The body is not a valid interaction.")
        if interaction.type == _PING:
            return JSONResponse({"type": _PONG})
        if self.interaction_handler is None:
            return _error(503, "unavailable", "No handler serves interactions.")
        try:
            answer = await self.interaction_handler(interaction)
        except Exception as exc:  # noqa: BLE001 - one bad interaction, not the server
            log.error(
                "web.interaction_failed",
                extra={"guild_id": interaction.guild_id, "error": type(exc).__name__},
            )
            return _error(500, "internal_error", "The interaction failed.")
        return JSONResponse(dict(answer))


def _declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, or None (chunked, or left to the server)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            # bytes.isdigit() is ASCII only; the server rejects a malformed one.
            return int(value) if value.isdigit() and len(value) <= 20 else None
    return None


def _too_large(limit: int) -> str:
    return f"The request body is larger than {limit} bytes."


def _capped_receive(receive: Receive, limit: int, path: str) -> Receive:
    """``receive`` that stops a body, as it streams in, once it passes ``limit``.

    The route's body read then raises ``HTTPException(413)``, answered as JSON,
    so at most ``limit`` bytes plus one chunk are ever held.
    """
    received = 0

    async def capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                log.warning("web.body_too_large", extra={"route": path})
                raise HTTPException(413, _too_large(limit))
        return message

    return capped


def _ascii_int(raw: str, max_digits: int) -> int | None:
    """``raw`` as an int when it is 1 to ``max_digits`` ASCII digits, else None.

    ``str.isdigit()`` alone also accepts "²" and "٣", which ``int()`` refuses
    or reads as 3.
    """
    if not (raw.isascii() and raw.isdigit()) or len(raw) > max_digits:
        return None
    return int(raw)


def _snowflake_param(
    request: Request, name: str, *, required: bool
) -> int | None | Response:
    raw = request.query_params.get(name)
    if raw is None:
        if required:
            return _error(400, "bad_request", f"The {name} parameter is required.")
        return None
    value = _ascii_int(raw, 20)
    if value is None or value > _MAX_SNOWFLAKE:
        return _error(400, "bad_request", f"The {name} parameter must be a snowflake.")
    return value


def _limit_param(
    request: Request, default: int = 50, most: int = 200
) -> int | Response:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    value = _ascii_int(raw, 10)
    if value is None or not 1 <= value <= most:
        return _error(400, "bad_request", f"limit must be an integer from 1 to {most}.")
    return value


# -- the server ---------------------------------------------------------------------------


class WebService:
    """Serves a :class:`WebApp` with hypercorn's trio worker.

    ``await nursery.start(web.run)`` returns the bound port (the real one when
    port 0 was asked for). Cancelling the nursery stops the server at once;
    :meth:`drain` stops it gracefully (in-flight requests get
    ``graceful_timeout`` seconds).

    Args:
        app: what to serve.
        host: ``VSB_HTTP_HOST``.
        port: ``VSB_HTTP_PORT``; 0 for any free port.
        graceful_timeout: seconds in-flight requests get on :meth:`drain`.
    """

    def __init__(
        self, app: WebApp, *, host: str, port: int, graceful_timeout: float = 5.0
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.graceful_timeout = graceful_timeout
        self._stop = trio.Event()

    def _config(self) -> HypercornConfig:
        config = HypercornConfig()
        host = f"[{self.host}]" if ":" in self.host else self.host
        config.bind = [f"{host}:{self.port}"]
        config.accesslog = None  # WebApp logs each request itself, without query
        config.errorlog = logging.getLogger("hypercorn.error")
        config.graceful_timeout = self.graceful_timeout
        config.include_server_header = False
        return config

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled or drained.

        Raises:
            OSError: the address cannot be bound (port in use, bad host).
        """
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(
                _serve, self.app, self._config(), self._stop.wait
            )
            self.port = int(binds[0].rsplit(":", 1)[1])
            self.app.mark_started()
            log.info("web.listening", extra={"host": self.host, "port": self.port})
            task_status.started(self.port)
        log.info("web.stopped")

    async def drain(self) -> None:
        """Stop accepting connections and let in-flight requests finish."""
        self._stop.set()


async def _serve(
    app: WebApp,
    config: HypercornConfig,
    shutdown_trigger: Callable[[], Awaitable[None]],
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    # WebApp is an ASGI callable; hypercorn's type names only its own scopes.
    asgi: Any = app
    await serve(
        asgi,
        config,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
        mode="asgi",
    )
