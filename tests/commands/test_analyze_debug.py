""" "Analyze Message" and ``/debug`` against the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from vsb.commands.analyze import Analyze
from vsb.commands.debug import Debug
from vsb.moderation.classification import Classification


class FakeClassifier:
    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.seen: list[str] = []

    async def __call__(self, text: str) -> Classification:
        self.seen.append(text)
        return Classification(scores=self.scores, model="test-model", reasons=("caps",))


@pytest.mark.parametrize(
    ("score", "verdict"),
    [(0.99, "delete the message"), (0.85, "review queue"), (0.1, "allow it")],
)
async def test_analyze_message_shows_scores_and_verdict(
    harness: Any, score: float, verdict: str
) -> None:
    classify = FakeClassifier({"toxic": score, "spam": 0.05})
    harness.registry.add_all(Analyze(classify, harness.db).commands())
    await harness.start()
    message = await harness.sb.post_message("YOU ARE ALL TERRIBLE")
    ix = await harness.command("Analyze Message", kind=3, target_id=message.id)
    assert classify.seen == ["YOU ARE ALL TERRIBLE"]
    text = harness.text(ix)
    assert f"{score:.2f}" in text and "test-model" in text and verdict in text
    assert harness.answer(ix)["flags"] & 64
    assert harness.sb.actions.of("message.delete") == []  # a look, not an action


async def test_analyze_refuses_empty_messages(harness: Any) -> None:
    classify = FakeClassifier({})
    harness.registry.add_all(Analyze(classify, harness.db).commands())
    await harness.start()
    message = await harness.sb.post_message("   ")
    ix = await harness.command("Analyze Message", kind=3, target_id=message.id)
    assert "no text I can read" in harness.text(ix)
    assert classify.seen == []


async def test_debug_is_for_developers_and_holds_no_secret(harness: Any) -> None:
    debug = Debug(
        harness.registry,
        cache=harness.cache,
        db=harness.db,
        shard_latencies=lambda: {0: 0.042, 1: None},
    )
    harness.registry.add_all(debug.commands())
    await harness.start()
    refused = await harness.command("debug")  # the moderator is no developer
    assert "developers only" in harness.text(refused)

    ix = await harness.command("debug", user_id=harness.sb.default.owner_id)
    text = harness.text(ix)
    assert harness.answer(ix)["flags"] & 64
    for label in (
        "Gateway latency",
        "shard 0: 42 ms",
        "Guilds: 1",
        "Cached users",
        "Commands",
        "DB pool: size",
        "Memory RSS",
        "Uptime",
        "Version",
    ):
        assert label in text
    assert harness.sb.bot_token not in text
    assert "postgres" not in text.lower()
