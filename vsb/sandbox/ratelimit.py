"""Server-side rate limits, with Discord's headers and 429 answers.

Theory of operation (Discord's "Rate Limits" page). A *route* is a method
plus a path template. Each route belongs to a bucket, named by an opaque hash
sent in ``X-RateLimit-Bucket``; the counter itself is per bucket and
top-level resource (channel, guild, or webhook id + token). A bucket allows
``limit`` requests per window; the window opens at the first request and
closes ``per`` seconds later. Separately, all bot-token requests share a
global limit (50 per second by default); interaction callbacks and webhook
calls with an interaction token do not count toward it. The limiter is a
pure class: the caller passes trio time in and gets a :class:`Decision` out.

Scenario faults (:meth:`RateLimiter.fail_next`) answer the next N matching
calls with a chosen 429 (scope ``user``, ``shared`` or ``global``) or 5xx.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

# Discord-like defaults: (limit, per seconds) by route template. Routes not
# listed get DEFAULT_RULE.
DEFAULT_RULES: Final[dict[str, tuple[int, float]]] = {
    "POST /channels/{channel_id}/messages": (5, 5.0),
    "PATCH /channels/{channel_id}/messages/{message_id}": (5, 5.0),
    "DELETE /channels/{channel_id}/messages/{message_id}": (5, 1.0),
    "POST /channels/{channel_id}/messages/bulk-delete": (1, 1.0),
    "PATCH /guilds/{guild_id}/members/{user_id}": (10, 10.0),
    "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}": (10, 10.0),
    "DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}": (10, 10.0),
    "DELETE /guilds/{guild_id}/members/{user_id}": (5, 1.0),
    "PUT /guilds/{guild_id}/bans/{user_id}": (5, 1.0),
    "DELETE /guilds/{guild_id}/bans/{user_id}": (5, 1.0),
    "POST /interactions/{interaction_id}/{token}/callback": (5, 1.0),
    "POST /webhooks/{application_id}/{token}": (5, 5.0),
}
# Known limitation: each route is its own bucket (Discord groups some routes
# under one hash and may change a route's hash); clients never see a hash
# change from the sandbox.
DEFAULT_RULE: Final = (50, 1.0)
INVALID_WINDOW: Final = 600.0  # Discord counts invalid requests over 10 minutes


@dataclass
class Decision:
    """The limiter's answer for one request.

    Attributes:
        allowed: False means answer 429 (or ``status`` for a 5xx fault).
        status: the HTTP status to answer when not allowed.
        headers: rate-limit headers to add to the answer.
        retry_after: seconds, for a 429 body.
        scope: ``user``, ``shared`` or ``global`` (429 only).
    """

    allowed: bool
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float = 0.0
    scope: str = "user"

    @property
    def is_global(self) -> bool:
        return self.scope == "global"

    def body(self) -> dict[str, Any]:
        """Discord's 429 body."""
        return {
            "message": "You are being rate limited.",
            "retry_after": round(self.retry_after, 3),
            "global": self.is_global,
        }


@dataclass
class _Window:
    limit: int
    per: float
    reset_at: float = 0.0
    used: int = 0

    def refresh(self, now: float) -> None:
        if now >= self.reset_at:
            self.used = 0
            self.reset_at = now + self.per


@dataclass
class _Fault:
    status: int
    scope: str
    retry_after: float
    route: str | None
    remaining: int


