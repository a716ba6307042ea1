"""The PostgreSQL connection pool, driven from trio.

This module owns :class:`Database`: a synchronous
``psycopg_pool.ConnectionPool`` (psycopg's async API runs on asyncio only)
reached through ``trio.to_thread.run_sync``. Every call takes a token from a
``trio.CapacityLimiter`` sized to the pool, so no more threads wait on the
pool than it has connections.

Theory of operation. A worker thread cannot be cancelled by trio, so two
guards keep a query from outliving its caller:

1. every connection runs with a server-side ``statement_timeout``;
2. :meth:`Database.run_sync` puts a trio deadline around the call. When the
   deadline passes, or the caller is cancelled (shutdown), the thread is
   abandoned, the running statement is cancelled *on the server* with
   ``conn.cancel_safe()``, and the caller waits (shielded, briefly) until the
   thread has rolled back and given its connection back to the pool.

So shutdown never hangs on a query, and a cancelled call leaves no
half-written transaction behind. If the transaction had already committed
when the cancel arrived, the call returns its result anyway (like a
non-abortable trio operation; a cancelled caller then sees ``Cancelled`` at
its next checkpoint), so the caller never mistakes written data for lost.

Exceptions::

    DatabaseError
     ├── DatabaseUnavailable   no connection could be had (server down,
     │                         pool timeout, pool not open)
     ├── QueryTimeout          statement_timeout or the call's deadline
     └── QueryError(sqlstate)  any other error PostgreSQL reported

``trio.Cancelled`` always passes through untouched. The URL (which may hold
a password) never appears in an exception message or a log field.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Concatenate, Final, ParamSpec, TypeVar, cast

import msgspec
import psycopg
import psycopg.errors
import psycopg_pool
import trio

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

#: How long a cancelled call waits for its thread to give the connection back.
_RELEASE_WAIT_S: Final = 5.0
#: Extra time the trio deadline allows beyond the server's statement_timeout,
#: so the server's own timeout normally fires first and reports cleanly.
_DEADLINE_MARGIN_S: Final = 2.0


class DatabaseError(Exception):
    """Base of this module's errors."""


class DatabaseUnavailable(DatabaseError):
    """No connection could be had: server down, pool timeout or pool closed."""


class QueryTimeout(DatabaseError):
    """The query ran past ``statement_timeout`` or its call's deadline."""


class QueryError(DatabaseError):
    """PostgreSQL refused a statement.

    Attributes:
        sqlstate: the five-character SQLSTATE code (e.g. ``23505`` for a
            unique violation), or None when the driver gave none.
    """

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class PoolHealth(msgspec.Struct, frozen=True):
    """The answer of :meth:`Database.health`, for ``/health`` and ``/debug``.

    Attributes:
        ok: whether ``SELECT 1`` answered.
        latency_ms: the round trip of ``SELECT 1`` (through the thread hop).
        size: connections the pool holds (busy and idle).
        idle: connections ready to use.
        waiting: callers waiting for a connection.
        max_size: the pool's upper bound.
        error: a short reason when not ok (never the URL).
    """

    ok: bool
    latency_ms: float | None
    size: int
    idle: int
    waiting: int
    max_size: int
    error: str | None = None


@dataclasses.dataclass
class DatabaseStats:
    """Counters of :class:`Database`; see :meth:`Database.stats`."""

    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    server_cancels: int = 0
    unavailable: int = 0


