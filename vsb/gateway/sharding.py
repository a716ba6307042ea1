"""Many shards in one process: shard count, identify turns, session budget.

This module owns the start of a set of shards: ``GET /gateway/bot`` (through
an injected callable), the shard count, the daily session start budget
(``session_start_limit``), and IDENTIFY concurrency: shards identify in
buckets ``shard_id % max_concurrency``, one IDENTIFY per bucket per 5 seconds
("Gateway > Sharding" and "Session Start Limit" in Discord's docs). The
identify lock and the session store are pluggable so that several processes
can share them (the scale-out issue adds PostgreSQL-backed ones).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from vsb.gateway.errors import GatewayError, GatewayFatalError
from vsb.gateway.shard import DispatchCallback, IdentifyLock, SessionStore, Shard
from vsb.secret import Secret

log = logging.getLogger(__name__)

#: Seconds between two IDENTIFYs of one bucket.
IDENTIFY_INTERVAL = 5.0


class LocalIdentifyLock:
    """In-process identify turns and session start budget.

    Each bucket (``shard_id % max_concurrency``) grants one IDENTIFY per
    ``interval`` seconds. Each IDENTIFY spends one session start; when none
    remain, the next one waits for the budget's reset and says so in a log.
    """

    def __init__(self, *, interval: float = IDENTIFY_INTERVAL) -> None:
        self.interval = interval
        self.max_concurrency = 1
        self.total = 1000
        self.remaining = 1000
        self._reset_at = 0.0
        self._locks: dict[int, trio.Lock] = {}
        self._last: dict[int, float] = {}
        self.identifies = 0

    def configure(
        self, *, max_concurrency: int, total: int, remaining: int, reset_after: float
    ) -> None:
        """Take the values of ``GET /gateway/bot`` (``reset_after`` in seconds)."""
        self.max_concurrency = max(1, max_concurrency)
        self.total = total
        self.remaining = remaining
        self._reset_at = trio.current_time() + reset_after

    async def acquire(self, shard_id: int) -> None:
        """Return when ``shard_id`` may send IDENTIFY now; spend one start."""
        bucket = shard_id % self.max_concurrency
        lock = self._locks.setdefault(bucket, trio.Lock())
        async with lock:
            await self._spend_session_start(shard_id)
            wait = self._last.get(bucket, -self.interval) + self.interval
            await trio.sleep_until(wait)
            self._last[bucket] = trio.current_time()
            self.identifies += 1

    async def _spend_session_start(self, shard_id: int) -> None:
        if self.remaining <= 0:
            wait = max(0.0, self._reset_at - trio.current_time())
            log.warning(
                "gateway.session_start_limit",
                extra={"shard_id": shard_id, "retry_after": round(wait, 3)},
            )
            await trio.sleep(wait)
            self.remaining = self.total
            # Known limitation: the next reset is assumed a day later (Discord's
            # window); the exact time would need another GET /gateway/bot.
            self._reset_at = trio.current_time() + 86_400.0
        self.remaining -= 1


class ShardManager:
    """Runs this process's shards and routes requests to the right one.

    Args:
        token: the bot token.
        intents: the gateway intents bitfield.
        get_gateway_bot: returns the JSON of ``GET /gateway/bot`` (``url``,
            ``shards``, ``session_start_limit``).
        on_dispatch: ``async def (shard_id, event_type, event)``, called
            inline on the shard's task for every dispatch.
        shard_ids: the shards this process runs; all of ``shard_count`` if None.
        shard_count: total shards; Discord's recommendation if None.
        compress: ``zlib-stream`` (default), ``zstd-stream`` or ``none``.
        identify_lock: grants IDENTIFY turns; an in-process
            :class:`LocalIdentifyLock` if None.
        session_store: loads stored sessions at start and saves them on
            shutdown (the shards then close resumably).
        large_threshold: IDENTIFY's ``large_threshold``.
        presence: an initial presence for IDENTIFY.
        rng: randomness for jitter and backoff (seed it in tests).
    """

    def __init__(
        self,
        token: Secret,
        intents: int,
        *,
        get_gateway_bot: Callable[[], Awaitable[dict[str, Any]]],
        on_dispatch: DispatchCallback,
        shard_ids: Sequence[int] | None = None,
        shard_count: int | None = None,
        compress: str = "zlib-stream",
        identify_lock: IdentifyLock | None = None,
        session_store: SessionStore | None = None,
        large_threshold: int = 250,
        presence: dict[str, Any] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if shard_ids is not None and shard_count is None:
            raise ValueError("shard_ids needs shard_count")
        if shard_ids is not None and shard_count is not None:
            bad = [i for i in shard_ids if not 0 <= i < shard_count]
            if bad:
                raise ValueError(f"shard ids {bad} are outside 0..{shard_count - 1}")
        self._token = token
        self.intents = intents
        self._get_gateway_bot = get_gateway_bot
        self._on_dispatch = on_dispatch
        self._shard_ids = list(shard_ids) if shard_ids is not None else None
        self.shard_count = shard_count
        self.compress = compress
        self.identify_lock: IdentifyLock = identify_lock or LocalIdentifyLock()
        self._session_store = session_store
        self._large_threshold = large_threshold
        self._presence = presence
        self._rng = rng or random.Random()
        self.shards: dict[int, Shard] = {}
        self._stop_scope = trio.CancelScope()
        self._ended = trio.Event()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start every shard (in identify order) and run them until cancelled.

        Ready (``task_status.started()``) once every shard task has started;
        the shards then identify in their turns.

        Raises:
            GatewayFatalError: a shard was closed with a fatal code; the other
                shards are stopped.
        """
        info = await self._get_gateway_bot()
        count = self.shard_count or int(info.get("shards", 1))
        self.shard_count = count
        ids = self._shard_ids if self._shard_ids is not None else list(range(count))
        await self._respect_session_start_limit(info, len(ids))
        for shard_id in ids:
            self.shards[shard_id] = self._new_shard(shard_id, count, str(info["url"]))
        log.info(
            "gateway.shards_starting",
            extra={"shard_count": count, "shard_ids": ids},
        )
        try:
            with self._stop_scope:
                async with trio.open_nursery() as nursery:
                    for shard in self.shards.values():
                        await nursery.start(shard.run)
                    task_status.started()
        except BaseExceptionGroup as group:
            _raise_fatal(group)
            raise
        finally:
            self._ended.set()

    async def stop(self) -> None:
        """Stop every shard and return once they are closed.

        Each shard closes as it does when cancelled: with a session store,
        it saves its session and closes resumably. :meth:`run` then returns.
        """
        self._stop_scope.cancel()
        if self.shards:
            await self._ended.wait()

    def _new_shard(self, shard_id: int, count: int, url: str) -> Shard:
        return Shard(
            shard_id,
            count,
            token=self._token,
            intents=self.intents,
            gateway_url=url,
            on_dispatch=self._on_dispatch,
            identify_lock=self.identify_lock,
            compress=self.compress,
            session_store=self._session_store,
            large_threshold=self._large_threshold,
            presence=self._presence,
            rng=random.Random(self._rng.random()),
        )

    async def _respect_session_start_limit(
        self, info: dict[str, Any], to_start: int
    ) -> None:
        limit = info.get("session_start_limit") or {}
        total = int(limit.get("total", 1000))
        remaining = int(limit.get("remaining", total))
        reset_after = float(limit.get("reset_after", 0)) / 1000.0
        if remaining < to_start:
            # Never identify beyond the daily budget: wait for it to reset.
            log.warning(
                "gateway.session_start_limit",
                extra={
                    "remaining": remaining,
                    "shard_count": to_start,
                    "retry_after": reset_after,
                },
            )
            await trio.sleep(reset_after)
            remaining, reset_after = total, 86_400.0
        self.identify_lock.configure(
            max_concurrency=int(limit.get("max_concurrency", 1)),
            total=total,
            remaining=remaining,
            reset_after=reset_after,
        )

    # -- requests

    def shard_for_guild(self, guild_id: int) -> Shard:
        """The shard that receives ``guild_id``'s events.

        Raises:
            GatewayError: that shard does not run in this process.
        """
        count = self.shard_count or 1
        shard_id = (guild_id >> 22) % count
        try:
            return self.shards[shard_id]
        except KeyError:
            raise GatewayError(
                f"guild {guild_id} is on shard {shard_id}, not run by this process"
            ) from None

    async def request_guild_members(
        self, guild_id: int, *, timeout: float = 30.0, **options: Any
    ) -> list[Any]:
        """REQUEST_GUILD_MEMBERS on the guild's shard; all chunks, in order.

        ``options``: ``query``, ``limit``, ``user_ids``, ``presences``,
        ``nonce`` (at most 32 bytes).

        Raises:
            MemberRequestTimeout: the answer was incomplete after ``timeout``.
            ShardNotReady: the guild's shard is not connected.
        """
        shard = self.shard_for_guild(guild_id)
        return await shard.request_guild_members(guild_id, timeout=timeout, **options)

    async def update_presence(
        self,
        *,
        status: str = "online",
        activities: Sequence[dict[str, Any]] = (),
        afk: bool = False,
        since: int | None = None,
    ) -> None:
        """PRESENCE_UPDATE on every shard (kept for later IDENTIFYs too)."""
        for shard in self.shards.values():
            await shard.update_presence(
                status=status, activities=activities, afk=afk, since=since
            )

    def latency(self, shard_id: int) -> float | None:
        """Heartbeat round trip of ``shard_id`` in seconds (None before one)."""
        shard = self.shards.get(shard_id)
        return shard.latency if shard is not None else None

    def stats(self) -> dict[str, Any]:
        """Every shard's state and counters, as plain data."""
        return {
            "shard_count": self.shard_count,
            "shards": {sid: shard.stats() for sid, shard in self.shards.items()},
        }


def _raise_fatal(group: BaseExceptionGroup[Any]) -> None:
    """Re-raise a fatal close on its own, so the process stops with its message."""
    fatal, _ = group.split(GatewayFatalError)
    if fatal is None:
        return
    first: BaseException = fatal
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    raise first from None
