"""The REST driver: httpx under trio around the sans-I/O rate limiter.

Owns :class:`RestClient`: authentication and headers, JSON via orjson,
waiting as :class:`~vsb.rest.ratelimit.RateLimiter` says, retries, the
translation of answers into :mod:`vsb.rest.errors`, one log line per HTTP
exchange and the counters behind :meth:`RestClient.stats`.

Retries: a 429 means Discord did not process the request, so it is sent
again after the wait (up to ``max_rate_limit_retries`` times). A 5xx or a
transport error is retried with exponential backoff only for idempotent
methods (GET, PUT, DELETE); a POST or PATCH could have taken effect. 4xx
answers are never retried.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

import httpx
import orjson
import trio

import vsb
from vsb.rest.errors import (
    RateLimited,
    RequestRefused,
    TransportError,
    error_for,
)
from vsb.rest.ratelimit import (
    Outcome,
    RateLimiter,
    Refuse,
    Scope,
    Ticket,
    Verdict,
    Wait,
)
from vsb.rest.routes import CompiledRoute, Endpoints, encode_audit_reason
from vsb.secret import Secret

log = logging.getLogger(__name__)

PROJECT_URL: Final = "https://github.com/vsb-bot/vsb"
BACKOFF_BASE: Final = 0.5  # seconds; doubled per attempt
BACKOFF_CAP: Final = 8.0


class RestClient(Endpoints):
    """Discord REST client for one bot token.

    Use as ``async with RestClient(token, api_base=...) as rest:`` or call
    :meth:`aclose` when done. Methods return the decoded JSON answer, or None
    for 204, and raise :mod:`vsb.rest.errors` types.

    Args:
        token: the bot token.
        api_base: e.g. ``https://discord.com/api/v10``, a rate-limit proxy,
            or the sandbox's ``api_base``.
        global_limit: bot-token requests per second.
        max_wait: longest rate-limit wait before failing with ``RateLimited``.
        transport: an httpx transport (tests: ``httpx.ASGITransport``).
        timeout: seconds for connect, read, write and pool waits.
        max_retries: retries of an idempotent call after 5xx or transport error.
        max_rate_limit_retries: resends after 429 answers before giving up.
        invalid_limit: invalid requests per 10 minutes at which to refuse.
        global_margin: extra seconds in the global window (latency jitter).
        user_agent_url: the URL in ``User-Agent: DiscordBot (url, version)``.
        wall_clock: Unix time source for message age and timeout checks.
    """

    def __init__(
        self,
        token: Secret,
        *,
        api_base: str,
        global_limit: float = 50,
        max_wait: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 15.0,
        max_retries: int = 3,
        max_rate_limit_retries: int = 5,
        invalid_limit: int = 1_000,
        global_margin: float = 0.05,
        user_agent_url: str = PROJECT_URL,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._token = token
        self._limiter = RateLimiter(
            global_limit=global_limit,
            global_margin=global_margin,
            max_wait=max_wait,
            invalid_limit=invalid_limit,
        )
        self._http = httpx.AsyncClient(
            base_url=api_base.rstrip("/"),
            transport=transport,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": f"DiscordBot ({user_agent_url}, {vsb.__version__})"},
        )
        self._max_retries = max_retries
        self._max_rate_limit_retries = max_rate_limit_retries
        self._wall_clock = wall_clock
        self._events: dict[object, trio.Event] = {}
        self._requests: Counter[tuple[str, int]] = Counter()
        self._rate_limited: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def wall_time(self) -> float:
        """Unix time now (injectable for tests)."""
        return self._wall_clock()

    # -- one call -------------------------------------------------------------

    async def request(
        self,
        route: CompiledRoute,
        *,
        json: Any = None,
        reason: str | None = None,
    ) -> Any:
        """Send one request, waiting and retrying as the limits say.

        Args:
            route: a compiled route from :mod:`vsb.rest.routes`.
            json: the body, encoded with orjson.
            reason: the audit-log reason (``X-Audit-Log-Reason``).

        Returns:
            the decoded JSON answer, or None for an empty answer.

        Raises:
            ValidationError, RequestRefused, TransportError, DiscordHTTPError
            and its subclasses (see :mod:`vsb.rest.errors`).
        """
        headers = self._headers(route, reason)
        content = orjson.dumps(json) if json is not None else None
        failures = 0  # 5xx and transport errors
        limited = 0  # 429 answers
        while True:
            ticket = await self._acquire(route)
            exchange = await self._exchange(route, ticket, headers, content, failures)
            if isinstance(exchange, BaseException):
                failures += 1
                await self._before_retry(route, failures, exchange)
                continue
            response, body, verdict = exchange
            if verdict.outcome is Outcome.RETRY:
                limited += 1
                self._on_rate_limited(route, verdict, limited)
                continue
            status = response.status_code
            if (
                status >= 500
                and route.route.idempotent
                and failures < self._max_retries
            ):
                failures += 1
                await self._backoff(failures)
                continue
            if status >= 400:
                raise error_for(status, body, str(route.route))
            return body

    def _headers(self, route: CompiledRoute, reason: str | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if not route.route.interaction:
            # Interaction endpoints authenticate with the token in the path.
            headers["Authorization"] = f"Bot {self._token.reveal()}"
        if reason:
            headers["X-Audit-Log-Reason"] = encode_audit_reason(reason)
        return headers

    async def _acquire(self, route: CompiledRoute) -> Ticket:
        uses_global = not route.route.interaction
        while True:
            now = trio.current_time()
            action = self._limiter.acquire(
                route.route.key, route.resource, now, uses_global=uses_global
            )
            if isinstance(action, Ticket):
                return action
            if isinstance(action, Refuse):
                raise self._refusal(route, action)
            await self._wait(action)

    async def _wait(self, action: Wait) -> None:
        if action.until is not None:
            await trio.sleep_until(action.until)
            return
        event = self._events.get(action.wake_key)
        if event is None:
            event = self._events[action.wake_key] = trio.Event()
        await event.wait()

    def _wake(self, keys: tuple[object, ...]) -> None:
        for key in keys:
            event = self._events.pop(key, None)
            if event is not None:
                event.set()

    def _refusal(self, route: CompiledRoute, refuse: Refuse) -> Exception:
        name = str(route.route)
        self._counts["refused"] += 1
        if refuse.scope is Scope.INVALID:
            return RequestRefused(name, refuse.retry_after, refuse.reason)
        log.warning(
            "rest.wait_too_long",
            extra={
                "route": name,
                "scope": str(refuse.scope),
                "retry_after": refuse.retry_after,
            },
        )
        return RateLimited(refuse.retry_after, str(refuse.scope), name, refuse.reason)

    async def _exchange(
        self,
        route: CompiledRoute,
        ticket: Ticket,
        headers: dict[str, str],
        content: bytes | None,
        failures: int,
    ) -> tuple[httpx.Response, Any, Verdict] | httpx.TransportError:
        """Send once; answer the response with the core's verdict, or the
        transport error if a retry is allowed (otherwise raise it)."""
        name = str(route.route)
        start = trio.current_time()
        try:
            response = await self._http.request(
                route.route.method,
                route.path,
                content=content,
                headers={**headers, "Content-Type": "application/json"}
                if content is not None
                else headers,
            )
        except httpx.TransportError as exc:
            self._wake(self._limiter.release(ticket, trio.current_time()))
            self._counts["transport_errors"] += 1
            if route.route.idempotent and failures < self._max_retries:
                return exc
            raise TransportError(name, type(exc).__name__) from exc
        except BaseException:
            # Cancelled (or a bug): the request may be out; free its place.
            self._wake(self._limiter.release(ticket, trio.current_time()))
            raise
        now = trio.current_time()
        body = _decode(response)
        verdict = self._limiter.on_response(
            ticket, response.status_code, response.headers, body, now
        )
        self._wake(verdict.wake_keys)
        self._record(name, response.status_code, verdict, now - start, failures + 1)
        return response, body, verdict

    def _record(
        self, name: str, status: int, verdict: Verdict, elapsed: float, attempt: int
    ) -> None:
        """Count one exchange and write its log line."""
        self._requests[(name, status)] += 1
        log.info(
            "rest.request",
            extra={
                "route": name,
                "status": status,
                "bucket": verdict.bucket,
                "elapsed_ms": round(elapsed * 1000, 1),
                "attempt": attempt,
            },
        )
        if verdict.guard_tripped:
            log.error(
                "rest.invalid_request_guard", extra={"route": name, "status": status}
            )

    def _on_rate_limited(
        self, route: CompiledRoute, verdict: Verdict, limited: int
    ) -> None:
        name = str(route.route)
        scope = str(verdict.scope)
        self._rate_limited[scope] += 1
        if verdict.ip_blocked:
            log.error(
                "rest.ip_blocked",
                extra={
                    "route": name,
                    "status": 429,
                    "retry_after": verdict.retry_after,
                },
            )
        else:
            log.warning(
                "rest.rate_limited",
                extra={
                    "route": name,
                    "bucket": verdict.bucket,
                    "scope": scope,
                    "retry_after": verdict.retry_after,
                    "attempt": limited,
                },
            )
        if limited > self._max_rate_limit_retries:
            raise RateLimited(verdict.retry_after, scope, name)

    async def _before_retry(
        self, route: CompiledRoute, failures: int, exc: BaseException
    ) -> None:
        log.warning(
            "rest.retry",
            extra={
                "route": str(route.route),
                "attempt": failures,
                "error": type(exc).__name__,
            },
        )
        await self._backoff(failures)

    async def _backoff(self, failures: int) -> None:
        self._counts["retries"] += 1
        await trio.sleep(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1)))

    # -- stats ----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters as plain data.

        Returns:
            ``requests``: {route template: {status: count}};
            ``rate_limited``: {scope: count of 429 answers};
            ``retries``, ``transport_errors``, ``refused`` (local refusals);
            and the limiter's ``buckets``, ``invalid_requests_10min``, ...
        """
        by_route: dict[str, dict[int, int]] = {}
        for (route, status), count in self._requests.items():
            by_route.setdefault(route, {})[status] = count
        return {
            "requests": by_route,
            "rate_limited": dict(self._rate_limited),
            "retries": self._counts["retries"],
            "transport_errors": self._counts["transport_errors"],
            "refused": self._counts["refused"],
            **self._limiter.snapshot(trio.current_time()),
        }


def _decode(response: httpx.Response) -> Any:
    """The JSON body, or None when empty or not JSON (e.g. Cloudflare's HTML)."""
    if not response.content:
        return None
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