class _Call:
    """One call's state shared between the trio task and its worker thread.

    It is also the call's limiter (wrapping the database's), to learn whether
    trio got as far as starting the thread.
    """

    def __init__(
        self, token: trio.lowlevel.TrioToken, limiter: trio.CapacityLimiter
    ) -> None:
        self._token = token
        self.limiter = limiter
        self._lock = threading.Lock()
        self.conn: psycopg.Connection[Any] | None = None
        self.done = trio.Event()
        #: Whether a worker thread was started (a call cancelled while waiting
        #: for a limiter token never starts one).
        self.spawned = False
        #: Set by the thread when the transaction committed (with its value).
        self.committed = False
        self.value: Any = None

    def attach(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            self.conn = conn

    def detach(self) -> None:
        with self._lock:
            self.conn = None

    def finish(self) -> None:
        """Called by the thread when it has returned its connection."""
        try:
            self._token.run_sync_soon(self.done.set)
        except trio.RunFinishedError:
            pass

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        """Take the limiter's token; trio starts the thread right after."""
        await self.limiter.acquire_on_behalf_of(borrower)
        self.spawned = True

    def release_on_behalf_of(self, borrower: object) -> None:
        """Give the token back (trio calls this when the thread has ended)."""
        self.limiter.release_on_behalf_of(borrower)

    def cancel_on_server(self) -> bool:
        """Ask the server to cancel the running statement; True if one was sent."""
        with self._lock:
            conn = self.conn
        if conn is None:
            return False
        try:
            conn.cancel_safe(timeout=_RELEASE_WAIT_S)
        except psycopg.Error:
            return False
        return True


class Database:
    """A PostgreSQL connection pool used from trio.

    Args:
        url: a libpq URL or conninfo string (``postgresql://...``).
        min_size: connections kept open.
        max_size: connections at most; also the size of the thread limiter.
        max_lifetime_s: a connection is replaced after this age.
        max_idle_s: an idle connection above ``min_size`` is closed after this.
        pool_timeout_s: how long a call waits for a free connection.
        statement_timeout_s: the server-side ``statement_timeout`` of every
            connection.
        call_timeout_s: default trio deadline of :meth:`run_sync`; defaults to
            ``statement_timeout_s + pool_timeout_s`` plus a small margin.
        open_timeout_s: how long :meth:`open` waits for ``min_size``
            connections.
        check_connections: check each connection with an empty query when it
            leaves the pool (one more round trip per call), so connections
            broken by a server restart are replaced instead of failing a call.
        name: the pool's name in logs.

    Use ``await nursery.start(db.run)`` in the bot; tests may use
    ``await db.open()`` / ``await db.aclose()`` directly.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        max_lifetime_s: float = 3600.0,
        max_idle_s: float = 600.0,
        pool_timeout_s: float = 30.0,
        statement_timeout_s: float = 30.0,
        call_timeout_s: float | None = None,
        open_timeout_s: float = 30.0,
        check_connections: bool = True,
        name: str = "vsb",
    ) -> None:
        if max_size < 1 or min_size < 0 or min_size > max_size:
            raise ValueError("expected 0 <= min_size <= max_size and max_size >= 1")
        self._statement_timeout_ms = max(1, int(statement_timeout_s * 1000))
        self._call_timeout_s = (
            call_timeout_s
            if call_timeout_s is not None
            else statement_timeout_s + pool_timeout_s + _DEADLINE_MARGIN_S
        )
        self._open_timeout_s = open_timeout_s
        self._max_size = max_size
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            max_lifetime=max_lifetime_s,
            max_idle=max_idle_s,
            timeout=pool_timeout_s,
            open=False,
            configure=self._configure,
            check=(
                psycopg_pool.ConnectionPool.check_connection
                if check_connections
                else None
            ),
            name=name,
        )
        self._limiter = trio.CapacityLimiter(max_size)
        self._opened = False
        self.counters = DatabaseStats()

    # -- lifecycle -------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Open the pool, report started, and close it when cancelled."""
        await self.open()
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await self.aclose()

    async def open(self) -> None:
        """Open the pool in a worker thread and wait for ``min_size`` connections.

        Raises:
            DatabaseUnavailable: the server did not answer in time.
        """
        try:
            await trio.to_thread.run_sync(self._open_pool)
        except psycopg_pool.PoolTimeout as exc:
            # Stop the pool's reconnect workers; a pool cannot be reopened.
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._pool.close)
            raise DatabaseUnavailable("could not open the connection pool") from exc
        self._opened = True
        log.info("db.pool_opened", extra={"size": self._pool.get_stats()["pool_size"]})

    async def aclose(self) -> None:
        """Close the pool (waits for connections in use to come back)."""
        if not self._opened:
            return
        self._opened = False
        await trio.to_thread.run_sync(self._pool.close)
        log.info("db.pool_closed")

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with trio.CancelScope(shield=True):
            await self.aclose()

    # -- calls -----------------------------------------------------------------

    async def run_sync(
        self,
        fn: Callable[Concatenate[psycopg.Connection[Any], P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(conn, *args, **kwargs)`` in a worker thread, in a transaction.

        The transaction commits when ``fn`` returns and rolls back when it
        raises. The call's deadline is ``call_timeout_s``; use
        :meth:`run_sync_timeout` for another one.

        Raises:
            QueryTimeout, DatabaseUnavailable, QueryError: see the module.
        """
        return await self.run_sync_timeout(self._call_timeout_s, fn, *args, **kwargs)

    async def run_sync_timeout(
        self,
        timeout_s: float,
        fn: Callable[Concatenate[psycopg.Connection[Any], P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like :meth:`run_sync` with a deadline of ``timeout_s`` seconds."""
        call = _Call(trio.lowlevel.current_trio_token(), self._limiter)
        self.counters.calls += 1

        def work() -> T:
            return self._in_thread(call, lambda conn: fn(conn, *args, **kwargs))

        try:
            with trio.fail_after(timeout_s):
                return await trio.to_thread.run_sync(
                    work,
                    # trio accepts any object with the limiter methods
                    # (documented), though its annotation names the class.
                    limiter=cast(trio.CapacityLimiter, call),
                    abandon_on_cancel=True,
                )
        except (trio.TooSlowError, trio.Cancelled) as exc:
            await self._stop_call(call)
            if call.committed:
                # The transaction committed before the cancel reached it: the
                # caller must know (a Cancelled caller sees its cancellation
                # at its next checkpoint).
                return cast(T, call.value)
            if isinstance(exc, trio.Cancelled):
                raise
            self.counters.timeouts += 1
            log.warning("db.call_timeout", extra={"elapsed_ms": timeout_s * 1000})
            raise QueryTimeout("the query ran past its deadline") from None
        except psycopg.errors.QueryCanceled as exc:
            self.counters.timeouts += 1
            raise QueryTimeout("the query ran past statement_timeout") from exc
        except (psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
            self.counters.unavailable += 1
            raise DatabaseUnavailable("no database connection available") from exc
        except psycopg.OperationalError as exc:
            self.counters.unavailable += 1
            raise DatabaseUnavailable("the database connection failed") from exc
        except psycopg.Error as exc:
            self.counters.errors += 1
            raise QueryError(_describe(exc), exc.sqlstate) from exc

    def _in_thread(
        self, call: _Call, body: Callable[[psycopg.Connection[Any]], T]
    ) -> T:
        try:
            value = self._transaction(call, body)
            call.value, call.committed = value, True
            return value
        finally:
            call.finish()

    def _transaction(
        self, call: _Call, body: Callable[[psycopg.Connection[Any]], T]
    ) -> T:
        with self._pool.connection() as conn:
            call.attach(conn)
            try:
                with conn.transaction():
                    return body(conn)
            finally:
                call.detach()

    async def _stop_call(self, call: _Call) -> None:
        """Cancel an abandoned call on the server and wait for its thread."""
        if not call.spawned:
            return
        with trio.CancelScope(shield=True):
            sent = await trio.to_thread.run_sync(call.cancel_on_server)
            if sent:
                self.counters.server_cancels += 1
                log.info("db.query_cancelled")
            with trio.move_on_after(_RELEASE_WAIT_S):
                await call.done.wait()

    # -- health ----------------------------------------------------------------

    async def health(self, *, timeout_s: float = 2.0) -> PoolHealth:
        """``SELECT 1`` with its latency, and the pool's size/idle/waiting.

        Never raises (but passes ``trio.Cancelled`` through): a failure is
        ``ok=False`` with a short ``error``.
        """
        started = time.perf_counter()
        error: str | None = None
        try:
            await self.run_sync_timeout(timeout_s, _select_one)
        except DatabaseError as exc:
            error = type(exc).__name__
        latency = (time.perf_counter() - started) * 1000
        pool = self._pool.get_stats()
        return PoolHealth(
            ok=error is None,
            latency_ms=round(latency, 3) if error is None else None,
            size=pool.get("pool_size", 0),
            idle=pool.get("pool_available", 0),
            waiting=pool.get("requests_waiting", 0),
            max_size=self._max_size,
            error=error,
        )

    def stats(self) -> dict[str, Any]:
        """Pool gauges and call counters as plain data (no I/O)."""
        pool = self._pool.get_stats()
        return {
            "open": self._opened,
            "size": pool.get("pool_size", 0),
            "idle": pool.get("pool_available", 0),
            "waiting": pool.get("requests_waiting", 0),
            "max_size": self._max_size,
            "threads_busy": self._limiter.borrowed_tokens,
            **dataclasses.asdict(self.counters),
        }

    # -- pool callbacks (worker threads) --------------------------------------

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false)",
            (f"{self._statement_timeout_ms}ms",),
        )
        conn.commit()

    def _open_pool(self) -> None:
        self._pool.open(wait=True, timeout=self._open_timeout_s)


def _select_one(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT 1").fetchone()


def _describe(exc: psycopg.Error) -> str:
    """A short message from PostgreSQL's primary text (no parameters, no URL)."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return primary or type(exc).__name__
