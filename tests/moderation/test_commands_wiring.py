"""Review buttons and ``/ask`` through the real command framework."""

from __future__ import annotations

import orjson
import trio

from tests.moderation.conftest import Harness
from vsb.commands import review as review_commands
from vsb.commands.ask import Ask
from vsb.commands.registry import CommandRegistry
from vsb.commands.service import CommandService
from vsb.db import cases, review
from vsb.models import Interaction, decode_event
from vsb.sandbox.groq import Reply


async def build_service(harness: Harness) -> CommandService:
    registry = CommandRegistry()
    review_commands.register(registry, harness.service)
    assert harness.ai is not None
    registry.add_all(Ask(harness.ai, harness.rest).commands())
    return CommandService(
        registry,
        harness.rest,
        application_id=harness.sb.application_id,
        sync=False,
    )


def decoded(payload: dict[str, object]) -> Interaction:
    interaction = decode_event("INTERACTION_CREATE", orjson.dumps(payload))
    assert isinstance(interaction, Interaction)
    return interaction


async def test_a_review_button_through_the_command_service(harness: Harness) -> None:
    sb = harness.sb
    commands = await build_service(harness)
    msg = await harness.post("borderline remark toxic=0.85")
    (item,) = await review.pending(harness.db, msg.guild_id)
    assert item.review_message_id is not None

    ix = await sb.press_button(
        item.review_message_id,
        f"review:mute:{item.id}",
        user_id=sb.default.moderator_id,
    )
    await commands.handle(decoded(ix.payload), trio.current_time())

    (timeout,) = sb.actions.of("member.timeout")
    assert timeout["user_id"] == msg.author.id
    (case,) = await cases.list_for_user(harness.db, sb.default.guild_id, msg.author.id)
    assert case.action == "mute" and case.moderator_id == sb.default.moderator_id
    assert ix.callback_type == 7
    assert "chose **mute**" in ix.callback_data["embeds"][0]["description"]


async def test_ask_through_the_command_service(harness: Harness) -> None:
    sb = harness.sb
    commands = await build_service(harness)
    harness.emulator.script(Reply.stream(["Hello", " there"]))

    ix = await sb.run_command("ask", {"question": "say hello"})
    await commands.handle(decoded(ix.payload), trio.current_time())

    assert ix.callback_type == 5
    edits = sb.actions.of("interaction.edit_original")
    assert edits[-1]["data"]["content"] == "Hello there"
