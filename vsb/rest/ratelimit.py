"""Discord's REST rate limits as a sans-I/O core: no trio, no httpx, no clock.

Theory of operation (Discord docs, Topics > Rate Limits,
https://discord.com/developers/docs/topics/rate-limits):

* A *route* is a method plus a path template. Requests are limited per
  *bucket* and *top-level resource* (channel id, guild id, webhook id +
  token). The bucket of a route is only known from the ``X-RateLimit-Bucket``
  header of a response; until then a route keys its own state. Several routes
  may share one bucket hash, and a route's hash may change.
* ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset-After`` (fractional
  seconds) are re-read on every response and drive waiting *before* sending,
  so that a 429 is the exception. A response without a bucket header means
  only the global limit applies to that route.
* The global limit (50 requests/s unless Discord raised it for the bot) is
  paced here with a sliding log over ``1 s + margin``, so latency jitter
  cannot push 51 requests into one of Discord's seconds. Per the same page,
  "Interaction endpoints are not bound to the bot's Global Rate Limit"
  (#global-rate-limit): requests made with an interaction token skip it.
* A 429 is handled by its scope: ``user`` blocks the bucket, ``global`` pauses
  every bot-token request, ``shared`` blocks that resource only and is not
  our fault. A 429 without a JSON body comes from Cloudflare: the IP is
  banned, so every request stops for minutes.
* Invalid requests (401, 403 and 429 other than ``shared``) are counted over a
  sliding 10 minutes (Discord bans the IP at 10,000); at ``invalid_limit``
  the core refuses every request until the count falls again.

How a driver uses it: call :meth:`RateLimiter.acquire` with ``now``. It
answers :class:`Ticket` (send now), :class:`Wait` (sleep until ``until``, or
until the bucket named by ``wake_key`` changes) or :class:`Refuse` (fail
with a typed error). Every ticket ends in exactly one call of
:meth:`RateLimiter.on_response` (which answers :class:`Verdict`: done, or
retry after a 429) or :meth:`RateLimiter.release` (no response came).

Invariant: a ticket holds its bucket object, never a key, so remapping a
route to another bucket hash while requests are queued or in flight cannot
lose or repeat one; queued requests simply resolve the new bucket the next
time they call :meth:`RateLimiter.acquire`.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

INVALID_WINDOW: Final = 600.0  # Discord counts invalid requests over 10 minutes
DISCORD_INVALID_LIMIT: Final = 10_000  # per INVALID_WINDOW, then a Cloudflare ban


class Scope(enum.StrEnum):
    """What a wait or a 429 is about (``X-RateLimit-Scope`` plus our own)."""

    USER = "user"  #: a bucket of ours (per bot)
    GLOBAL = "global"  #: the bot's global limit
    SHARED = "shared"  #: a resource shared with others; not our fault
    IP = "ip"  #: a Cloudflare ban of our address (429 without JSON)
    INVALID = "invalid"  #: our own invalid-request guard


@dataclass(frozen=True, slots=True)
class RouteKey:
    """A route: method and path template, e.g. ``POST /channels/{channel_id}``."""

    method: str
    template: str

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


@dataclass(eq=False)
class _Bucket:
    """Limit state of one bucket (or unmapped route) on one resource."""

    name: str  # bucket hash, or the route for a route not yet mapped
    limit: int | None = None  # None: not learned yet, one request at a time
    remaining: int = 0
    reset_at: float | None = None  # None: the window's end is not known yet
    epoch: int = 0  # window counter; answers from an older window are stale
    inflight: int = 0
    blocked_until: float = 0.0  # from a 429
    period: float = 1.0  # longest reset_after seen: a guess at the window

    def roll(self, now: float) -> None:
        """Open a new window once the known reset time has passed."""
        if self.reset_at is not None and now >= self.reset_at and self.limit:
            self.epoch += 1
            self.remaining = self.limit
            self.reset_at = None


@dataclass(frozen=True, slots=True)
class Ticket:
    """Permission to send one request now.

    Attributes:
        route: the route of the request.
        resource: its top-level resource key.
        uses_global: whether it counts toward the global limit.
        bucket: the bucket hash (or route) it was counted on, for logs.
    """

    route: RouteKey
    resource: str
    uses_global: bool
    bucket: str
    _state: _Bucket = field(repr=False, compare=False)
    _epoch: int = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Wait:
    """Do not send yet.

    Attributes:
        until: time to try again; None means when ``wake_key`` changes (an
            answer to a request in flight on that bucket).
        wake_key: the bucket to watch when ``until`` is None.
        scope: what is being waited for.
    """

    until: float | None
    wake_key: object
    scope: Scope


@dataclass(frozen=True, slots=True)
class Refuse:
    """Do not send at all; raise a typed error.

    Attributes:
        scope: why (``invalid`` guard, or the limit whose wait is too long).
        retry_after: seconds until sending could work again.
        reason: a sentence for the error message (no secrets).
    """

    scope: Scope
    retry_after: float
    reason: str


class Outcome(enum.Enum):
    """What the driver does with a response."""

    DONE = "done"  #: hand the response to the caller
    RETRY = "retry"  #: a 429: the request was not processed; acquire again


@dataclass(frozen=True, slots=True)
class Verdict:
    """The core's reading of one response.

    Attributes:
        outcome: done or retry.
        bucket: the bucket hash the answer carried (or the previous name).
        scope: for a 429, its scope.
        retry_after: for a 429, the seconds Discord asked for.
        wake_keys: buckets whose waiters should try again now.
        ip_blocked: the 429 was Cloudflare's (no JSON): log at ERROR.
        guard_tripped: this answer made the invalid-request guard refuse.
    """

    outcome: Outcome
    bucket: str | None
    scope: Scope | None = None
    retry_after: float = 0.0
    wake_keys: tuple[object, ...] = ()
    ip_blocked: bool = False
    guard_tripped: bool = False


class RateLimiter:
    """Bucket, global and invalid-request bookkeeping for one bot token.

    Args:
        global_limit: bot-token requests per second (Discord: 50 for most
            bots; larger bots get more from Discord support).
        global_margin: seconds added to the global window so that latency
            jitter cannot squeeze ``global_limit + 1`` requests into one of
            Discord's seconds.
        reset_margin: seconds waited past a bucket's reset, to absorb the
            millisecond rounding of ``X-RateLimit-Reset-After``.
        max_wait: longest wait accepted before refusing with a typed error.
        invalid_limit: invalid requests per 10 minutes at which every
            further request is refused (Discord bans at 10,000).
        ip_block_backoff: seconds to stop everything after a Cloudflare 429.
    """

    def __init__(
        self,
        *,
        global_limit: float = 50,
        global_margin: float = 0.05,
        reset_margin: float = 0.005,
        max_wait: float = 60.0,
        invalid_limit: int = 1_000,
        ip_block_backoff: float = 300.0,
    ) -> None:
        if global_limit <= 0:
            raise ValueError("global_limit must be positive")
        self.global_limit = global_limit
        self.max_wait = max_wait
        self.invalid_limit = invalid_limit
        self.ip_block_backoff = ip_block_backoff
        self._global_window = 1.0 + global_margin
        self._global_slots = max(1, math.floor(global_limit))
        self._reset_margin = reset_margin
        self._sent: deque[float] = deque()  # send times of bot-token requests
        self._global_until = 0.0
        self._ip_until = 0.0
        self._invalid: deque[float] = deque()
        self._guard_logged = False
        self._hashes: dict[RouteKey, str | None] = {}  # None: no bucket header
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    # -- asking to send -------------------------------------------------

    def acquire(
        self, route: RouteKey, resource: str, now: float, *, uses_global: bool = True
    ) -> Ticket | Wait | Refuse:
        """Ask to send one request of ``route`` on ``resource`` at ``now``.

        Args:
            route: method and path template.
            resource: top-level resource key (``channel:1``, ``guild:2``,
                ``webhook:3:<digest>``; ``""`` when the path has none).
            now: the current time in seconds (any monotonic clock).
            uses_global: False for interaction-token requests.
        """
        refused = self._guard(now)
        if refused is not None:
            return refused
        bucket = self._bucket_for(route, resource)
        waits = self._waits(bucket, now, uses_global)
        if waits:
            until, scope = max(waits, key=lambda w: w[0])
            if until - now > self.max_wait:
                reason = f"would wait {until - now:.1f} s on the {scope} limit"
                return Refuse(scope, until - now, reason)
            return Wait(until, bucket, scope)
        if bucket is not None and bucket.limit is None and bucket.inflight:
            # First request on an unknown bucket is still out: its answer
            # tells the limit; sending more now could overrun it.
            return Wait(None, bucket, Scope.USER)
        if bucket is not None and bucket.limit is not None and bucket.remaining <= 0:
            return Wait(None, bucket, Scope.USER)  # window end arrives with an answer
        return self._grant(route, resource, bucket, now, uses_global)

    def _waits(
        self, bucket: _Bucket | None, now: float, uses_global: bool
    ) -> list[tuple[float, Scope]]:
        waits: list[tuple[float, Scope]] = []
        if self._ip_until > now:
            waits.append((self._ip_until, Scope.IP))
        if uses_global:
            if self._global_until > now:
                waits.append((self._global_until, Scope.GLOBAL))
            self._forget_sent(now)
            if len(self._sent) >= self._global_slots:
                waits.append((self._sent[0] + self._global_window, Scope.GLOBAL))
        if bucket is not None:
            if bucket.blocked_until > now:
                waits.append((bucket.blocked_until, Scope.USER))
            bucket.roll(now)
            if bucket.limit is not None and bucket.remaining <= 0:
                if bucket.reset_at is not None:
                    waits.append((bucket.reset_at, Scope.USER))
        return waits

    def _grant(
        self,
        route: RouteKey,
        resource: str,
        bucket: _Bucket | None,
        now: float,
        uses_global: bool,
    ) -> Ticket:
        if uses_global:
            self._sent.append(now)
        if bucket is None:
            # No bucket header: only the global limit applies. The ticket
            # still needs a state to report back to, kept out of the map.
            bucket = _Bucket(name=str(route), limit=None)
        else:
            if bucket.limit is not None:
                bucket.remaining -= 1
            bucket.inflight += 1
        return Ticket(route, resource, uses_global, bucket.name, bucket, bucket.epoch)

    def _bucket_for(self, route: RouteKey, resource: str) -> _Bucket | None:
        if route in self._hashes and self._hashes[route] is None:
            return None  # no bucket header: only the global limit applies
        name = self._hashes.get(route) or str(route)
        bucket = self._buckets.get((name, resource))
        if bucket is None:
            bucket = self._claim(route, name, resource)
        return bucket

    def _claim(self, route: RouteKey, name: str, resource: str) -> _Bucket:
        """Create the state of (``name``, ``resource``) on first use.

        Requests sent on this resource before the route's hash was known live
        on a route-keyed state; that state *becomes* the bucket, so its
        in-flight requests stay counted.
        """
        bucket = None
        if name != str(route):
            bucket = self._buckets.pop((str(route), resource), None)
        if bucket is None:
            bucket = _Bucket(name)
        bucket.name = name
        if bucket.limit is None:
            # A bucket hash excludes the top-level resource (Discord docs,
            # header format), so a sibling on another resource has its limit.
            for (other, _), sibling in self._buckets.items():
                if other == name and sibling.limit is not None:
                    bucket.limit = sibling.limit
                    bucket.remaining = sibling.limit - bucket.inflight
                    break
        self._buckets[(name, resource)] = bucket
        return bucket

    # -- answers ----------------------------------------------------------

    def release(self, ticket: Ticket, now: float) -> tuple[object, ...]:
        """End a ticket that got no response (transport error, cancelled).

        The request may have reached Discord, so its slot stays used.

        Returns:
            wake keys: buckets whose waiters should try again.
        """
        state = ticket._state
        state.inflight = max(0, state.inflight - 1)
        if state.inflight == 0 and state.reset_at is None and state.remaining <= 0:
            # No answer will tell when this window ends; assume a full one.
            state.reset_at = now + state.period
        return (state,)

    def on_response(
        self,
        ticket: Ticket,
        status: int,
        headers: Mapping[str, str],
        body: Any,
        now: float,
    ) -> Verdict:
        """Learn from one response and say what to do with it.

        Args:
            ticket: the ticket the request was sent with.
            status: HTTP status.
            headers: response headers; lookups must be case-insensitive
                (``httpx.Headers``) or keys lower-case.
            body: the decoded JSON body, or None when it was not JSON.
            now: the time the response arrived.
        """
        state = ticket._state
        state.inflight = max(0, state.inflight - 1)
        wake: list[object] = [state]
        bucket_hash = _header(headers, "x-ratelimit-bucket")
        target = self._learn_bucket(ticket, bucket_hash, headers, now)
        if target is not None and target is not state:
            wake.append(target)
        tripped = self._count_invalid(status, headers, body, now)
        if status != 429:
            name = bucket_hash or state.name
            return Verdict(
                Outcome.DONE, name, wake_keys=tuple(wake), guard_tripped=tripped
            )
        return self._on_429(ticket, target or state, headers, body, now, wake, tripped)

    def _learn_bucket(
        self,
        ticket: Ticket,
        bucket_hash: str | None,
        headers: Mapping[str, str],
        now: float,
    ) -> _Bucket | None:
        route, resource = ticket.route, ticket.resource
        if bucket_hash is None:
            if route not in self._hashes:
                self._hashes[route] = None
                self._buckets.pop((str(route), resource), None)
            return None
        previous = self._hashes.get(route)
        self._hashes[route] = bucket_hash
        target = self._buckets.get((bucket_hash, resource))
        if target is None and previous not in (None, bucket_hash):
            # The hash changed: start fresh, counting the requests still out
            # on the old bucket against the new one.
            old = self._buckets.get((previous, resource))
            target = _Bucket(bucket_hash, remaining=-(old.inflight if old else 0))
            self._buckets[(bucket_hash, resource)] = target
        elif target is None:
            target = self._claim(route, bucket_hash, resource)
        elif previous is None:
            # Another route already uses this hash here: its route-keyed
            # state is orphaned; count what is still out on it.
            orphan = self._buckets.pop((str(route), resource), None)
            if orphan is not None and orphan is not target:
                target.remaining -= orphan.inflight
        self._read_headers(target, ticket, headers, now)
        return target

    def _read_headers(
        self, target: _Bucket, ticket: Ticket, headers: Mapping[str, str], now: float
    ) -> None:
        limit = _number(headers, "x-ratelimit-limit")
        remaining = _number(headers, "x-ratelimit-remaining")
        reset_after = _number(headers, "x-ratelimit-reset-after")
        if limit is None or remaining is None or reset_after is None:
            return
        fresh = target.limit is None
        stale = target is ticket._state and ticket._epoch != target.epoch
        if stale:
            return  # an answer from a window we already rolled past
        target.limit = int(limit)
        if fresh:
            target.remaining += int(remaining)
        else:
            target.remaining = min(target.remaining, int(remaining))
        target.reset_at = now + reset_after + self._reset_margin
        target.period = max(target.period, reset_after)

    def _on_429(
        self,
        ticket: Ticket,
        target: _Bucket,
        headers: Mapping[str, str],
        body: Any,
        now: float,
        wake: list[object],
        tripped: bool,
    ) -> Verdict:
        if not isinstance(body, dict):
            self._ip_until = now + self.ip_block_backoff
            return Verdict(
                Outcome.RETRY,
                target.name,
                Scope.IP,
                self.ip_block_backoff,
                tuple(wake),
                ip_blocked=True,
                guard_tripped=tripped,
            )
        retry_after = _retry_after(headers, body)
        scope = _scope_of(headers, body)
        if scope is Scope.GLOBAL:
            self._global_until = max(self._global_until, now + retry_after)
        else:
            state = target
            if self._hashes.get(ticket.route) is None:
                # No bucket header (a shared or fault answer): block exactly
                # this route on this resource; other routes keep going.
                state = self._route_block(ticket)
                wake.append(state)
            state.blocked_until = max(state.blocked_until, now + retry_after)
        return Verdict(
            Outcome.RETRY,
            target.name,
            scope,
            retry_after,
            tuple(wake),
            guard_tripped=tripped,
        )

    def _route_block(self, ticket: Ticket) -> _Bucket:
        # Remember the route as unmapped again so the block below applies to
        # its own state on this resource.
        self._hashes.pop(ticket.route, None)
        key = (str(ticket.route), ticket.resource)
        state = self._buckets.get(key)
        if state is None:
            state = _Bucket(str(ticket.route))
            self._buckets[key] = state
        return state

    # -- invalid requests and global state --------------------------------

    def _count_invalid(
        self, status: int, headers: Mapping[str, str], body: Any, now: float
    ) -> bool:
        if status in (401, 403):
            self._invalid.append(now)
        elif status == 429 and isinstance(body, dict):
            if _scope_of(headers, body) is not Scope.SHARED:
                self._invalid.append(now)
        elif status == 429:
            self._invalid.append(now)  # Cloudflare's answer counts too
        else:
            return False
        self._forget_invalid(now)
        if len(self._invalid) >= self.invalid_limit and not self._guard_logged:
            self._guard_logged = True
            return True
        return False

    def _guard(self, now: float) -> Refuse | None:
        self._forget_invalid(now)
        if len(self._invalid) < self.invalid_limit:
            self._guard_logged = False
            return None
        # The guard lifts once the oldest counted answers leave the window.
        excess = len(self._invalid) - self.invalid_limit
        lifts_at = self._invalid[excess] + INVALID_WINDOW
        reason = (
            f"{len(self._invalid)} invalid requests (401/403/429) in 10 minutes;"
            f" refusing until the count falls below {self.invalid_limit}"
        )
        return Refuse(Scope.INVALID, lifts_at - now, reason)

    def _forget_invalid(self, now: float) -> None:
        while self._invalid and self._invalid[0] + INVALID_WINDOW <= now:
            self._invalid.popleft()

    def _forget_sent(self, now: float) -> None:
        while self._sent and self._sent[0] + self._global_window <= now:
            self._sent.popleft()

    def invalid_count(self, now: float) -> int:
        """Invalid requests counted in the 10 minutes before ``now``."""
        self._forget_invalid(now)
        return len(self._invalid)

    def bucket_of(self, route: RouteKey) -> str | None:
        """The bucket hash learned for ``route`` (None: unknown or none)."""
        return self._hashes.get(route)

    def snapshot(self, now: float) -> dict[str, Any]:
        """Plain data for stats and /debug."""
        return {
            "buckets": len(self._buckets),
            "routes_mapped": sum(1 for h in self._hashes.values() if h is not None),
            "invalid_requests_10min": self.invalid_count(now),
            "global_paused_for": max(0.0, self._global_until - now),
            "ip_blocked_for": max(0.0, self._ip_until - now),
        }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value if value else None


def _number(headers: Mapping[str, str], name: str) -> float | None:
    value = _header(headers, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _retry_after(headers: Mapping[str, str], body: dict[str, Any]) -> float:
    # The body's retry_after has sub-second precision; Retry-After is rounded
    # up to whole seconds, so it is only the fallback (Discord docs,
    # "Exceeding A Rate Limit").
    value = body.get("retry_after")
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    header = _number(headers, "retry-after")
    return header if header is not None else 1.0


def _scope_of(headers: Mapping[str, str], body: dict[str, Any]) -> Scope:
    if (
        body.get("global") is True
        or (_header(headers, "x-ratelimit-global") or "").lower() == "true"
    ):
        return Scope.GLOBAL
    scope = (_header(headers, "x-ratelimit-scope") or "").lower()
    if scope == "shared":
        return Scope.SHARED
    if scope == "global":
        return Scope.GLOBAL
    return Scope.USER
