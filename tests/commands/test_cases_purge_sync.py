"""``/warnings``, ``/case``, ``/purge``, ``/config``, sync and case 1 against the sandbox."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from vsb.commands import Command, CommandContext, CommandService
from vsb.db import audit, cases
from vsb.db import settings as guild_settings


@pytest.fixture
async def h(harness: Any) -> Any:
    await harness.start()
    return harness


async def test_warnings_and_case_view(h: Any) -> None:
    member = h.sb.default.member_id
    for reason in ("one", "two"):
        await h.command(
            "moderate", {"action": "warn", "target": member, "reason": reason}
        )
    ix = await h.command("warnings", {"user": member})
    text = h.text(ix)
    assert "#1" in text and "#2" in text and "two" in text
    ix = await h.command(
        "case",
        {"view": {"type": 1, "options": [{"name": "number", "type": 4, "value": 2}]}},
    )
    assert "Case #2 · warn" in h.text(ix)
    ix = await h.command(
        "case",
        {"view": {"type": 1, "options": [{"name": "number", "type": 4, "value": 9}]}},
    )
    assert "no case #9" in h.text(ix)


async def test_case_reason_edit_is_audited_and_logged(h: Any) -> None:
    member = h.sb.default.member_id
    await h.command("moderate", {"action": "warn", "target": member, "reason": "old"})
    options = [
        {"name": "number", "type": 4, "value": 1},
        {"name": "text", "type": 3, "value": "new reason"},
    ]
    ix = await h.command("case", {"reason": {"type": 1, "options": options}})
    assert "new reason" in h.text(ix)
    case = await cases.get_case(h.db, h.sb.default.guild_id, 1)
    assert case is not None and case.reason == "new reason"
    entries = await audit.recent(h.db, table_name="mod_cases")
    update = next(e for e in entries if e.operation == "update")
    assert update.change["reason"] == ["old", "new reason"]
    assert update.actor_id == h.sb.default.moderator_id
    logs = h.sb.actions.of("message.create", channel_id=h.sb.default.mod_log_id)
    assert len(logs) == 2


async def test_members_cannot_read_cases(h: Any) -> None:
    ix = await h.command(
        "warnings", {"user": h.sb.default.owner_id}, user_id=h.sb.default.member_id
    )
    assert "Moderate Members" in h.text(ix)


async def _post(h: Any, count: int, author: int | None = None) -> list[int]:
    ids = []
    for i in range(count):
        message = await h.sb.post_message(
            f"message {i}", author_id=author or h.sb.default.member_id
        )
        ids.append(message.id)
    await h.settle()
    return ids


async def test_purge_deletes_the_newest_messages(h: Any) -> None:
    ids = await _post(h, 5)
    ix = await h.command("purge", {"count": 3})
    bulk = h.sb.actions.last("message.bulk_delete")
    assert bulk is not None and sorted(bulk["message_ids"]) == sorted(ids[2:])
    assert "Deleted 3 messages" in h.text(ix)


async def test_purge_by_user_and_limits(h: Any) -> None:
    mine = await _post(h, 2, author=h.sb.default.owner_id)
    await _post(h, 2)
    ix = await h.command("purge", {"count": 10, "user": h.sb.default.owner_id})
    bulk = h.sb.actions.last("message.bulk_delete")
    assert bulk is not None and sorted(bulk["message_ids"]) == sorted(mine)
    assert "Only 2 recent messages" in h.text(ix)

    too_many = await h.command("purge", {"count": 101})
    assert "`count`: may be at most 100" in h.text(too_many)
    zero = await h.command("purge", {"count": 0})
    assert "at least 1" in h.text(zero)
    refused = await h.command("purge", {"count": 1}, user_id=h.sb.default.member_id)
    assert "Manage Messages" in h.text(refused)


@pytest.mark.parametrize(
    ("known", "expected"),
    [
        (1, "Only 1 recent message was known to me."),
        (2, "Only 2 recent messages were known to me."),
    ],
)
async def test_purge_says_how_many_it_knew(h: Any, known: int, expected: str) -> None:
    await _post(h, known)
    ix = await h.command("purge", {"count": 5})
    assert expected in h.text(ix)


async def test_purge_leaves_messages_older_than_14_days(
    db_autojump_clock: Any, h: Any
) -> None:
    old = await _post(h, 2)
    await trio.sleep(15 * 86_400)
    new = await _post(h, 2)
    ix = await h.command("purge", {"count": 10})
    bulk = h.sb.actions.last("message.bulk_delete")
    assert bulk is not None and sorted(bulk["message_ids"]) == sorted(new)
    assert all(h.sb.actions.last("message.delete", message_id=i) is None for i in old)
    assert "2 older than 14 days were left" in h.text(ix)


async def test_config_changes_settings(h: Any) -> None:
    options = [
        {"name": "auto", "type": 10, "value": 0.9},
        {"name": "review", "type": 10, "value": 0.5},
    ]
    ix = await h.command(
        "config",
        {"thresholds": {"type": 1, "options": options}},
        user_id=h.sb.default.owner_id,
    )
    assert "Saved." in h.text(ix)
    found = await guild_settings.get(h.db, h.sb.default.guild_id)
    assert (found.auto_threshold, found.review_threshold) == (0.9, 0.5)
    assert h.settings_changed == [h.sb.default.guild_id]
    bad = [
        {"name": "auto", "type": 10, "value": 0.5},
        {"name": "review", "type": 10, "value": 0.9},
    ]
    ix = await h.command(
        "config",
        {"thresholds": {"type": 1, "options": bad}},
        user_id=h.sb.default.owner_id,
    )
    assert "must not exceed" in h.text(ix)
    assert h.settings_changed == [h.sb.default.guild_id]  # a refused change
    ix = await h.command(
        "config", {"show": {"type": 1}}, user_id=h.sb.default.moderator_id
    )
    assert "Manage Guild" in h.text(ix)


async def test_config_thresholds_refusal_names_the_options(h: Any) -> None:
    crossed = [
        {"name": "auto", "type": 10, "value": 0.3},
        {"name": "review", "type": 10, "value": 0.8},
    ]
    ix = await h.command(
        "config",
        {"thresholds": {"type": 1, "options": crossed}},
        user_id=h.sb.default.owner_id,
    )
    text = h.text(ix)
    assert "`review` (0.80) must not exceed `auto` (0.30)" in text
    assert "_threshold" not in text
    assert h.answer(ix)["flags"] & 64
    found = await guild_settings.get(h.db, h.sb.default.guild_id)
    assert (found.auto_threshold, found.review_threshold) == (0.95, 0.80)
    assert h.settings_changed == []


async def test_sync_is_skipped_when_unchanged(harness: Any) -> None:
    service = await harness.start()
    overwrites = harness.sb.actions.of("commands.overwrite")
    assert len(overwrites) == 1 and overwrites[0]["scope"] == "guild"
    assert "moderate" in overwrites[0]["names"]

    again = CommandService(
        harness.registry,
        harness.rest,
        db=harness.db,
        guild_id=harness.sb.default.guild_id,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(again.run)
        nursery.cancel_scope.cancel()
    assert len(harness.sb.actions.of("commands.overwrite")) == 1

    async def ping(ctx: CommandContext) -> None:
        await ctx.respond("pong")

    harness.registry.add(Command(name="ping", description="Ping", handler=ping))
    changed = CommandService(
        harness.registry,
        harness.rest,
        db=harness.db,
        guild_id=harness.sb.default.guild_id,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(changed.run)
        nursery.cancel_scope.cancel()
    assert len(harness.sb.actions.of("commands.overwrite")) == 2
    assert service.application_id == harness.sb.application_id


async def test_case_1_against_the_sandbox(autojump_clock: Any, harness: Any) -> None:
    async def slow(ctx: CommandContext) -> None:
        await trio.sleep(3.4)  # the database call of the report
        await ctx.respond("finally")

    harness.registry.add(Command(name="slow", description="Slow", handler=slow))
    harness.service = None
    await harness.start(sync=False)
    ix = await harness.sb.run_command("slow")
    with trio.fail_after(10):
        await harness.sb.actions.wait_for(
            "interaction.edit_original", interaction_id=ix.id
        )
    callback = harness.sb.actions.last("interaction.callback", interaction_id=ix.id)
    assert callback["callback_type"] == 5 and callback["elapsed"] < 3.0
    edit = harness.sb.actions.last("interaction.edit_original", interaction_id=ix.id)
    assert edit["completed_deferral"] and edit["data"]["content"] == "finally"
    assert harness.sb.actions.of("interaction.late_callback") == []


async def test_late_callback_gets_10062_once_and_the_answer_reaches_the_channel(
    autojump_clock: Any, harness: Any
) -> None:
    async def slow(ctx: CommandContext) -> None:
        await trio.sleep(3.5)
        await ctx.respond("late but public")

    harness.registry.add(Command(name="slow", description="Slow", handler=slow))
    service = await harness.start(sync=False, defer_after=60.0)  # no deferral
    ix = await harness.sb.run_command("slow")
    with trio.fail_after(10):
        await harness.sb.actions.wait_for("message.create", channel_id=ix.channel_id)
    assert len(harness.sb.actions.of("interaction.late_callback")) == 1
    assert service.stats()["responses"]["unknown_interaction"] == 1
    posted = harness.sb.actions.last("message.create", channel_id=ix.channel_id)
    assert posted["content"].endswith("late but public")


async def test_no_token_in_the_logs(
    harness: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    await harness.start()
    # As vsb.log.configure_logging does: httpx logs full URLs (an interaction
    # token is in the callback's path) at INFO, so the app keeps it at WARNING.
    caplog.set_level(logging.WARNING, logger="httpx")
    caplog.set_level(logging.WARNING, logger="httpcore")
    with caplog.at_level(logging.DEBUG):
        ix = await harness.command(
            "moderate",
            {"action": "warn", "target": harness.sb.default.member_id, "reason": "x"},
        )
        await harness.command(
            "case",
            {
                "view": {
                    "type": 1,
                    "options": [{"name": "number", "type": 4, "value": 1}],
                }
            },
        )
    assert caplog.records
    assert ix.token not in caplog.text
    assert harness.sb.bot_token not in caplog.text


async def test_button_and_modal_through_the_sandbox(harness: Any) -> None:
    pressed: list[str] = []

    async def on_button(ctx: CommandContext) -> None:
        pressed.append(ctx.custom_id)
        await ctx.update_message("decided", components=[])

    async def on_form(ctx: CommandContext) -> None:
        await ctx.respond(f"reason is {ctx.options['reason']}")

    harness.registry.component("t:", on_button)
    harness.registry.modal("form:", on_form)
    await harness.start(sync=False)
    sb = harness.sb
    message = sb.state.add_message(sb.default.general_id, sb.bot_user.id, "pick one")
    ix = await sb.press_button(message.id, "t:approve:7")
    await harness.settle()
    assert pressed == ["t:approve:7"]
    assert ix.callback_type == 7
    assert sb.state.messages[message.id].content == "decided"

    form = await sb.submit_modal("form:1", {"reason": "spam"})
    await harness.settle()
    assert form.callback_type == 4 and form.ephemeral
    assert harness.answer(form)["content"] == "reason is spam"


async def test_case_2_against_the_sandbox(autojump_clock: Any, harness: Any) -> None:
    async def exact(ctx: CommandContext) -> None:
        await trio.sleep(2.0)  # ready the instant the automatic deferral is
        await ctx.respond("private answer", ephemeral=True)

    harness.registry.add(Command(name="exact", description="Exact", handler=exact))
    await harness.start(sync=False)
    ix = await harness.sb.run_command("exact")
    await harness.settle()
    callbacks = harness.sb.actions.of("interaction.callback", interaction_id=ix.id)
    assert len(callbacks) == 1
    assert callbacks[0]["ephemeral"]  # flag 64 whichever path won
    if callbacks[0]["callback_type"] == 5:
        edit = harness.sb.actions.last(
            "interaction.edit_original", interaction_id=ix.id
        )
        assert (
            edit["completed_deferral"] and edit["data"]["content"] == "private answer"
        )
    assert harness.sb.actions.of("interaction.late_callback") == []
