"""The moderation pipeline end to end: sandbox, database, Groq emulator."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import trio
import trio.testing

from tests.moderation.conftest import NO_CONTENT_INTENTS, Harness, HarnessFactory
from vsb.db import cases, review, settings
from vsb.models import Message
from vsb.moderation.decision import Verdict
from vsb.sandbox.groq import Reply


async def test_auto_band_deletes_records_a_case_and_logs(harness: Harness) -> None:
    msg = await harness.post("you are garbage toxic=0.97")

    assert harness.deleted_ids() == [msg.id]
    found = await cases.list_for_user(
        harness.db, msg.guild_id or 0, harness.sb.default.member_id
    )
    assert [(c.action, c.moderator_id) for c in found] == [
        ("delete", harness.sb.default.bot_id)
    ]
    assert "toxic 0.97" in found[0].reason
    (decision,) = await harness.decisions()
    assert decision.change["verdict"] == "delete"
    assert decision.change["scores"]["toxic"] == 0.97
    assert decision.change["model"] == "local-rules+llama-3.1-8b-instant"
    (post,) = harness.log_posts()
    assert post["embeds"][0]["title"] == "Case #1: automatic delete"


async def test_review_band_queues_and_posts_buttons(harness: Harness) -> None:
    msg = await harness.post("you are kind of rude toxic=0.85")

    assert harness.deleted_ids() == []
    (item,) = await review.pending(harness.db, msg.guild_id)
    assert (item.message_id, item.author_id) == (msg.id, msg.author.id)
    assert item.scores["toxic"] == 0.85
    assert item.model == "local-rules+llama-3.1-8b-instant"
    (post,) = harness.log_posts()
    buttons = post["components"][0]["components"]
    assert [b["custom_id"] for b in buttons] == [
        f"review:{choice}:{item.id}"
        for choice in ("delete", "warn", "mute", "ban", "dismiss")
    ]
    stored = await review.get_flagged(harness.db, item.id)
    assert stored is not None and stored.review_message_id == post["message_id"]
    assert [d.change["verdict"] for d in await harness.decisions()] == ["review"]


async def test_below_review_is_allowed_and_audited(harness: Harness) -> None:
    await harness.post("mildly spicy take toxic=0.5")

    assert harness.deleted_ids() == [] and harness.log_posts() == []
    (decision,) = await harness.decisions()
    assert decision.change["verdict"] == "allow"
    assert harness.service.stats()["allowed"] == 1


async def test_a_decisive_local_result_skips_the_ai(harness: Harness) -> None:
    users = [harness.sb.state.add_user(f"u{i}").id for i in range(6)]

    msg = await harness.post("hey everyone", mentions=users)

    assert harness.deleted_ids() == [msg.id]
    assert harness.emulator.requests == []
    (decision,) = await harness.decisions()
    assert decision.change["model"] == "local-rules"
    assert decision.change["reasons"] == ["mention_flood"]


async def test_local_and_ai_scores_merge(harness: Harness) -> None:
    # The invite rule says 0.85 spam (review); the AI adds 0.96 spam: delete.
    msg = await harness.post("join discord.gg/raid spam=0.96")

    assert harness.deleted_ids() == [msg.id]


async def test_edits_are_checked_again(harness: Harness) -> None:
    msg = await harness.post("hello friends")
    assert harness.deleted_ids() == []

    await harness.edit(msg.id, "hello idiots, you idiot")

    assert harness.deleted_ids() == [msg.id]
    decisions = await harness.decisions()
    assert [d.change["edited"] for d in decisions] == [False, True]


async def test_bots_and_the_bot_itself_are_skipped(harness: Harness) -> None:
    other_bot = harness.sb.state.add_user("otherbot", bot=True)
    harness.sb.state.add_member(harness.sb.default.guild_id, other_bot.id)

    await harness.post("toxic=0.99", author_id=other_bot.id)
    await harness.post("toxic=0.99", author_id=harness.sb.default.bot_id)

    assert harness.deleted_ids() == []
    assert await harness.decisions() == []
    assert harness.service.stats()["skipped"] == 2


async def test_exempt_roles_are_not_moderated(harness: Harness) -> None:
    sb = harness.sb
    await settings.update(
        harness.db, sb.default.guild_id, exempt_role_ids=[sb.default.verified_role_id]
    )
    trusted = sb.state.add_user("trusted")
    sb.state.add_member(sb.default.guild_id, trusted.id, [sb.default.verified_role_id])

    await harness.post("toxic=0.99 you idiot", author_id=trusted.id)

    assert harness.deleted_ids() == []
    assert harness.service.stats()["exempt"] == 1


async def test_moderators_are_exempt(make_harness: HarnessFactory) -> None:
    harness: Harness = await make_harness(is_moderator=lambda guild_id, user_id: True)

    await harness.post("you idiot")

    assert harness.deleted_ids() == []
    assert harness.service.stats()["exempt"] == 1


async def test_without_a_key_local_rules_still_protect(
    make_harness: HarnessFactory,
) -> None:
    harness: Harness = await make_harness(with_ai=False)

    spam = await harness.post("free nitro https://d1scord-gift.com/claim")
    await harness.post("toxic=0.99 but only the AI would know")

    assert harness.deleted_ids() == [spam.id]
    assert [d.change["model"] for d in await harness.decisions()] == [
        "local-rules",
        "local-rules",
    ]


async def test_empty_content_without_the_intent_is_unknown(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    harness: Harness = await make_harness(intents=NO_CONTENT_INTENTS)
    warning = [
        r
        for r in caplog.records
        if r.getMessage() == "moderation.message_content_intent_missing"
    ]
    assert len(warning) == 1 and warning[0].intent == "MESSAGE_CONTENT"  # type: ignore[attr-defined]

    await harness.post("")

    (decision,) = await harness.decisions()
    assert decision.change["verdict"] == "unknown"
    assert decision.change["unknown"] is True
    assert harness.emulator.requests == []  # nothing to send
    assert harness.service.stats()["unknown"] == 1


async def test_without_the_intent_content_free_rules_still_act(
    make_harness: HarnessFactory,
) -> None:
    harness: Harness = await make_harness(intents=NO_CONTENT_INTENTS)
    users = [harness.sb.state.add_user(f"u{i}").id for i in range(6)]

    msg = await harness.post("", mentions=users)

    assert harness.deleted_ids() == [msg.id]


async def test_empty_content_with_the_intent_is_clean(harness: Harness) -> None:
    await harness.post("")

    (decision,) = await harness.decisions()
    assert decision.change["verdict"] == "allow"


async def test_repeated_content_hits_the_ai_cache(harness: Harness) -> None:
    await harness.post("is this allowed here toxic=0.3")
    await harness.post("IS THIS ALLOWED HERE toxic=0.3")

    assert len(harness.emulator.requests) == 1
    assert harness.ai is not None and harness.ai.stats()["cache_hits"] == 1
    decisions = await harness.decisions()
    assert [d.change["cached"] for d in decisions] == [False, True]


async def test_ai_failures_fall_back_to_local_rules(harness: Harness) -> None:
    harness.emulator.script(Reply.malformed(), Reply.status_code(500))

    await harness.post("toxic=0.99 first")
    await harness.post("join discord.gg/abc toxic=0.99 second")

    assert harness.service.stats()["ai_failures"] == 2
    decisions = await harness.decisions()
    assert [d.change["model"] for d in decisions] == ["local-rules", "local-rules"]
    assert [d.change["verdict"] for d in decisions] == ["allow", "review"]


async def test_an_open_breaker_means_local_rules_only_until_it_closes(
    make_harness: HarnessFactory, mock_clock: trio.testing.MockClock
) -> None:
    harness: Harness = await make_harness(
        ai_options={"breaker_threshold": 2, "breaker_cooldown_s": 30.0}
    )
    harness.emulator.script(Reply.status_code(503), Reply.status_code(503))
    await harness.post("one")
    await harness.post("two")
    assert harness.ai is not None and not harness.ai.available

    await harness.post("three toxic=0.99")
    assert len(harness.emulator.requests) == 2
    assert harness.service.stats()["ai_unavailable"] == 1
    assert harness.deleted_ids() == []

    mock_clock.jump(30)
    msg = await harness.post("four toxic=0.99")
    assert harness.deleted_ids() == [msg.id]
    assert harness.ai.health()["ok"]


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Let the other tasks (and their database threads) run until true."""
    while not predicate():
        await trio.testing.wait_all_tasks_blocked()


