"""Identify coordination across processes through PostgreSQL.

Several processes (or Kubernetes pods) may run shards of one bot. Discord
allows one IDENTIFY per ``max_concurrency`` bucket (``shard_id %
max_concurrency``) every 5 seconds, counted over the whole bot, and a daily
budget of session starts (``session_start_limit``). :class:`PostgresIdentifyLock`
keeps both across processes, with nothing but the database they share
(tables ``identify_turns`` and ``identify_budget``, migration 0002).

Theory of operation. A turn for bucket ``b``:

1. inside the process, shards of one bucket queue on a trio lock (advisory
   locks are re-entrant within one database session, so two shards of one
   process would otherwise both "hold" the bucket);
2. take the session-level advisory lock ``(VSB_LOCK_CLASS, b)`` with
   ``pg_try_advisory_lock`` on this process's connection, polling from trio
   so a waiting shard can be cancelled (a thread blocked inside
   ``pg_advisory_lock`` could not be);
3. claim the turn in one transaction: if the bucket identified less than
   ``interval + margin`` ago (``identify_turns``, stamped with the server's
   clock so every process agrees on time), sleep and claim again; take one
   session start from the shared budget (``identify_budget``), or, when it
   is spent, sleep until it resets (saying so in the log) and claim again;
   stamp the turn;
4. unlock. Different buckets never wait for each other.

Every statement of a turn runs on the connection that took the lock: if
that connection is lost mid-turn, the turn starts over on a new one instead
of stamping without the lock. A process that dies while holding the lock
loses its connection, and PostgreSQL releases the lock with it, so a crash
never blocks other processes.

Exceptions: a lost or refused connection (``psycopg.OperationalError``,
``psycopg.InterfaceError``) is logged as ``gateway.identify_lock_failed`` and
retried with backoff inside :meth:`PostgresIdentifyLock.acquire` (the shard
keeps heartbeating meanwhile). Other database errors (for instance the
tables are missing because migrations were not applied) pass through.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any, Final

import psycopg
import trio

log = logging.getLogger(__name__)

#: First key of our advisory locks ("VSB" in ASCII), so other users of
#: advisory locks in the same database do not collide with ours.
VSB_LOCK_CLASS: Final = 0x565342
#: Discord: one IDENTIFY per bucket per 5 seconds ("Gateway > Sharding").
IDENTIFY_INTERVAL: Final = 5.0
#: Added to the interval. A turn is stamped before its IDENTIFY is sent, and
#: the time from stamp to Discord differs between processes (thread hand-off,
#: a busy event loop, the network); the margin keeps IDENTIFYs of different
#: processes ``interval`` apart as Discord sees them.
IDENTIFY_MARGIN: Final = 0.5
#: Discord's session start window; see the known limitation in _SPEND_START.
SESSION_START_WINDOW: Final = 86_400.0
#: Backoff after a failed connection: first delay and cap, seconds.
RETRY_FIRST: Final = 1.0
RETRY_CAP: Final = 30.0
CONNECT_TIMEOUT: Final = 10


class PostgresIdentifyLock:
    """An identify lock shared by every process that uses one database.

    Args:
        url: the PostgreSQL URL (one dedicated connection, opened lazily).
        interval: seconds between two IDENTIFYs of one bucket.
        margin: seconds added to ``interval`` (see :data:`IDENTIFY_MARGIN`).
        poll: seconds between two tries for a busy advisory lock.
        retry: first backoff after a connection failure, seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        interval: float = IDENTIFY_INTERVAL,
        margin: float = IDENTIFY_MARGIN,
        poll: float = 0.1,
        retry: float = RETRY_FIRST,
    ) -> None:
        self._url = url
        self._gap = interval + margin
        self._poll = poll
        self._retry = retry
        self._conn: psycopg.Connection[Any] | None = None
        # Invariant: one thread at a time uses the connection (libpq
        # connections are not shared between threads, and a statement of
        # one bucket must not land inside another bucket's transaction).
        self._conn_lock = trio.Lock()
        self._buckets: dict[int, trio.Lock] = {}
        # Buckets whose advisory lock this session holds; updated by the
        # thread that took or released it, so a cancellation cannot lose it.
        self._held: set[int] = set()
        self._max_concurrency = 1
        self._total = 1000
        self._reading: tuple[int, float] | None = None
        self.identifies = 0
        self.waited_s = 0.0
        self.failures = 0

    def configure(
        self, *, max_concurrency: int, total: int, remaining: int, reset_after: float
    ) -> None:
        """Take the values of ``GET /gateway/bot`` (``reset_after`` in seconds).

        The reading is merged into the shared budget at the next
        :meth:`acquire`: it replaces a window that has ended; within a window
        the lower count wins (another process may have spent starts that
        this reading did not see yet).
        """
        self._max_concurrency = max(1, max_concurrency)
        self._total = total
        self._reading = (remaining, reset_after)

    async def acquire(self, shard_id: int) -> None:
        """Return when ``shard_id`` may send IDENTIFY, its turn recorded.

        Connection failures are retried here (with backoff) until it
        succeeds or is cancelled.

        Raises:
            psycopg.Error: a database error other than a lost or refused
                connection (e.g. the tables of migration 0002 are missing).
        """
        bucket = shard_id % self._max_concurrency
        async with self._buckets.setdefault(bucket, trio.Lock()):
            attempt = 0
            while True:
                conn: psycopg.Connection[Any] | None = None
                try:
                    conn = await self._connection()
                    await self._turn(conn, shard_id, bucket)
                    return
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    attempt += 1
                    self.failures += 1
                    delay = min(RETRY_CAP, self._retry * 2 ** (attempt - 1))
                    # The error's text may name hosts; its type is enough.
                    log.warning(
                        "gateway.identify_lock_failed",
                        extra={
                            "shard_id": shard_id,
                            "error": type(exc).__name__,
                            "attempt": attempt,
                            "retry_after": delay,
                        },
                    )
                    if conn is not None:
                        await self._drop(conn)
                    await trio.sleep(delay)

    async def aclose(self) -> None:
        """Close the connection (which releases any lock it holds).

        A later :meth:`acquire` opens a new one.
        """
        async with self._conn_lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                self._held.clear()
                await trio.to_thread.run_sync(conn.close)

    def stats(self) -> dict[str, Any]:
        """Turns granted, seconds waited for turns and budget, failures."""
        return {
            "identifies": self.identifies,
            "waited_s": round(self.waited_s, 3),
            "failures": self.failures,
        }

    # -- one turn

    async def _turn(
        self, conn: psycopg.Connection[Any], shard_id: int, bucket: int
    ) -> None:
        reading = self._reading
        if reading is not None:
            remaining, reset_after = reading
            await self._run(
                conn,
                partial(
                    _execute,
                    _MERGE_BUDGET,
                    {"remaining": remaining, "reset_after": reset_after},
                ),
            )
            if self._reading is reading:
                self._reading = None
        try:
            while not await self._run(conn, partial(self._try_lock, bucket)):
                await trio.sleep(self._poll)
            claim = partial(self._claim, shard_id, bucket)
            while (wait := await self._run(conn, claim)) > 0:
                self.waited_s += wait
                await trio.sleep(wait)
        finally:
            if bucket in self._held:
                with trio.CancelScope(shield=True):
                    await self._unlock(conn, bucket)
        self.identifies += 1
        log.debug("gateway.identify_turn", extra={"shard_id": shard_id})

    def _try_lock(self, bucket: int, conn: psycopg.Connection[Any]) -> bool:
        row = _execute(_TRY_LOCK, (VSB_LOCK_CLASS, bucket), conn)
        got = bool(row and row[0])
        if got:
            self._held.add(bucket)
        return got

    def _claim(
        self, shard_id: int, bucket: int, conn: psycopg.Connection[Any]
    ) -> float:
        """Claim the turn; return 0, or the seconds to wait before trying again."""
        with conn.transaction():
            turn = _execute(_TURN_WAIT, {"bucket": bucket, "gap": self._gap}, conn)
            turn_wait = float(turn[0]) if turn else 0.0
            if turn_wait > 0:
                log.info(
                    "gateway.identify_wait",
                    extra={
                        "shard_id": shard_id,
                        "bucket": bucket,
                        "wait_s": round(turn_wait, 3),
                    },
                )
                return turn_wait
            params = {"total": self._total, "window": SESSION_START_WINDOW}
            if _execute(_SPEND_START, params, conn) is None:
                budget = _execute(_BUDGET_WAIT, None, conn)
                if budget is not None:
                    # Spent: wait for the reset (at least one poll, so a
                    # window that ends right now is not a busy loop).
                    wait = max(self._poll, float(budget[0]))
                    log.warning(
                        "gateway.session_budget_exhausted",
                        extra={"shard_id": shard_id, "retry_after": round(wait, 3)},
                    )
                    return wait
                # No budget row: nobody configured one; only pace the turns.
            _execute(_STAMP_TURN, {"bucket": bucket}, conn)
        return 0.0

    async def _unlock(self, conn: psycopg.Connection[Any], bucket: int) -> None:
        try:
            await self._run(conn, partial(_execute, _UNLOCK, (VSB_LOCK_CLASS, bucket)))
        except psycopg.Error:
            # The lock lives as long as the session: end the session.
            await self._drop(conn)
        finally:
            self._held.discard(bucket)

    # -- the connection

    async def _connection(self) -> psycopg.Connection[Any]:
        async with self._conn_lock:
            if self._conn is None or self._conn.closed:
                self._held.clear()
                self._conn = await trio.to_thread.run_sync(
                    partial(
                        psycopg.connect,
                        self._url,
                        autocommit=True,
                        connect_timeout=CONNECT_TIMEOUT,
                        application_name="vsb-identify-lock",
                    )
                )
            return self._conn

    async def _run(self, conn: psycopg.Connection[Any], fn: partial[Any]) -> Any:
        """Run ``fn(conn)`` in a thread, alone on the connection."""
        async with self._conn_lock:
            return await trio.to_thread.run_sync(fn, conn)

    async def _drop(self, conn: psycopg.Connection[Any]) -> None:
        async with self._conn_lock:
            if self._conn is conn:
                self._conn = None
                self._held.clear()
            await trio.to_thread.run_sync(conn.close)