class RateLimiter:
    """Per-bucket and global limits, and REST fault injection.

    Args:
        rules: ``{route template: (limit, per)}`` replacing the defaults for
            the routes named.
        default_rule: (limit, per) for unlisted routes.
        global_limit: bot-token requests per second (None: no global limit).
    """

    def __init__(
        self,
        rules: dict[str, tuple[int, float]] | None = None,
        *,
        default_rule: tuple[int, float] = DEFAULT_RULE,
        global_limit: int | None = 50,
    ) -> None:
        self.rules = {**DEFAULT_RULES, **(rules or {})}
        self.default_rule = default_rule
        self.global_limit = global_limit
        self._buckets: dict[tuple[str, str], _Window] = {}
        self._global = _Window(global_limit or 0, 1.0)
        self._faults: list[_Fault] = []
        self._invalid: deque[float] = deque()
        self.counts = {
            "allowed": 0,
            "limited_user": 0,
            "limited_global": 0,
            "faults": 0,
        }

    def bucket_hash(self, route: str) -> str:
        """The opaque ``X-RateLimit-Bucket`` value of a route."""
        return hashlib.sha1(route.encode()).hexdigest()[:16]

    def fail_next(
        self,
        count: int,
        *,
        status: int = 429,
        scope: str = "user",
        retry_after: float = 1.0,
        route: str | None = None,
    ) -> None:
        """Answer the next ``count`` calls (of ``route`` if given) with a fault."""
        if scope not in ("user", "shared", "global"):
            raise ValueError(f"unknown scope {scope!r}")
        self._faults.append(_Fault(status, scope, retry_after, route, count))

    def check(
        self, route: str, resource: str, now: float, now_unix: float, *, bot_auth: bool
    ) -> Decision:
        """Decide one request and count it.

        Args:
            route: ``"METHOD /template"``.
            resource: the top-level resource id (``""`` when none).
            now: trio time; ``now_unix``: the matching Unix time.
            bot_auth: True for bot-token requests (global limit applies).
        """
        fault = self._take_fault(route)
        if fault is not None:
            return self._fault_decision(fault, route)
        if bot_auth and self.global_limit:
            self._global.limit = self.global_limit
            self._global.refresh(now)
            if self._global.used >= self._global.limit:
                self.counts["limited_global"] += 1
                return self._limited(self._global.reset_at - now, "global", {})
            self._global.used += 1
        limit, per = self.rules.get(route, self.default_rule)
        window = self._buckets.setdefault((route, resource), _Window(limit, per))
        window.refresh(now)
        reset_after = window.reset_at - now
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Reset": f"{now_unix + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": self.bucket_hash(route),
            "X-RateLimit-Scope": "user",
        }
        if window.used >= limit:
            headers["X-RateLimit-Remaining"] = "0"
            self.counts["limited_user"] += 1
            return self._limited(reset_after, "user", headers)
        window.used += 1
        headers["X-RateLimit-Remaining"] = str(limit - window.used)
        self.counts["allowed"] += 1
        return Decision(True, headers=headers)

    def _take_fault(self, route: str) -> _Fault | None:
        for fault in self._faults:
            if fault.route is None or fault.route == route:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                self.counts["faults"] += 1
                return fault
        return None

    def _fault_decision(self, fault: _Fault, route: str) -> Decision:
        if fault.status != 429:
            return Decision(False, status=fault.status)
        headers = (
            {}
            if fault.scope != "user"
            else {"X-RateLimit-Bucket": self.bucket_hash(route)}
        )
        if fault.scope == "user":
            headers.update({"X-RateLimit-Limit": "1", "X-RateLimit-Remaining": "0"})
        return self._limited(fault.retry_after, fault.scope, headers)

    def _limited(
        self, retry_after: float, scope: str, headers: dict[str, str]
    ) -> Decision:
        headers = dict(headers)
        headers["X-RateLimit-Scope"] = scope
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        if scope == "global":
            headers["X-RateLimit-Global"] = "true"
        if scope == "user":
            headers.setdefault("X-RateLimit-Reset-After", f"{retry_after:.3f}")
        return Decision(
            False, status=429, headers=headers, retry_after=retry_after, scope=scope
        )

    def note_invalid(self, status: int, scope: str | None, now: float) -> None:
        """Count 401/403/429 (not ``shared``) answers over 10 minutes."""
        if status in (401, 403) or (status == 429 and scope != "shared"):
            self._invalid.append(now)
        while self._invalid and self._invalid[0] <= now - INVALID_WINDOW:
            self._invalid.popleft()

    def invalid_requests(self) -> int:
        """Invalid requests counted in the current 10-minute window."""
        return len(self._invalid)
