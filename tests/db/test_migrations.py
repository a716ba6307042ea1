"""Migrations: up/down/up, two migrators at once, a stale lock."""

from __future__ import annotations

import sys

import psycopg
import pytest
import trio

from vsb.db import migrate

ALL = ["0001_initial", "0002_identify_coordination"]


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename NOT LIKE 'yoyo%%' AND tablename NOT LIKE '\\_yoyo%%'"
        ).fetchall()
    return {row[0] for row in rows}


def test_up_down_up(empty_database_url: str) -> None:
    url = empty_database_url
    assert migrate.up(url) == ALL
    assert "mod_cases" in _tables(url) and "identify_turns" in _tables(url)
    assert [s.applied for s in migrate.status(url)] == [True, True]
    assert migrate.up(url) == []

    assert migrate.down(url) == ["0002_identify_coordination"]
    assert "identify_turns" not in _tables(url)
    assert migrate.down(url, steps=5) == ["0001_initial"]
    assert _tables(url) == set()
    assert [s.applied for s in migrate.status(url)] == [False, False]

    assert migrate.up(url) == ALL
    assert {"users", "audit_log", "gateway_sessions"} <= _tables(url)


_MIGRATOR = """
import sys
from vsb.db import migrate
print(",".join(migrate.up(sys.argv[1])))
"""


async def test_two_concurrent_migrators(empty_database_url: str) -> None:
    outputs: list[str] = []

    async def migrator() -> None:
        done = await trio.run_process(
            [sys.executable, "-c", _MIGRATOR, empty_database_url],
            capture_stdout=True,
        )
        outputs.append(done.stdout.decode().strip())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(migrator)
        nursery.start_soon(migrator)

    # One process applied everything; the other, waiting on the lock,
    # computed its list after and found nothing left.
    assert sorted(outputs) == ["", ",".join(ALL)]
    assert [s.applied for s in migrate.status(empty_database_url)] == [True, True]


def test_stale_lock_is_reported_with_the_fix(empty_database_url: str) -> None:
    url = empty_database_url
    migrate.up(url)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), 999999)"
        )

    with pytest.raises(migrate.MigrationLocked) as caught:
        migrate.down(url, lock_timeout_s=0.3)
    assert caught.value.pid == 999999
    assert "break-lock" in str(caught.value)
    assert [s.applied for s in migrate.status(url)] == [True, True]

    migrate.break_lock(url)
    assert migrate.down(url) == ["0002_identify_coordination"]


def test_migrations_dir_is_packaged() -> None:
    # The package's copy (vsb/migrations) is what an installed wheel uses.
    directory = migrate.migrations_dir()
    names = sorted(path.name for path in directory.glob("*.sql"))
    assert names == [
        "0001_initial.rollback.sql",
        "0001_initial.sql",
        "0002_identify_coordination.rollback.sql",
        "0002_identify_coordination.sql",
    ]
