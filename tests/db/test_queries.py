"""The other query modules: settings, users, review, oauth, sync, sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio

from vsb.db import audit, command_sync, oauth, review, sessions, settings, users
from vsb.services.database import Database


async def test_settings_defaults_update_and_validation(db: Database) -> None:
    assert await settings.get(db, 5) == settings.GuildSettings(guild_id=5)
    updated = await settings.update(
        db, 5, actor_id=1, log_channel_id=9, exempt_role_ids=[1, 2], ai_enabled=False
    )
    assert (updated.log_channel_id, updated.exempt_role_ids) == (9, [1, 2])
    assert (await settings.get(db, 5)).ai_enabled is False
    with pytest.raises(settings.SettingsError):
        await settings.update(db, 5, review_threshold=0.99)
    with pytest.raises(settings.SettingsError):
        await settings.update(db, 5, colour="red")
    entry = (await audit.recent(db, guild_id=5))[0]
    assert entry.change == {
        "log_channel_id": [None, 9],
        "exempt_role_ids": [[], [1, 2]],
        "ai_enabled": [True, False],
    }


async def test_users_and_roles(db: Database) -> None:
    assert await users.get(db, 7) is None
    user = await users.upsert_verified(db, user_id=7, login="bob", guild_id=3)
    assert user.verified and user.login == "bob"
    await users.grant_role(db, 7, "moderator", granted_by=1)
    await users.grant_role(db, 8, "admin", granted_by=1)
    assert await users.roles_of(db, 7) == frozenset({"moderator"})
    assert await users.roles_of(db, 8) == frozenset({"admin"})
    assert await users.revoke_role(db, 7, "moderator", revoked_by=1)
    assert not await users.revoke_role(db, 7, "moderator", revoked_by=1)
    assert await users.count_verified(db) == 1


async def test_oauth_state_is_single_use_and_expires(db: Database) -> None:
    now = datetime.now(UTC)
    await oauth.store_state(db, "n1", expires_at=now + timedelta(minutes=10), user_id=1)
    await oauth.store_state(db, "n2", expires_at=now - timedelta(seconds=1))
    results: list[bool] = []

    async def consume() -> None:
        results.append(await oauth.consume_state(db, "n1"))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(consume)
    assert sorted(results) == [False] * 4 + [True]
    assert not await oauth.consume_state(db, "n2")
    assert not await oauth.consume_state(db, "unknown")
    assert await oauth.purge_expired(db, older_than=now) == 1


async def test_command_sync_and_sessions(db: Database) -> None:
    assert await command_sync.get_hash(db, "global") is None
    await command_sync.set_hash(db, "global", "a")
    await command_sync.set_hash(db, "global", "b")
    assert await command_sync.get_hash(db, "global") == "b"

    await sessions.save(db, 0, "sid", 42, "wss://resume.example")
    stored = await sessions.load(db, 0, max_age_s=60)
    assert stored is not None and (stored.session_id, stored.seq) == ("sid", 42)
    assert await sessions.load(db, 1) is None
    await db.run_sync(
        lambda conn: conn.execute(
            "UPDATE gateway_sessions SET updated_at = now() - interval '1 hour'"
        )
    )
    assert await sessions.load(db, 0, max_age_s=60) is None
    assert [s.shard_id for s in await sessions.load_all(db)] == [0]
    await sessions.save(db, 0, None)
    assert await sessions.load_all(db) == []


async def test_review_queue_first_decision_wins(db: Database) -> None:
    flagged = await review.add_flagged(
        db,
        guild_id=1,
        channel_id=2,
        message_id=3,
        author_id=4,
        content="bad",
        scores={"toxic": 0.9, "spam": 0.1},
        model="rules",
    )
    other = await review.add_flagged(
        db,
        guild_id=2,
        channel_id=2,
        message_id=5,
        author_id=4,
        content="",
        scores={"spam": 0.85},
        model="m",
    )
    assert flagged.max_score == 0.9
    assert [f.id for f in await review.pending(db, 1)] == [flagged.id]
    assert len(await review.pending(db)) == 2
    await review.set_review_message(db, flagged.id, 77)

    decisions: list[review.Decision | None] = []

    async def press(reviewer: int) -> None:
        decisions.append(
            await review.decide(
                db,
                flagged.id,
                reviewer_id=reviewer,
                decision="warn",
                case_action="warn",
                reason="review",
            )
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(press, 10)
        nursery.start_soon(press, 11)
    made = [d for d in decisions if d is not None]
    assert len(made) == 1 and made[0].case is not None
    assert made[0].flagged.case_id == made[0].case.id
    assert made[0].flagged.status == "actioned"
    assert made[0].flagged.review_message_id == 77

    dismissed = await review.decide(db, other.id, reviewer_id=10, decision="dismiss")
    assert dismissed is not None and dismissed.case is None
    assert dismissed.flagged.status == "dismissed"
    assert await review.pending(db) == []


async def test_gateway_session_store_adapter(db: Database) -> None:
    from vsb.gateway.protocol import Session

    store = sessions.DatabaseSessionStore(db, max_age_s=60)
    assert await store.load(3) is None
    await store.save(3, Session(session_id="abc", seq=9, resume_url="wss://r"))
    assert await store.load(3) == Session(session_id="abc", seq=9, resume_url="wss://r")
    await store.save(3, None)
    assert await store.load(3) is None