async def test_a_full_ai_queue_means_local_rules_only(
    make_harness: HarnessFactory, mock_clock: trio.testing.MockClock
) -> None:
    harness: Harness = await make_harness(ai_queue_size=1, ai_workers=1)
    harness.emulator.pause()
    sb = harness.sb

    for n in range(5):
        stored = await sb.post_message(f"message number {n} toxic=0.99")
        event = harness.message_event(stored.id)
        await harness.router.dispatch(0, "MESSAGE_CREATE", event)
    # One message waits at Groq, one in the AI queue; three find it full.
    await wait_until(lambda: harness.service.stats()["allowed"] == 3)
    assert harness.service.stats()["ai_backpressure"] == 3
    assert harness.emulator.waiting == 1

    harness.emulator.resume()
    await harness.service.drain()
    stats = harness.service.stats()
    assert stats["ai_classified"] == 2
    assert len(harness.deleted_ids()) == 2


async def test_repeat_offenders_are_timed_out(harness: Harness) -> None:
    sb = harness.sb
    await settings.update(
        harness.db, sb.default.guild_id, escalate_after=2, escalate_timeout_s=600
    )

    await harness.post("you idiot")
    assert sb.actions.of("member.timeout") == []
    await harness.post("you idiot again")

    (timeout,) = sb.actions.of("member.timeout")
    assert timeout["user_id"] == sb.default.member_id
    assert "escalation" in (timeout.reason or "")
    found = await cases.list_for_user(
        harness.db, sb.default.guild_id, sb.default.member_id
    )
    assert sorted(c.action for c in found) == ["delete", "delete", "mute"]
    mute = next(c for c in found if c.action == "mute")
    assert mute.duration_s == 600 and mute.expires_at is not None
    assert harness.service.stats()["escalated"] == 1


