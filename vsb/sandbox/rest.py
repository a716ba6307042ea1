"""The REST front: a starlette app serving ``/api/v10`` like Discord does.

Owns the request pipeline every route goes through, in Discord's order:
authentication (``Authorization: Bot <token>``, or a Bearer token from the
OAuth2 emulator where Discord accepts one), rate limits (per bucket and
top-level resource, then global; see ``ratelimit.py``), the decoding of
``X-Audit-Log-Reason`` (percent-encoded UTF-8, Discord's "Audit Log" page),
the JSON body, and Discord's error shape for every refusal. Route handlers
live in ``routes_*.py`` and ``webhooks.py``; each is ``async def h(core,
req) -> Reply | JSON | None`` (None answers 204).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from vsb.sandbox.core import SandboxCore
from vsb.sandbox.errors import ApiError, form_error
from vsb.sandbox.ratelimit import Decision

log = logging.getLogger(__name__)

MAX_REASON: int = 512


@dataclass
class Req:
    """What a route handler sees of one request."""

    method: str
    route: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    reason: str | None
    auth: str | None  # "bot", "bearer" or None
    bearer: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def snowflake(self, name: str) -> int:
        """A path parameter as a snowflake (50035 when it is not one)."""
        return parse_snowflake(self.params[name], name)


@dataclass
class Reply:
    """An explicit answer (status other than 200/204)."""

    status: int
    body: Any = None


Handler = Callable[[SandboxCore, Req], Awaitable[Any]]


@dataclass(frozen=True)
class RouteSpec:
    """One REST route.

    Attributes:
        auth: ``"bot"`` (bot token required), ``"none"`` (interaction
            token in the path), ``"any"`` (bot or Bearer).
        resource: path parameter(s) naming the top-level resource.
    """

    method: str
    path: str
    handler: Handler
    auth: str = "bot"
    resource: tuple[str, ...] = ()


def parse_snowflake(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or number >= 1 << 64:
        raise form_error(
            name, "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.'
        )
    return number


def json_response(status: int, body: Any, headers: dict[str, str]) -> Response:
    if status == 204 or body is None:
        return Response(status_code=204 if status < 300 else status, headers=headers)
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


class RestFront:
    """Builds the starlette routes for a list of :class:`RouteSpec`."""

    def __init__(self, core: SandboxCore, specs: list[RouteSpec]) -> None:
        self.core = core
        self.specs = specs
        self.calls = 0

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route(spec.path, self._endpoint(spec), methods=[spec.method])
            for spec in self.specs
        ]
        routes.append(Route("/{rest:path}", _unknown_route, methods=_ALL_METHODS))
        return [Mount("/api/v10", routes=routes)]

    def _endpoint(self, spec: RouteSpec) -> Callable[[Request], Awaitable[Response]]:
        route = f"{spec.method} {spec.path}"

        async def endpoint(request: Request) -> Response:
            return await self._handle(spec, route, request)

        return endpoint

    async def _handle(self, spec: RouteSpec, route: str, request: Request) -> Response:
        self.calls += 1
        params = {k: str(v) for k, v in request.path_params.items()}
        try:
            auth, bearer = self._authenticate(spec, request)
        except ApiError as exc:
            self.core.limiter.note_invalid(exc.status, None, trio.current_time())
            return json_response(exc.status, exc.body(), {})
        resource = ":".join(params.get(p, "") for p in spec.resource)
        decision = self.core.limiter.check(
            route,
            resource,
            trio.current_time(),
            self.core.clock.unix(),
            bot_auth=auth == "bot" and spec.auth != "none",
        )
        headers = decision.headers
        if not decision.allowed:
            return self._refused(route, decision)
        try:
            req = Req(
                method=spec.method,
                route=route,
                params=params,
                query=dict(request.query_params),
                body=await _read_body(request),
                reason=_audit_reason(request),
                auth=auth,
                bearer=bearer,
                headers=dict(request.headers),
            )
            result = await spec.handler(self.core, req)
        except ApiError as exc:
            self.core.limiter.note_invalid(exc.status, None, trio.current_time())
            log.info(
                "sandbox.rest_refused", extra={"route": route, "status": exc.status}
            )
            return json_response(exc.status, exc.body(), headers)
        if isinstance(result, Reply):
            return json_response(result.status, result.body, headers)
        return json_response(200 if result is not None else 204, result, headers)

    def _refused(self, route: str, decision: Decision) -> Response:
        now = trio.current_time()
        if decision.status == 429:
            self.core.limiter.note_invalid(429, decision.scope, now)
            self.core.actions.record(
                "rest.rate_limited",
                route=route,
                scope=decision.scope,
                retry_after=decision.retry_after,
            )
            return json_response(429, decision.body(), decision.headers)
        self.core.actions.record(
            "rest.server_error", route=route, status=decision.status
        )
        body = {"message": f"{decision.status}: Server Error", "code": 0}
        return json_response(decision.status, body, decision.headers)

    def _authenticate(
        self, spec: RouteSpec, request: Request
    ) -> tuple[str | None, str | None]:
        header = request.headers.get("authorization", "")
        if header == f"Bot {self.core.identity.bot_token}":
            return "bot", None
        if spec.auth == "none":
            return None, None
        if spec.auth == "any" and header.startswith("Bearer "):
            return "bearer", header[len("Bearer ") :]
        raise ApiError(401, 0, "401: Unauthorized")


_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def _unknown_route(request: Request) -> Response:
    return json_response(404, {"message": "404: Not Found", "code": 0}, {})


async def _read_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type:
        raise ApiError(400, 50109, "The request body contains invalid JSON.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from exc


def _audit_reason(request: Request) -> str | None:
    """Decode ``X-Audit-Log-Reason`` (percent-encoded UTF-8, max 512 chars)."""
    raw = request.headers.get("x-audit-log-reason")
    if raw is None:
        return None
    try:
        reason = urllib.parse.unquote(raw, errors="strict")
    except UnicodeDecodeError as exc:
        raise form_error(
            "reason", "INVALID_ENCODING", "Reason is not valid UTF-8."
        ) from exc
    if len(reason) > MAX_REASON:
        raise form_error(
            "reason",
            "BASE_TYPE_MAX_LENGTH",
            f"Must be {MAX_REASON} or fewer in length.",
        )
    return reason


def build_app(
    core: SandboxCore, specs: list[RouteSpec], extra: list[BaseRoute]
) -> Starlette:
    """The sandbox's ASGI app: the REST routes plus ``extra`` (OAuth2 pages)."""
    front = RestFront(core, specs)
    app = Starlette(routes=[*extra, *front.routes()])
    app.state.core = core
    return app
