"""Identify coordination across processes through PostgreSQL.

Several processes (or Kubernetes pods) may run shards of one bot. Discord
allows one IDENTIFY per ``max_concurrency`` bucket (``shard_id %
max_concurrency``) every 5 seconds, counted over the whole bot, and a daily
budget of session starts (``session_start_limit``). :class:`PostgresIdentifyLock`
keeps both across processes, with nothing but the database they share.

Theory of operation. A turn for bucket ``b``:

1. take the session-level advisory lock ``(VSB_LOCK_CLASS, b)`` with
   ``pg_try_advisory_lock`` on this process's own connection, polling from
   trio so a waiting shard can be cancelled (a thread blocked inside
   ``pg_advisory_lock`` could not);
2. under the lock, read when the bucket last identified (``identify_turns``,
   stamped with the server's clock so every process agrees on time) and the
   shared session-start budget (``identify_budget``);
3. sleep until 5 s have passed since that identify and, if the budget is
   spent, until it resets (saying so in the log);
4. stamp the turn, take one session start from the budget, unlock.

A process that dies while holding the lock loses its connection, and
PostgreSQL releases the lock with it, so a crash never blocks other shards.

Exceptions: database errors pass through as ``psycopg.Error``; the shard
driver treats a failed ``acquire`` like any connection failure and retries.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import psycopg
import trio

log = logging.getLogger(__name__)

#: First key of our advisory locks ("VSB" in ASCII), so other users of
#: advisory locks in the same database do not collide with ours.
VSB_LOCK_CLASS: Final = 0x565342
#: Discord: one IDENTIFY per bucket per 5 seconds ("Gateway > Sharding").
IDENTIFY_INTERVAL: Final = 5.0


class PostgresIdentifyLock:
    """An identify lock shared by every process that uses one database.

    Args:
        url: the PostgreSQL URL (a dedicated connection is opened lazily).
        interval: seconds between two IDENTIFYs of one bucket.
        poll: seconds between two tries for a busy advisory lock.
    """

    def __init__(
        self, url: str, *, interval: float = IDENTIFY_INTERVAL, poll: float = 0.1
    ) -> None:
        self._url = url
        self._interval = interval
        self._poll = poll
        self._conn: psycopg.Connection[Any] | None = None
        self._guard = trio.Lock()
        self._max_concurrency = 1
        self._reading: tuple[int, int, float] | None = None
        self.identifies = 0
        self.waited_s = 0.0

    def configure(
        self, *, max_concurrency: int, total: int, remaining: int, reset_after: float
    ) -> None:
        """Take the values of ``GET /gateway/bot`` (``reset_after`` in seconds)."""
        self._max_concurrency = max(1, max_concurrency)
        self._reading = (total, remaining, reset_after)

    async def acquire(self, shard_id: int) -> None:
        """Return when ``shard_id`` may send IDENTIFY, its turn recorded."""
        bucket = shard_id % self._max_concurrency
        # One process's shards take turns on its one connection.
        async with self._guard:
            await self._lock(bucket)
            try:
                await self._take_turn(shard_id, bucket)
            finally:
                with trio.CancelScope(shield=True):
                    await self._sql(
                        "SELECT pg_advisory_unlock(%s, %s)", (VSB_LOCK_CLASS, bucket)
                    )

    async def aclose(self) -> None:
        """Close the connection (which also releases any lock it holds)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await trio.to_thread.run_sync(conn.close)

    def stats(self) -> dict[str, Any]:
        return {"identifies": self.identifies, "waited_s": round(self.waited_s, 3)}

    async def _lock(self, bucket: int) -> None:
        while True:
            row = await self._sql(
                "SELECT pg_try_advisory_lock(%s, %s)", (VSB_LOCK_CLASS, bucket)
            )
            if row and row[0]:
                return
            await trio.sleep(self._poll)

    async def _take_turn(self, shard_id: int, bucket: int) -> None:
        if self._reading is not None:
            total, remaining, reset_after = self._reading
            self._reading = None
            await self._sql(
                _MERGE_BUDGET, {"remaining": remaining, "reset_after": reset_after}
            )
        row = await self._sql(
            _READ_TURN, {"bucket": bucket, "interval": self._interval}
        )
        assert row is not None
        turn_wait, budget_left, budget_wait = float(row[0]), row[1], float(row[2] or 0)
        if budget_left is not None and budget_left <= 0 and budget_wait > 0:
            log.warning(
                "gateway.session_budget_exhausted",
                extra={"shard_id": shard_id, "retry_after": round(budget_wait, 3)},
            )
            turn_wait = max(turn_wait, budget_wait)
        if turn_wait > 0:
            log.info(
                "gateway.identify_wait",
                extra={
                    "shard_id": shard_id,
                    "bucket": bucket,
                    "wait_s": round(turn_wait, 3),
                },
            )
            self.waited_s += turn_wait
            await trio.sleep(turn_wait)
        await self._sql(_STAMP_TURN, {"bucket": bucket})
        self.identifies += 1

    async def _sql(self, query: str, params: Any) -> tuple[Any, ...] | None:
        return await trio.to_thread.run_sync(self._execute, query, params)

    def _execute(self, query: str, params: Any) -> tuple[Any, ...] | None:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, autocommit=True)
        cursor = self._conn.execute(query, params)
        return cursor.fetchone() if cursor.description else None


# The budget row is shared: a fresh reading replaces a window that has ended,
# and within a window the lower count wins (another process may have spent
# starts that this reading did not see yet).
_MERGE_BUDGET: Final = """
INSERT INTO identify_budget (id, remaining, reset_at)
VALUES (true, %(remaining)s, clock_timestamp() + make_interval(secs => %(reset_after)s))
ON CONFLICT (id) DO UPDATE SET
    remaining = CASE WHEN identify_budget.reset_at <= clock_timestamp()
                     THEN excluded.remaining
                     ELSE LEAST(identify_budget.remaining, excluded.remaining) END,
    reset_at = CASE WHEN identify_budget.reset_at <= clock_timestamp()
                    THEN excluded.reset_at ELSE identify_budget.reset_at END
"""

_READ_TURN: Final = """
SELECT
    COALESCE((SELECT GREATEST(0, EXTRACT(EPOCH FROM (
        last_identify_at + make_interval(secs => %(interval)s) - clock_timestamp())))
        FROM identify_turns WHERE bucket = %(bucket)s), 0),
    (SELECT remaining FROM identify_budget WHERE id),
    (SELECT GREATEST(0, EXTRACT(EPOCH FROM (reset_at - clock_timestamp())))
        FROM identify_budget WHERE id)
"""

_STAMP_TURN: Final = """
WITH turn AS (
    INSERT INTO identify_turns (bucket, last_identify_at)
    VALUES (%(bucket)s, clock_timestamp())
    ON CONFLICT (bucket) DO UPDATE SET last_identify_at = excluded.last_identify_at
)
UPDATE identify_budget SET remaining = remaining - 1 WHERE id AND remaining > 0
"""