async def _member_cases(harness: Harness, action: str) -> int:
    found = await cases.list_for_user(
        harness.db, harness.sb.default.guild_id, harness.sb.default.member_id
    )
    return sum(1 for c in found if c.action == action)


async def test_a_timed_out_member_is_not_timed_out_again(harness: Harness) -> None:
    sb = harness.sb
    await settings.update(
        harness.db, sb.default.guild_id, escalate_after=3, escalate_timeout_s=600
    )

    posted = [await harness.post(f"you idiot number {n}") for n in range(6)]

    assert sorted(harness.deleted_ids()) == sorted(m.id for m in posted)
    assert len(sb.actions.of("member.timeout")) == 1
    assert await _member_cases(harness, "delete") == 3
    assert await _member_cases(harness, "mute") == 1
    assert len(harness.log_posts()) == 4  # one embed per case
    stats = harness.service.stats()
    assert (stats["escalated"], stats["coalesced"], stats["deleted"]) == (1, 3, 6)
    decisions = await harness.decisions()
    assert [d.change["verdict"] for d in decisions] == ["delete"] * 6


async def test_a_burst_brings_one_timeout(harness: Harness) -> None:
    sb = harness.sb
    await settings.update(
        harness.db, sb.default.guild_id, escalate_after=3, escalate_timeout_s=600
    )
    ids = []
    for n in range(20):  # all queued before any is handled, as in a raid
        stored = await sb.post_message(f"you idiot {n}", author_id=sb.default.member_id)
        ids.append(stored.id)
        await harness.router.dispatch(
            0, "MESSAGE_CREATE", harness.message_event(ids[-1])
        )
    await harness.service.drain()

    assert sorted(harness.deleted_ids()) == sorted(ids)
    assert len(sb.actions.of("member.timeout")) == 1
    assert await _member_cases(harness, "mute") == 1
    # Cases opened before the timeout was decided (one per intake worker at most
    # beyond the threshold); none after.
    assert 3 <= await _member_cases(harness, "delete") <= 3 + 4


@pytest.mark.parametrize(("timeout_s", "cooldown_s"), [(600, 60), (30, 30)])
async def test_the_cooldown_ends_and_a_new_offence_escalates_again(
    make_harness: HarnessFactory,
    mock_clock: trio.testing.MockClock,
    timeout_s: int,
    cooldown_s: int,
) -> None:
    harness: Harness = await make_harness()
    sb = harness.sb
    await settings.update(
        harness.db, sb.default.guild_id, escalate_after=2, escalate_timeout_s=timeout_s
    )
    await harness.post("you idiot")
    await harness.post("you idiot again")
    assert len(sb.actions.of("member.timeout")) == 1

    mock_clock.jump(cooldown_s - 1)
    await harness.post("still an idiot")  # e.g. queued behind the burst
    assert len(sb.actions.of("member.timeout")) == 1

    mock_clock.jump(2)  # e.g. a moderator lifted the timeout: a new offence
    await harness.post("idiot once more")
    assert len(sb.actions.of("member.timeout")) == 2
    assert await _member_cases(harness, "mute") == 2
    assert await _member_cases(harness, "delete") == 3


