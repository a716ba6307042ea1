"""``/ask``: the answer streams into the deferred reply, edits throttled."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
import trio
import trio.testing

from tests.ai.conftest import KEY
from vsb.commands.ask import Ask
from vsb.commands.context import CommandContext
from vsb.commands.errors import CommandError
from vsb.commands.response import Responder
from vsb.models import Interaction, decode_event
from vsb.rest import RestClient
from vsb.sandbox import Sandbox
from vsb.sandbox.groq import ASGI_API_BASE, GroqEmulator, Reply, StreamingASGITransport
from vsb.secret import Secret
from vsb.services.ai import GroqClient


async def run_ask(
    sb: Sandbox, rest: RestClient, command: Ask, question: str
) -> tuple[object, CommandContext]:
    ix = await sb.run_command("ask", {"question": question})
    interaction = decode_event("INTERACTION_CREATE", orjson.dumps(ix.payload))
    assert isinstance(interaction, Interaction)
    ctx = CommandContext(
        interaction=interaction,
        name="ask",
        responder=Responder(interaction, rest, received_at=trio.current_time()),
        options={"question": question},
    )
    await command.ask(ctx)
    return ix, ctx


@pytest.fixture
async def streaming_ai(
    emulator: GroqEmulator, nursery: trio.Nursery
) -> AsyncIterator[GroqClient]:
    transport = StreamingASGITransport(emulator.asgi_app, nursery)
    async with GroqClient(
        Secret(KEY), api_base=ASGI_API_BASE, transport=transport
    ) as ai:
        yield ai


async def test_answer_streams_into_the_reply_with_throttled_edits(
    sandbox: Sandbox,
    rest: RestClient,
    streaming_ai: GroqClient,
    emulator: GroqEmulator,
    autojump_clock: trio.testing.MockClock,
) -> None:
    words = [f"word{i} " for i in range(20)]
    emulator.script(Reply.stream(words, chunk_delay=0.25))  # 5 s of streaming
    command = Ask(streaming_ai, rest, edit_interval_s=1.2)

    ix, _ = await run_ask(sandbox, rest, command, "tell me twenty words")

    assert ix.callback_type == 5  # deferred at once
    edits = sandbox.actions.of("interaction.edit_original")
    contents = [e["data"]["content"] for e in edits]
    assert contents[-1] == "".join(words)  # the final text, no cursor
    assert all(c.endswith("\u258c") for c in contents[:-1])  # in progress
    # About one progress edit per 1.2 s of a 5 s stream, not one per token.
    assert 3 <= len(edits) - 1 <= 5
    times = [e.at for e in edits[:-1]]
    assert all(b - a >= 1.2 for a, b in zip(times, times[1:], strict=False))
    lengths = [len(c.removesuffix(" \u258c")) for c in contents]
    assert lengths == sorted(lengths)  # the answer grows in place


async def test_an_unavailable_ai_gives_a_clear_error(
    sandbox: Sandbox, rest: RestClient, ai: GroqClient, emulator: GroqEmulator
) -> None:
    emulator.script(Reply.status_code(503))

    with pytest.raises(CommandError, match="not available"):
        await run_ask(sandbox, rest, Ask(ai, rest), "hello?")


async def test_a_rate_limit_names_the_wait(
    sandbox: Sandbox, rest: RestClient, ai: GroqClient, emulator: GroqEmulator
) -> None:
    emulator.script(Reply.rate_limited(20.0))

    with pytest.raises(CommandError, match="20 s"):
        await run_ask(sandbox, rest, Ask(ai, rest), "hello?")


def test_ask_is_declared_with_a_required_question() -> None:
    ai = GroqClient(Secret(KEY), api_base=ASGI_API_BASE)
    (command,) = Ask(ai, rest=None).commands()  # type: ignore[arg-type]
    schema = command.to_json()
    assert schema["name"] == "ask"
    assert schema["options"][0]["name"] == "question"
    assert schema["options"][0]["required"] is True
