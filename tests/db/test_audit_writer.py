"""The audit batch writer: batching, flush on age, nothing lost on shutdown."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import psycopg
import trio

from vsb.db import audit
from vsb.db.audit import AuditEntry, AuditWriter, AuditWriterClosed
from vsb.services.database import Database


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    assert row is not None
    return int(row[0])


def _entry(i: int) -> AuditEntry:
    return AuditEntry(
        table_name="moderation",
        operation="decide",
        guild_id=1,
        actor_id=None,
        row_id=str(i),
        change={"i": i, "scores": {"toxic": 0.5}, "text": "a\tb\nc\\d 'é'"},
    )


async def test_batches_by_size_and_age(db: Database, database_url: str) -> None:
    writer = AuditWriter(db, batch_size=100, max_age_s=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for i in range(250):
            await writer.add(_entry(i))
        with trio.fail_after(10):
            await writer.flush()
        assert writer.written == 250
        # Two full batches and a third written when its first entry aged.
        assert writer.batches == 3
        nursery.cancel_scope.cancel()
    stored = await audit.recent(db, limit=1000)
    assert len(stored) == 250
    by_row = {e.row_id: e for e in stored}
    assert by_row["7"].change == _entry(7).change
    assert by_row["7"].at is not None


async def test_cancelled_mid_burst_loses_nothing(
    db: Database, database_url: str
) -> None:
    writer = AuditWriter(db, batch_size=200, max_age_s=0.01, queue_size=100_000)

    async def burst() -> None:
        i = 0
        while True:
            await writer.add(_entry(i))
            i += 1
            if i % 50 == 0:
                await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        nursery.start_soon(burst)
        # Cancel while batches are being written and entries are queued.
        while writer.batches < 3 or writer.accepted - writer.written < 500:
            await trio.sleep(0.001)
        nursery.cancel_scope.cancel()

    assert writer.accepted > 500
    assert writer.lost == 0
    assert _count(database_url) == writer.accepted == writer.written
    try:
        await writer.add(_entry(-1))
    except AuditWriterClosed:
        pass
    else:
        raise AssertionError("add after shutdown must fail")


_CHILD = """
import sys, trio, signal
from vsb.db.audit import AuditEntry, AuditWriter
from vsb.services.database import Database

async def main(url):
    async with Database(url, min_size=1, max_size=4) as db:
        writer = AuditWriter(db, batch_size=300, max_age_s=0.02, queue_size=100_000)
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                async def burst():
                    i = 0
                    while True:
                        await writer.add(AuditEntry(table_name="t", operation="o",
                                                    change={"i": i}))
                        i += 1
                        if i == 2000:
                            print("busy", flush=True)
                        if i % 100 == 0:
                            await trio.sleep(0)
                nursery.start_soon(burst)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break
        print("accepted", writer.accepted, "lost", writer.lost, flush=True)

trio.run(main, sys.argv[1])
"""


async def test_sigterm_during_a_burst_loses_nothing(database_url: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    async with trio.open_nursery() as nursery:
        proc: Any = await nursery.start(
            lambda task_status: trio.run_process(
                [sys.executable, "-c", _CHILD, database_url],
                stdout=-1,
                env=env,
                check=True,
                task_status=task_status,
            )
        )
        lines = _Lines(proc.stdout)
        with trio.fail_after(30):
            assert await lines.next() == "busy"
            proc.send_signal(signal.SIGTERM)
            final = (await lines.next()).split()
    assert final[0] == "accepted" and final[3] == "0"
    assert int(final[1]) >= 2000
    assert _count(database_url) == int(final[1])


class _Lines:
    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._buffer = b""

    async def next(self) -> str:
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some()
            if not chunk:
                raise EOFError(self._buffer)
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


async def test_export_streams_in_chunks(db: Database) -> None:
    await db.run_sync(audit.copy_entries, [_entry(i) for i in range(2500)])
    chunks: list[int] = []

    async def consume(chunk: list[audit.AuditRecord]) -> None:
        chunks.append(len(chunk))
        await trio.sleep(0)

    total = await audit.export(db, consume, guild_id=1, chunk_size=1000)
    assert total == 2500 and chunks == [1000, 1000, 500]


async def test_batch_in_flight_at_cancel_is_written_by_the_drain(
    db: Database, database_url: str
) -> None:
    # Hold a lock so the writer's COPY blocks on the server: the batch is
    # in flight when the writer is cancelled.
    locker = psycopg.connect(database_url)
    locker.execute("LOCK TABLE audit_log IN EXCLUSIVE MODE")
    writer = AuditWriter(db, batch_size=100, max_age_s=0.01)

    async def release_later() -> None:
        await trio.sleep(0.3)
        await trio.to_thread.run_sync(locker.rollback)

    try:
        async with trio.open_nursery() as outer:
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                for i in range(100):
                    await writer.add(_entry(i))
                while db.stats()["threads_busy"] == 0:
                    await trio.sleep(0.005)
                await trio.sleep(0.1)
                outer.start_soon(release_later)
                nursery.cancel_scope.cancel()
    finally:
        locker.close()

    assert db.stats()["server_cancels"] == 1
    assert writer.written == 100 and writer.lost == 0
    assert _count(database_url) == 100


async def test_a_failed_batch_is_kept_and_retried(db: Database) -> None:
    from vsb.services.database import DatabaseUnavailable

    class FailsOnce:
        def __init__(self) -> None:
            self.failed = False

        async def run_sync(self, fn: Any, *args: Any) -> Any:
            if not self.failed:
                self.failed = True
                raise DatabaseUnavailable("no database connection available")
            return await db.run_sync(fn, *args)

    writer = AuditWriter(FailsOnce(), batch_size=10, max_age_s=0.01)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for i in range(25):
            await writer.add(_entry(i))
        with trio.fail_after(10):
            await writer.flush()
        nursery.cancel_scope.cancel()
    assert writer.failures == 1 and writer.written == 25 and writer.lost == 0
    assert len(await audit.recent(db, limit=100)) == 25