async def test_a_refused_timeout_does_not_hold_back_cases(harness: Harness) -> None:
    sb = harness.sb
    guild = sb.state.guilds[sb.default.guild_id]
    guild.members[sb.default.member_id].roles.append(sb.default.admin_role_id)
    await settings.update(harness.db, sb.default.guild_id, escalate_after=2)

    for n in range(3):
        await harness.post(f"you idiot {n}")

    assert sb.actions.of("member.timeout") == []  # Discord refuses: an admin
    assert await _member_cases(harness, "delete") == 3
    stats = harness.service.stats()
    assert (stats["escalated"], stats["coalesced"], stats["action_failures"]) == (
        0,
        0,
        2,
    )


async def test_analyze_scores_without_acting(harness: Harness) -> None:
    stored = await harness.sb.post_message("you are rude toxic=0.85")
    event = harness.message_event(stored.id)
    assert isinstance(event, Message)

    result = await harness.service.analyze(event)

    assert result.verdict is Verdict.REVIEW
    assert result.classification.scores["toxic"] == 0.85
    assert harness.log_posts() == [] and await harness.decisions() == []
    text_only = await harness.service.classify("you idiot")
    assert text_only.scores["toxic"] == 0.97 and text_only.model == "local-rules"


# -- review buttons ---------------------------------------------------------------


async def flag(harness: Harness) -> tuple[Message, review.FlaggedMessage, int]:
    msg = await harness.post("borderline remark toxic=0.85")
    (item,) = await review.pending(harness.db, msg.guild_id)
    assert item.review_message_id is not None
    return msg, item, item.review_message_id


@pytest.mark.parametrize(
    ("choice", "case_action", "discord_action"),
    [
        ("delete", "delete", "message.delete"),
        ("warn", "warn", "dm.create"),
        ("mute", "mute", "member.timeout"),
        ("ban", "ban", "member.ban"),
        ("dismiss", None, None),
    ],
)
async def test_review_buttons_become_cases(
    harness: Harness, choice: str, case_action: str | None, discord_action: str | None
) -> None:
    sb = harness.sb
    msg, item, post_id = await flag(harness)

    ix = await harness.press(
        f"review:{choice}:{item.id}", post_id, sb.default.moderator_id
    )

    decided = await review.get_flagged(harness.db, item.id)
    assert decided is not None and decided.decision == choice
    assert decided.reviewer_id == sb.default.moderator_id
    assert decided.status == ("dismissed" if choice == "dismiss" else "actioned")
    found = await cases.list_for_user(harness.db, sb.default.guild_id, msg.author.id)
    assert [c.action for c in found] == ([case_action] if case_action else [])
    if case_action:
        assert found[0].moderator_id == sb.default.moderator_id
        assert decided.case_id == found[0].id
    if discord_action:
        assert sb.actions.of(discord_action)
    assert ix.callback_type == 7  # the review post updated in place
    assert ix.callback_data["components"] == []


async def test_a_second_press_does_not_decide_twice(harness: Harness) -> None:
    sb = harness.sb
    msg, item, post_id = await flag(harness)
    await harness.press(f"review:warn:{item.id}", post_id, sb.default.moderator_id)

    ix = await harness.press(f"review:ban:{item.id}", post_id, sb.default.owner_id)

    assert ix.ephemeral and "already decided" in ix.callback_data["content"]
    assert sb.actions.of("member.ban") == []
    found = await cases.list_for_user(harness.db, sb.default.guild_id, msg.author.id)
    assert [c.action for c in found] == ["warn"]


async def test_members_without_permission_cannot_decide(harness: Harness) -> None:
    sb = harness.sb
    _, item, post_id = await flag(harness)

    ix = await harness.press(f"review:ban:{item.id}", post_id, sb.default.member_id)

    assert ix.ephemeral and "lack the permission" in ix.callback_data["content"]
    still = await review.get_flagged(harness.db, item.id)
    assert still is not None and still.status == "pending"


async def test_an_unknown_review_button_is_refused(harness: Harness) -> None:
    sb = harness.sb
    _, item, post_id = await flag(harness)

    ix = await harness.press(
        f"review:explode:{item.id}", post_id, sb.default.moderator_id
    )

    assert ix.ephemeral
