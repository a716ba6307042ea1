"""Case numbers: gapless and unique per guild under concurrency, audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import trio

from vsb.db import audit, cases
from vsb.services.database import Database, QueryError


async def test_fifty_concurrent_cases_have_no_gap_and_no_duplicate(
    db: Database,
) -> None:
    made: list[cases.Case] = []

    async def one(i: int) -> None:
        made.append(
            await cases.create_case(
                db,
                guild_id=10,
                action="warn",
                target_id=1000 + i,
                moderator_id=1,
                reason=f"r{i}",
            )
        )

    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(one, i)
        # Another guild at the same time keeps its own numbering.
        nursery.start_soon(
            lambda: cases.create_case(
                db, guild_id=11, action="ban", target_id=5, moderator_id=1, reason=""
            )
        )

    assert sorted(c.number for c in made) == list(range(1, 51))
    assert (await cases.get_case(db, 11, 1)) is not None
    entries = await audit.recent(db, guild_id=10, table_name="mod_cases", limit=100)
    assert sorted(int(e.row_id or 0) for e in entries) == sorted(c.id for c in made)


async def test_rolled_back_case_gives_its_number_back(db: Database) -> None:
    await cases.create_case(
        db, guild_id=1, action="warn", target_id=2, moderator_id=3, reason="a"
    )

    def fail_after_insert(conn: psycopg.Connection[Any]) -> None:
        cases.insert_case(
            conn, guild_id=1, action="warn", target_id=2, moderator_id=3, reason="b"
        )
        conn.execute("SELECT 1/0")

    with pytest.raises(QueryError) as caught:
        await db.run_sync(fail_after_insert)
    assert caught.value.sqlstate == "22012"
    second = await cases.create_case(
        db, guild_id=1, action="warn", target_id=2, moderator_id=3, reason="c"
    )
    assert second.number == 2
    # Neither the case nor its audit entry of the failed transaction exist.
    assert len(await audit.recent(db, guild_id=1)) == 2


async def test_case_queries(db: Database) -> None:
    now = datetime.now(UTC)
    ban = await cases.create_case(
        db,
        guild_id=1,
        action="ban",
        target_id=7,
        moderator_id=3,
        reason="spam",
        expires_at=now - timedelta(seconds=1),
        duration_s=3600,
    )
    await cases.create_case(
        db, guild_id=1, action="warn", target_id=7, moderator_id=3, reason="w"
    )
    assert [c.action for c in await cases.list_for_user(db, 1, 7)] == ["warn", "ban"]
    assert [c.number for c in await cases.list_for_user(db, 1, 7, actions=["ban"])] == [
        1
    ]
    assert await cases.count_since(db, 1, 7, "warn", now - timedelta(minutes=1)) == 1

    assert [c.id for c in await cases.due_expirations(db, now)] == [ban.id]
    assert await cases.next_expiry(db) == ban.expires_at
    edited = await cases.update_reason(db, 1, 1, "spam links", actor_id=4)
    assert edited is not None and edited.reason == "spam links"
    assert await cases.update_reason(db, 1, 99, "x", actor_id=4) is None
    revoked = await cases.revoke(db, 1, 1, actor_id=4)
    assert revoked is not None and revoked.revoked
    assert await cases.revoke(db, 1, 1, actor_id=4) is None
    assert await cases.due_expirations(db, now) == []

    log = await audit.recent(db, guild_id=1)
    assert [e.operation for e in log[:2]] == ["revoke", "update"]
    assert log[1].change["reason"] == ["spam", "spam links"]


async def test_import_bans_with_copy_continues_the_numbering(db: Database) -> None:
    await cases.create_case(
        db, guild_id=1, action="warn", target_id=2, moderator_id=3, reason=""
    )
    count = await cases.import_bans(
        db, 1, 3, ((100 + i, f"list {i}") for i in range(500))
    )
    assert count == 500
    listed = await cases.list_for_guild(db, 1, limit=1000)
    assert [c.number for c in listed] == list(range(501, 0, -1))
    nxt = await cases.create_case(
        db, guild_id=1, action="warn", target_id=2, moderator_id=3, reason=""
    )
    assert nxt.number == 502
