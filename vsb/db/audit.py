"""The audit log: entries, queries and the batching writer.

Every change the bot makes on behalf of someone (a case, a setting, a
verification, a review decision, an automatic moderation decision) leaves an
``audit_log`` row: which table, which operation, who did it, and the change
as JSONB.

Two ways in:

- :func:`insert` inside another transaction (``cases.create_case`` writes the
  case and its entry together, so both exist or neither does);
- :class:`AuditWriter` for high-volume entries (every moderation decision):
  entries are queued in memory and written in batches with ``COPY`` in one
  transaction, when the batch is full or its oldest entry is ``max_age_s``
  old. On shutdown (cancellation, e.g. SIGTERM) the writer drains its queue
  and writes what is left, shielded, before it returns: an entry whose
  :meth:`AuditWriter.add` returned is not lost while the database is up.

Large reads are streamed in chunks from a server-side cursor
(:func:`export`), never the whole table in memory.

Exceptions: :class:`AuditWriterClosed` from :meth:`AuditWriter.add` after
the writer stopped; database errors are those of
:mod:`vsb.services.database`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec
import orjson
import psycopg
import trio
from psycopg.types.json import Jsonb

from vsb.db._sql import fetch_all

if TYPE_CHECKING:
    from vsb.services.database import Database

log = logging.getLogger(__name__)

_COLUMNS: Final = "at, guild_id, table_name, operation, actor_id, row_id, change"
_COPY: Final = f"COPY audit_log ({_COLUMNS}) FROM STDIN"
_INSERT: Final = (
    f"INSERT INTO audit_log ({_COLUMNS}) "
    "VALUES (COALESCE(%s, now()), %s, %s, %s, %s, %s, %s)"
)
_SELECT: Final = f"SELECT id, {_COLUMNS} FROM audit_log"


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One change to record.

    Attributes:
        table_name: the table (or area) changed, e.g. ``mod_cases``.
        operation: what happened, e.g. ``insert``, ``update``, ``decide``.
        change: the change as JSON data (new values, scores, ...).
        actor_id: the Discord user who caused it; None for the bot itself.
        guild_id: the guild concerned, if any.
        row_id: the changed row's key as text, if any.
        at: when it happened; :meth:`AuditWriter.add` fills in "now".
    """

    table_name: str
    operation: str
    change: dict[str, Any] = {}
    actor_id: int | None = None
    guild_id: int | None = None
    row_id: str | None = None
    at: datetime | None = None


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A stored audit row."""

    id: int
    at: datetime
    guild_id: int | None
    table_name: str
    operation: str
    actor_id: int | None
    row_id: str | None
    change: dict[str, Any]


class AuditWriterClosed(Exception):
    """The writer has stopped and accepts no more entries."""


def _jsonb(change: dict[str, Any]) -> Jsonb:
    # orjson writes datetimes and large ints without a custom encoder.
    return Jsonb(change, dumps=lambda obj: orjson.dumps(obj).decode())


def _row(entry: AuditEntry) -> tuple[Any, ...]:
    return (
        entry.at,
        entry.guild_id,
        entry.table_name,
        entry.operation,
        entry.actor_id,
        entry.row_id,
        _jsonb(entry.change),
    )


def insert(conn: psycopg.Connection[Any], entry: AuditEntry) -> None:
    """Write one entry on ``conn`` (inside the caller's transaction)."""
    conn.execute(_INSERT, _row(entry))


def copy_entries(conn: psycopg.Connection[Any], entries: Iterable[AuditEntry]) -> int:
    """Write entries with ``COPY`` on ``conn``; return how many."""
    count = 0
    now = datetime.now(UTC)
    with conn.cursor() as cur, cur.copy(_COPY) as copy:
        for entry in entries:
            row = _row(entry)
            copy.write_row((row[0] or now, *row[1:]))
            count += 1
    return count


async def add(db: Database, entry: AuditEntry) -> None:
    """Write one entry now, in its own transaction (no batching)."""
    await db.run_sync(insert, entry)


async def recent(
    db: Database,
    *,
    guild_id: int | None = None,
    table_name: str | None = None,
    limit: int = 100,
) -> list[AuditRecord]:
    """The newest entries, optionally of one guild and/or table."""
    return await db.run_sync(
        fetch_all,
        AuditRecord,
        f"{_SELECT} WHERE (%(guild)s::bigint IS NULL OR guild_id = %(guild)s)"
        " AND (%(table)s::text IS NULL OR table_name = %(table)s)"
        " ORDER BY id DESC LIMIT %(limit)s",
        {"guild": guild_id, "table": table_name, "limit": limit},
    )


async def export(
    db: Database,
    consumer: Callable[[list[AuditRecord]], Awaitable[None]],
    *,
    guild_id: int | None = None,
    chunk_size: int = 1000,
    timeout_s: float = 3600.0,
) -> int:
    """Stream entries (oldest first) to ``consumer`` in chunks; return the count.

    Rows come from a server-side cursor in one transaction; each chunk is
    handed to ``consumer`` in the trio thread before the next is fetched, so
    memory holds one chunk at a time whatever the table's size.
    """

    def stream(conn: psycopg.Connection[Any]) -> int:
        total = 0
        with conn.cursor(
            "audit_export", row_factory=psycopg.rows.kwargs_row(AuditRecord)
        ) as cur:
            cur.execute(
                f"{_SELECT} WHERE (%(guild)s::bigint IS NULL OR guild_id = %(guild)s)"
                " ORDER BY id",
                {"guild": guild_id},
            )
            while chunk := cur.fetchmany(chunk_size):
                trio.from_thread.run(consumer, chunk)
                total += len(chunk)
        return total

    return await db.run_sync_timeout(timeout_s, stream)


class AuditWriter:
    """Batches audit entries and writes them with ``COPY``.

    Args:
        db: the database.
        batch_size: write when this many entries are waiting.
        max_age_s: write when the oldest waiting entry is this old.
        queue_size: entries buffered before :meth:`add` waits (back-pressure).
        drain_timeout_s: how long shutdown may spend writing what is left.

    Start with ``await nursery.start(writer.run)``; stop by cancelling it
    (before the database is closed).
    """

    def __init__(
        self,
        db: Database,
        *,
        batch_size: int = 500,
        max_age_s: float = 1.0,
        queue_size: int = 10_000,
        drain_timeout_s: float = 30.0,
    ) -> None:
        self._db = db
        self._batch_size = batch_size
        self._max_age_s = max_age_s
        self._drain_timeout_s = drain_timeout_s
        self._send, self._receive = trio.open_memory_channel[AuditEntry](queue_size)
        self._pending: list[AuditEntry] = []
        self._progress = trio.Event()
        self.accepted = 0
        self.written = 0
        self.batches = 0
        self.failures = 0
        self.lost = 0

    async def add(self, entry: AuditEntry) -> None:
        """Queue ``entry`` (stamped with the current time if it has none).

        Raises:
            AuditWriterClosed: the writer has stopped.
        """
        if entry.at is None:
            entry = msgspec.structs.replace(entry, at=datetime.now(UTC))
        try:
            await self._send.send(entry)
        except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            raise AuditWriterClosed("the audit writer has stopped") from exc
        self.accepted += 1

    async def flush(self) -> None:
        """Return once every entry accepted so far is written."""
        target = self.accepted
        while self.written + self.lost < target:
            await self._progress.wait()

    def stats(self) -> dict[str, int]:
        """Counters as plain data."""
        return {
            "accepted": self.accepted,
            "written": self.written,
            "batches": self.batches,
            "failures": self.failures,
            "lost": self.lost,
            "queued": self.accepted - self.written - self.lost,
        }

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Write batches until cancelled, then drain and write the rest."""
        task_status.started()
        try:
            while True:
                await self._collect()
                await self._write_pending()
        finally:
            with trio.CancelScope(shield=True):
                await self._drain()

    async def _collect(self) -> None:
        """Fill ``_pending`` until it is full or its first entry is old enough."""
        if not self._pending:
            self._pending.append(await self._receive.receive())
        deadline = trio.current_time() + self._max_age_s
        with trio.move_on_at(deadline):
            while len(self._pending) < self._batch_size:
                self._pending.append(await self._receive.receive())

    async def _write_pending(self) -> None:
        batch = list(self._pending)
        try:
            await self._db.run_sync(copy_entries, batch)
        except Exception as exc:
            # Keep the batch: the next round retries it (the queue meanwhile
            # fills and add() waits, which is the back-pressure we want).
            self.failures += 1
            log.error(
                "audit.write_failed", extra={"error": type(exc).__name__}, exc_info=True
            )
            await trio.sleep(min(self._max_age_s, 1.0))
            return
        del self._pending[: len(batch)]
        self._record_written(len(batch))

    def _record_written(self, count: int) -> None:
        self.written += count
        self.batches += 1
        self._progress.set()
        self._progress = trio.Event()

    async def _drain(self) -> None:
        self._send.close()
        while True:
            try:
                self._pending.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        if not self._pending:
            return
        count = len(self._pending)
        with trio.move_on_after(self._drain_timeout_s):
            try:
                await self._db.run_sync(copy_entries, self._pending)
            except Exception as exc:
                log.error("audit.drain_failed", extra={"error": type(exc).__name__})
            else:
                self._pending.clear()
                self._record_written(count)
                log.info("audit.drained", extra={"count": count})
                return
        self.lost += len(self._pending)
        log.error("audit.lost", extra={"count": len(self._pending)})
        self._progress.set()