def _execute(
    query: str, params: Any, conn: psycopg.Connection[Any]
) -> tuple[Any, ...] | None:
    cursor = conn.execute(query, params)
    return cursor.fetchone() if cursor.description else None


_TRY_LOCK: Final = "SELECT pg_try_advisory_lock(%s, %s)"
_UNLOCK: Final = "SELECT pg_advisory_unlock(%s, %s)"

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

_TURN_WAIT: Final = """
SELECT GREATEST(0, EXTRACT(EPOCH FROM (
    last_identify_at + make_interval(secs => %(gap)s) - clock_timestamp())))::float8
FROM identify_turns WHERE bucket = %(bucket)s
"""

# One start, atomically over every process and bucket; a window that has
# ended starts a new one with the full total.
# Known limitation: the new window is assumed to last 24 h (Discord's); the
# exact reset comes with the next GET /gateway/bot, i.e. the next start.
_SPEND_START: Final = """
WITH now AS (SELECT clock_timestamp() AS t)
UPDATE identify_budget AS b SET
    remaining = (CASE WHEN b.reset_at <= now.t THEN %(total)s
                      ELSE b.remaining END) - 1,
    reset_at = CASE WHEN b.reset_at <= now.t
                    THEN now.t + make_interval(secs => %(window)s)
                    ELSE b.reset_at END
FROM now
WHERE b.id
  AND (CASE WHEN b.reset_at <= now.t THEN %(total)s ELSE b.remaining END) > 0
RETURNING b.remaining
"""

_BUDGET_WAIT: Final = """
SELECT GREATEST(0, EXTRACT(EPOCH FROM (reset_at - clock_timestamp())))::float8
FROM identify_budget WHERE id
"""

_STAMP_TURN: Final = """
INSERT INTO identify_turns (bucket, last_identify_at)
VALUES (%(bucket)s, clock_timestamp())
ON CONFLICT (bucket) DO UPDATE SET last_identify_at = excluded.last_identify_at
"""
