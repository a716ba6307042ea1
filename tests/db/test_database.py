"""The pool under trio: timeouts cancel on the server, health, errors."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
import trio

from vsb.services.database import (
    Database,
    DatabaseUnavailable,
    QueryError,
    QueryTimeout,
)


def _sleep(conn: psycopg.Connection[Any], seconds: float) -> None:
    conn.execute("SELECT pg_sleep(%s)", (seconds,))


def _sleeping_backends(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state = 'active' AND query LIKE 'SELECT pg_sleep%%'"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_deadline_cancels_the_query_on_the_server(
    db: Database, database_url: str
) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        await db.run_sync_timeout(0.3, _sleep, 60)
    assert time.monotonic() - started < 5
    assert _sleeping_backends(database_url) == 0
    stats = db.stats()
    assert (stats["timeouts"], stats["server_cancels"]) == (1, 1)
    # The thread ended (its limiter token comes back just after) and the
    # connection went back to the pool, still working.
    with trio.fail_after(5):
        while db.stats()["threads_busy"]:
            await trio.sleep(0.01)
    assert (await db.health()).ok


async def test_caller_cancellation_cancels_the_query_on_the_server(
    db: Database, database_url: str
) -> None:
    with trio.move_on_after(0.3) as scope:
        await db.run_sync(_sleep, 60)
    assert scope.cancelled_caught
    assert _sleeping_backends(database_url) == 0
    assert db.stats()["server_cancels"] == 1


async def test_statement_timeout_is_set_on_the_server(database_url: str) -> None:
    async with Database(database_url, min_size=1, statement_timeout_s=0.2) as db:
        value = await db.run_sync(
            lambda conn: conn.execute("SHOW statement_timeout").fetchone()
        )
        assert value == ("200ms",)
        with pytest.raises(QueryTimeout) as caught:
            await db.run_sync(_sleep, 5)
        assert isinstance(caught.value.__cause__, psycopg.errors.QueryCanceled)
        assert db.stats()["server_cancels"] == 0


async def test_rollback_on_error_and_sqlstate(db: Database) -> None:
    def write_then_fail(conn: psycopg.Connection[Any]) -> None:
        conn.execute("INSERT INTO command_sync (scope, hash) VALUES ('x', 'h')")
        conn.execute("INSERT INTO command_sync (scope, hash) VALUES ('x', 'h')")

    with pytest.raises(QueryError) as caught:
        await db.run_sync(write_then_fail)
    assert caught.value.sqlstate == "23505"
    rows = await db.run_sync(
        lambda conn: conn.execute("SELECT count(*) FROM command_sync").fetchone()
    )
    assert rows == (0,)


async def test_health_reports_pool_and_latency(db: Database) -> None:
    health = await db.health()
    assert health.ok and health.latency_ms is not None and health.latency_ms > 0
    assert health.size >= 1 and health.max_size == 8 and health.waiting == 0


async def test_health_when_the_server_is_down() -> None:
    # Nothing listens on port 1 of 127.0.0.1.
    db = Database(
        "postgresql://vsb:secret@127.0.0.1:1/vsb",
        min_size=0,
        pool_timeout_s=0.5,
        open_timeout_s=0.5,
    )
    async with db:
        health = await db.health(timeout_s=2.0)
        assert not health.ok and health.error == "DatabaseUnavailable"
        assert "secret" not in repr(health)
        with pytest.raises(DatabaseUnavailable) as caught:
            await db.run_sync(lambda conn: None)
        assert "secret" not in str(caught.value)


async def test_open_fails_clearly_when_the_server_is_down() -> None:
    db = Database("postgresql://127.0.0.1:1/vsb", min_size=1, open_timeout_s=0.5)
    with pytest.raises(DatabaseUnavailable):
        await db.open()


async def test_run_service_opens_and_closes(database_url: str) -> None:
    db = Database(database_url, min_size=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(db.run)
        assert db.stats()["open"]
        nursery.cancel_scope.cancel()
    assert not db.stats()["open"]


async def test_cancelling_a_call_queued_for_a_connection_is_prompt(
    db: Database,
) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(8):  # the fixture's max_size: every connection busy
            nursery.start_soon(db.run_sync, _sleep, 60)
        while db.stats()["threads_busy"] < 8:
            await trio.sleep(0.01)
        started = time.monotonic()
        with trio.move_on_after(0.2):
            await db.run_sync(_sleep, 0)
        # No thread was started for it, so there is nothing to wait for.
        assert time.monotonic() - started < 1.0
        nursery.cancel_scope.cancel()
    assert db.stats()["server_cancels"] == 8
