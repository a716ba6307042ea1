"""PostgresIdentifyLock against a real PostgreSQL.

Two lock objects, each with its own connection, stand for two processes.
The turns are stamped with the server's clock, so these tests run on real
time with short intervals (a few tenths of a second).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
import pytest
import trio

from vsb.services.coordination import VSB_LOCK_CLASS, PostgresIdentifyLock

INTERVAL = 0.3
#: What stands between a stamp on the server and acquire() returning here.
MARGIN = 0.1


def _query(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


async def query(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    return await trio.to_thread.run_sync(_query, url, query, params)


async def holders(url: str, bucket: int) -> list[int]:
    """Backend pids holding the advisory lock of ``bucket`` in this database."""
    rows = await query(
        url,
        """
        SELECT pid FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND objsubid = 2
          AND database = (SELECT oid FROM pg_database
                          WHERE datname = current_database())
          AND classid::bigint = %s AND objid::bigint = %s
        """,
        (VSB_LOCK_CLASS, bucket),
    )
    return [row[0] for row in rows]


async def budget(url: str) -> tuple[int, datetime]:
    rows = await query(url, "SELECT remaining, reset_at FROM identify_budget")
    assert len(rows) == 1
    return rows[0][0], rows[0][1]


async def eventually(check: Callable[[], Any], timeout: float = 3.0) -> None:
    with trio.fail_after(timeout):
        while not await check():
            await trio.sleep(0.02)


@asynccontextmanager
async def open_locks(
    url: str,
    count: int,
    *,
    max_concurrency: int = 1,
    total: int = 1000,
    remaining: int = 1000,
    reset_after: float = 3600.0,
    **options: Any,
) -> AsyncIterator[list[PostgresIdentifyLock]]:
    options = {"interval": INTERVAL, "margin": MARGIN, "poll": 0.02, **options}
    locks = [PostgresIdentifyLock(url, **options) for _ in range(count)]
    for lock in locks:
        lock.configure(
            max_concurrency=max_concurrency,
            total=total,
            remaining=remaining,
            reset_after=reset_after,
        )
    try:
        yield locks
    finally:
        for lock in locks:
            with trio.CancelScope(shield=True):
                await lock.aclose()


async def test_one_identify_per_bucket_per_interval_across_processes(
    database_url: str,
) -> None:
    granted: list[float] = []

    async def identify(lock: PostgresIdentifyLock, shard_id: int) -> None:
        await lock.acquire(shard_id)
        granted.append(trio.current_time())

    async with open_locks(database_url, 2) as (a, b):
        with trio.fail_after(8):
            async with trio.open_nursery() as nursery:
                for shard_id, lock in enumerate([a, b, a, b]):
                    nursery.start_soon(identify, lock, shard_id)

    granted.sort()
    gaps = [later - earlier for earlier, later in zip(granted, granted[1:])]
    assert len(granted) == 4
    assert min(gaps) >= INTERVAL, gaps
    # Paced, not serialised by much more than the pacing.
    assert granted[-1] - granted[0] < 3 * (INTERVAL + MARGIN) + 1.5
    assert (a.identifies, b.identifies) == (2, 2)
    remaining, _ = await budget(database_url)
    assert remaining == 1000 - 4


async def test_buckets_do_not_wait_for_each_other(database_url: str) -> None:
    async with open_locks(
        database_url, 2, max_concurrency=4, interval=60.0, margin=0.0
    ) as (a, b):
        await a.acquire(0)
        async with trio.open_nursery() as nursery:
            # Bucket 0 is taken for a minute, holding its locks meanwhile.
            nursery.start_soon(a.acquire, 4)
            await eventually(lambda: _has_holder(database_url, 0))

            with trio.fail_after(3):
                async with trio.open_nursery() as others:
                    others.start_soon(a.acquire, 1)  # same process, bucket 1
                    others.start_soon(b.acquire, 2)  # other process, bucket 2
                    others.start_soon(b.acquire, 7)  # other process, bucket 3

            with trio.move_on_after(0.5) as waited:
                await b.acquire(8)  # bucket 0: still a minute to go
            assert waited.cancelled_caught
            nursery.cancel_scope.cancel()

    assert (a.identifies, b.identifies) == (2, 2)


async def _has_holder(url: str, bucket: int) -> bool:
    return bool(await holders(url, bucket))


async def test_session_budget_is_shared_and_a_spent_one_waits_for_reset(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vsb.services.coordination")
    async with open_locks(
        database_url, 2, total=5, remaining=2, reset_after=1.0, interval=0.0
    ) as (a, b):
        await a.acquire(0)
        assert (await budget(database_url))[0] == 1
        # b read the same GET /gateway/bot (2 left), but a spent one already.
        await b.acquire(1)
        remaining, reset_at = await budget(database_url)
        assert remaining == 0

        with trio.fail_after(5):
            await a.acquire(2)
        (after_reset,) = (await query(database_url, "SELECT clock_timestamp()"))[0]

    assert after_reset >= reset_at
    remaining, new_reset_at = await budget(database_url)
    assert remaining == 5 - 1  # a new window with the full total, one spent
    assert (new_reset_at - after_reset).total_seconds() > 86_000
    exhausted = [
        r
        for r in caplog.records
        if r.getMessage() == "gateway.session_budget_exhausted"
    ]
    assert exhausted and exhausted[0].shard_id == 2  # type: ignore[attr-defined]
    assert 0 < exhausted[0].retry_after <= 1.0  # type: ignore[attr-defined]


async def test_configure_keeps_the_lower_count_within_a_window(
    database_url: str,
) -> None:
    async with open_locks(database_url, 1, remaining=10) as (a,):
        await a.acquire(0)
        a.configure(max_concurrency=1, total=1000, remaining=50, reset_after=3600)
        await a.acquire(1)
        assert (await budget(database_url))[0] == 8
        a.configure(max_concurrency=1, total=1000, remaining=3, reset_after=3600)
        await a.acquire(2)
        assert (await budget(database_url))[0] == 2


@pytest.mark.parametrize("death", ["terminate_backend", "close_connection"])
async def test_a_dead_holder_releases_the_lock(database_url: str, death: str) -> None:
    async with (
        open_locks(database_url, 1, interval=60.0, margin=0.0) as (holder,),
        open_locks(database_url, 1, interval=INTERVAL, margin=0.0) as (other,),
    ):
        await holder.acquire(0)
        other_done = trio.Event()

        async def other_identifies() -> None:
            await other.acquire(1)
            other_done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(holder.acquire, 2)  # holds bucket 0 for a minute
            await eventually(lambda: _has_holder(database_url, 0))
            (pid,) = await holders(database_url, 0)
            nursery.start_soon(other_identifies)
            # Only the lock stops the other process: its interval has passed.
            await trio.sleep(INTERVAL + 0.3)
            assert not other_done.is_set()

            if death == "terminate_backend":
                await query(database_url, "SELECT pg_terminate_backend(%s)", (pid,))
            else:
                await holder.aclose()
            with trio.fail_after(3):
                await other_done.wait()
            nursery.cancel_scope.cancel()

    assert other.identifies == 1


async def test_cancelled_while_waiting_leaves_no_lock(database_url: str) -> None:
    async with (
        open_locks(database_url, 1, interval=60.0, margin=0.0) as (holder,),
        open_locks(database_url, 1, interval=INTERVAL, margin=0.0) as (other,),
    ):
        await holder.acquire(0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(holder.acquire, 1)  # waits a minute, holding it
            await eventually(lambda: _has_holder(database_url, 0))
            (pid,) = await holders(database_url, 0)

            with trio.move_on_after(0.3) as cancelled:
                await other.acquire(2)  # waits for the advisory lock
            assert cancelled.cancelled_caught
            assert await holders(database_url, 0) == [pid]

            nursery.cancel_scope.cancel()  # the holder, inside its turn wait

        # The cancelled holder unlocked on its live connection.
        assert await holders(database_url, 0) == []
        with trio.fail_after(3):
            await other.acquire(3)
        # The cancelled waiter left no (re-entrant) lock level behind either.
        assert await holders(database_url, 0) == []

    assert (holder.identifies, other.identifies) == (1, 1)


async def test_a_lost_connection_is_retried(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_locks(database_url, 1, interval=0.0, retry=0.05) as (lock,):
        await lock.acquire(0)
        (pid,) = (
            await query(
                database_url,
                "SELECT pid FROM pg_stat_activity"
                " WHERE application_name = 'vsb-identify-lock'"
                " AND datname = current_database()",
            )
        )[0]
        await query(database_url, "SELECT pg_terminate_backend(%s)", (pid,))

        with trio.fail_after(3):
            await lock.acquire(1)

    assert lock.identifies == 2
    assert lock.failures == 1
    failed = [
        r for r in caplog.records if r.getMessage() == "gateway.identify_lock_failed"
    ]
    assert [r.error for r in failed] == ["AdminShutdown"]  # type: ignore[attr-defined]
    assert all(database_url not in r.getMessage() for r in caplog.records)


async def test_no_database_keeps_retrying_until_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Port 1 on the loopback: nothing listens there.
    lock = PostgresIdentifyLock(
        "postgresql://postgres:hunter2@127.0.0.1:1/vsb", retry=0.05
    )
    lock.configure(max_concurrency=1, total=10, remaining=10, reset_after=60)
    with trio.move_on_after(0.5) as cancelled:
        await lock.acquire(0)
    await lock.aclose()

    assert cancelled.cancelled_caught
    assert lock.failures >= 2
    assert lock.identifies == 0
    assert all("hunter2" not in r.getMessage() for r in caplog.records)


async def test_a_turn_whose_connection_died_starts_over(database_url: str) -> None:
    # The holder loses its connection (and the lock) while waiting for its
    # turn; another process takes the bucket. The holder must not go on and
    # stamp a turn it no longer holds the lock for.
    granted: dict[str, float] = {}

    async def identify(name: str, lock: PostgresIdentifyLock, shard_id: int) -> None:
        await lock.acquire(shard_id)
        granted[name] = trio.current_time()

    async with open_locks(database_url, 2, interval=0.6, retry=0.05) as (holder, other):
        await holder.acquire(0)
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(identify, "holder", holder, 1)
                await eventually(lambda: _has_holder(database_url, 0))
                (pid,) = await holders(database_url, 0)
                await query(database_url, "SELECT pg_terminate_backend(%s)", (pid,))
                nursery.start_soon(identify, "other", other, 2)

    assert abs(granted["holder"] - granted["other"]) >= 0.6
    assert holder.failures == 1
