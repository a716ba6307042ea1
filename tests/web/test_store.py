"""DatabaseAuthStore against a real, migrated PostgreSQL."""

from __future__ import annotations

import time

import pytest

from vsb.db import cases, review, settings, users
from vsb.secret import Secret
from vsb.services.auth import DatabaseAuthStore, RecordError, TokenSigner
from vsb.services.database import Database

BIG = 2**62 + 7  # a snowflake past JavaScript's safe integers


async def test_state_nonce_is_single_use(db: Database) -> None:
    store = DatabaseAuthStore(db)
    signer = TokenSigner(Secret("k" * 40))
    _, claims = signer.issue_state(user_id=BIG, guild_id=5)
    await store.store_state(claims)
    assert await store.consume_state(claims.nonce) is True
    assert await store.consume_state(claims.nonce) is False
    assert await store.consume_state("never-stored") is False


async def test_expired_nonce_is_refused(db: Database) -> None:
    store = DatabaseAuthStore(db)
    signer = TokenSigner(Secret("k" * 40), clock=lambda: time.time() - 3600)
    _, claims = signer.issue_state(user_id=1, guild_id=5)
    await store.store_state(claims)
    assert await store.consume_state(claims.nonce) is False


async def test_verified_role_and_record(db: Database) -> None:
    store = DatabaseAuthStore(db)
    assert await store.verified_role(5) is None
    await settings.update(db, 5, verified_role_id=77)
    assert await store.verified_role(5) == 77

    assert await store.user(BIG) is None
    await store.record_verification(user_id=BIG, guild_id=5, login="alice", role_id=77)
    await users.grant_role(db, BIG, "moderator")
    user = await store.user(BIG)
    assert user is not None
    assert (user.user_id, user.login, user.verified) == (BIG, "alice", True)
    assert user.roles == frozenset({"moderator"})


async def test_record_failure_is_a_record_error(database_url: str) -> None:
    db = Database(database_url, min_size=0, max_size=1, open_timeout_s=5.0)
    # Never opened: every call fails as DatabaseUnavailable.
    with pytest.raises(RecordError):
        await DatabaseAuthStore(db).record_verification(
            user_id=1, guild_id=2, login="a", role_id=3
        )


async def test_cases_and_review_as_json(db: Database) -> None:
    store = DatabaseAuthStore(db)
    for reason in ("first", "second"):
        await cases.create_case(
            db, guild_id=5, action="warn", target_id=BIG, moderator_id=2, reason=reason
        )
    await review.add_flagged(
        db,
        guild_id=5,
        channel_id=6,
        message_id=7,
        author_id=BIG,
        content="text",
        scores={"toxicity": 0.9},
        model="rules",
    )
    rows = await store.cases(5, limit=10)
    assert [r["reason"] for r in rows] == ["second", "first"]
    assert rows[0]["target_id"] == str(BIG) and rows[0]["guild_id"] == "5"
    assert isinstance(rows[0]["created_at"], str)
    assert await store.cases(5, limit=1) == rows[:1]
    queue = await store.review_queue(None, limit=10)
    assert [(q["author_id"], q["status"]) for q in queue] == [(str(BIG), "pending")]
    assert await store.review_queue(99, limit=10) == []
