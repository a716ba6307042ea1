"""The Groq client against the emulator: JSON, cache, failures, limits, SSE."""

from __future__ import annotations

import logging

import httpx
import pytest
import trio
import trio.testing

from tests.ai.conftest import KEY
from vsb.moderation.breaker import BreakerState
from vsb.sandbox.groq import GroqEmulator, Reply, open_groq_emulator
from vsb.secret import Secret
from vsb.services.ai import (
    DEFAULT_MODELS,
    AIRateLimited,
    AIRequestError,
    AIResponseError,
    AITimeout,
    AIUnavailable,
    GroqClient,
    PromptTooLarge,
    RateWindow,
    Tier,
    decode_scores,
    parse_duration,
    tier_models,
)


async def test_classify_decodes_scores_and_asks_for_json(
    ai: GroqClient, emulator: GroqEmulator
) -> None:
    result = await ai.classify("you are awful toxic=0.91 hate=0.4")

    assert result.scores == {"toxic": 0.91, "spam": 0.0, "nsfw": 0.0, "hate": 0.4}
    assert result.model == DEFAULT_MODELS[Tier.FAST]
    assert not result.cached
    sent = emulator.requests[0]
    assert sent.authorized
    assert sent.model == "llama-3.1-8b-instant"
    assert sent.response_format == {"type": "json_object"}
    assert sent.messages[-1] == {
        "role": "user",
        "content": "you are awful toxic=0.91 hate=0.4",
    }


async def test_variants_of_one_text_hit_the_cache(
    ai: GroqClient, emulator: GroqEmulator
) -> None:
    first = await ai.classify("Buy NOW spam=0.9")
    second = await ai.classify("buy\u200b now  spam=0.9")

    assert second.cached and not first.cached
    assert second.scores == first.scores
    assert len(emulator.requests) == 1
    assert ai.stats()["cache_hits"] == 1


async def test_cache_entries_expire(
    ai: GroqClient, emulator: GroqEmulator, autojump_clock: trio.testing.MockClock
) -> None:
    await ai.classify("hello there")
    await trio.sleep(601)
    again = await ai.classify("hello there")

    assert not again.cached
    assert len(emulator.requests) == 2


@pytest.mark.parametrize(
    "reply",
    [
        Reply.malformed("Sure! It looks fine to me."),
        Reply.malformed('{"toxic": 0.2, "spam": 0.1}'),  # categories missing
        Reply.malformed('{"toxic": 1.7, "spam": 0, "nsfw": 0, "hate": 0}'),
        Reply.malformed('["toxic", 0.9]'),
    ],
)
async def test_a_malformed_answer_is_one_logged_failure(
    ai: GroqClient,
    emulator: GroqEmulator,
    reply: Reply,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.script(reply)

    with pytest.raises(AIResponseError):
        await ai.classify("anything")
    fine = await ai.classify("anything else toxic=0.3")

    assert fine.scores["toxic"] == 0.3
    assert ai.stats()["malformed"] == 1
    assert ai.breaker.failures == 0  # the success reset the count
    logged = [r for r in caplog.records if r.getMessage() == "ai.malformed_answer"]
    assert len(logged) == 1


async def test_a_short_429_is_waited_out_and_retried(
    ai: GroqClient, emulator: GroqEmulator, autojump_clock: trio.testing.MockClock
) -> None:
    emulator.script(Reply.rate_limited(2.0))
    start = trio.current_time()

    result = await ai.classify("hi toxic=0.2")

    assert result.scores["toxic"] == 0.2
    assert trio.current_time() - start >= 2.0
    assert len(emulator.requests) == 2
    assert ai.stats()["rate_limited"] == 1
    assert ai.breaker.state is BreakerState.CLOSED


async def test_a_long_429_fails_fast_and_holds_later_calls_back(
    ai: GroqClient, emulator: GroqEmulator, autojump_clock: trio.testing.MockClock
) -> None:
    emulator.script(Reply.rate_limited(60.0))

    with pytest.raises(AIRateLimited) as caught:
        await ai.classify("first")
    assert caught.value.retry_after == 60.0
    with pytest.raises(AIRateLimited):
        await ai.classify("second")  # still inside the window: no request
    assert len(emulator.requests) == 1

    await trio.sleep(61)
    assert (await ai.classify("third toxic=0.1")).scores["toxic"] == 0.1


async def test_ratelimit_headers_delay_the_next_call(
    ai: GroqClient, emulator: GroqEmulator, autojump_clock: trio.testing.MockClock
) -> None:
    emulator.rate_headers["x-ratelimit-remaining-requests"] = "0"
    emulator.rate_headers["x-ratelimit-reset-requests"] = "3.5s"
    await ai.classify("one")
    emulator.rate_headers["x-ratelimit-remaining-requests"] = "100"
    start = trio.current_time()

    await ai.classify("two")

    assert trio.current_time() - start == pytest.approx(3.5)


async def test_a_slow_answer_times_out(
    ai: GroqClient, emulator: GroqEmulator, autojump_clock: trio.testing.MockClock
) -> None:
    emulator.script(Reply.slow(30.0))
    start = trio.current_time()

    with pytest.raises(AITimeout):
        await ai.classify("slow")

    assert trio.current_time() - start == pytest.approx(10.0)
    assert ai.stats()["timeouts"] == 1
    assert ai.stats()["latency_count"] == 0  # no answer, no latency


async def test_a_slow_answer_within_the_timeout_is_fine(
    ai: GroqClient, emulator: GroqEmulator, autojump_clock: trio.testing.MockClock
) -> None:
    emulator.script(Reply.slow(4.0, {"toxic": 0.5, "spam": 0, "nsfw": 0, "hate": 0}))

    assert (await ai.classify("slow but fine")).scores["toxic"] == 0.5
    # bot_ai_request_duration_seconds reads these.
    stats = ai.stats()
    assert stats["latency_count"] == 1
    assert stats["latency_sum_s"] == pytest.approx(4.0, abs=0.01)


async def test_breaker_opens_after_repeated_errors_then_probes_and_closes(
    ai: GroqClient, emulator: GroqEmulator, autojump_clock: trio.testing.MockClock
) -> None:
    emulator.script(*[Reply.status_code(503)] * 3)
    for n in range(3):
        with pytest.raises(AIRequestError):
            await ai.classify(f"message {n}")
    assert ai.breaker.state is BreakerState.OPEN
    assert not ai.available
    assert ai.health() == {"ok": False, "breaker": "open"}

    with pytest.raises(AIUnavailable):
        await ai.classify("while open")
    assert len(emulator.requests) == 3  # no call while open

    await trio.sleep(30)
    assert ai.available
    result = await ai.classify("probe toxic=0.2")  # the half-open probe

    assert result.scores["toxic"] == 0.2
    assert ai.breaker.state is BreakerState.CLOSED
    assert ai.stats()["breaker"]["times_opened"] == 1


async def test_a_failed_probe_opens_the_breaker_again(
    ai: GroqClient, emulator: GroqEmulator, autojump_clock: trio.testing.MockClock
) -> None:
    emulator.script(*[Reply.status_code(500)] * 4)
    for n in range(3):
        with pytest.raises(AIRequestError):
            await ai.classify(f"m{n}")
    await trio.sleep(30)

    with pytest.raises(AIRequestError):
        await ai.classify("probe")

    assert ai.breaker.state is BreakerState.OPEN
    with pytest.raises(AIUnavailable):
        await ai.classify("still open")


async def test_long_input_is_cut_to_the_token_cap(
    ai: GroqClient, emulator: GroqEmulator
) -> None:
    await ai.classify("x" * 50_000)

    sent = emulator.requests[0].messages[-1]["content"]
    assert len(sent) < 4 * ai.max_prompt_tokens
    assert ai.stats()["truncated"] == 1


async def test_ask_streams_deltas_in_order(
    ai: GroqClient, emulator: GroqEmulator
) -> None:
    emulator.script(Reply.stream(["Trio ", "is ", "structured ", "concurrency."]))
    seen: list[str] = []

    async def on_text(text: str) -> None:
        seen.append(text)

    answer = await ai.ask("what is trio?", on_text)

    assert answer == "Trio is structured concurrency."
    assert seen == [
        "Trio ",
        "Trio is ",
        "Trio is structured ",
        "Trio is structured concurrency.",
    ]
    assert emulator.requests[0].stream
    assert emulator.requests[0].model == DEFAULT_MODELS[Tier.BALANCED]


async def test_ask_refuses_a_prompt_over_the_cap(
    ai: GroqClient, emulator: GroqEmulator
) -> None:
    async def on_text(text: str) -> None:
        raise AssertionError("no text expected")

    with pytest.raises(PromptTooLarge):
        await ai.ask("why? " * 2_000, on_text)
    assert emulator.requests == []


async def test_ask_reports_a_429(ai: GroqClient, emulator: GroqEmulator) -> None:
    emulator.script(Reply.rate_limited(12.0))

    async def on_text(text: str) -> None:
        pass

    with pytest.raises(AIRateLimited):
        await ai.ask("hello", on_text)


async def test_the_key_never_reaches_logs_errors_or_stats(
    ai: GroqClient, emulator: GroqEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator.script(Reply.status_code(500), Reply.malformed())
    errors = []
    for text in ("a", "b"):
        try:
            await ai.classify(text)
        except Exception as exc:
            errors.append(repr(exc) + str(exc))

    assert KEY not in caplog.text
    assert all(KEY not in e for e in errors)
    assert KEY not in repr(ai.stats()) + repr(ai.health())


async def test_a_wrong_key_is_a_failure(emulator: GroqEmulator) -> None:
    client = GroqClient(
        Secret("wrong"),
        api_base="http://groq.test/openai/v1",
        transport=httpx.ASGITransport(app=emulator.asgi_app),
    )
    async with client:
        with pytest.raises(AIRequestError) as caught:
            await client.classify("hi")
    assert caught.value.status == 401


async def test_against_the_emulator_served_on_localhost() -> None:
    async with open_groq_emulator(api_key=KEY) as emu:
        assert emu.api_base.startswith("http://127.0.0.1:")
        async with GroqClient(Secret(KEY), api_base=emu.api_base) as client:
            result = await client.classify("spam=0.99")
            emu.script(Reply.stream(["a", "b", "c"], chunk_delay=0.01))
            parts: list[str] = []

            async def on_text(text: str) -> None:
                parts.append(text)

            answer = await client.ask("stream please", on_text)

    assert result.scores["spam"] == 0.99
    assert answer == "abc"
    assert parts == ["a", "ab", "abc"]


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("7.66s", 7.66),
        ("2m59.56s", 179.56),
        ("250ms", 0.25),
        ("1h", 3600.0),
        ("3", 3.0),
    ],
)
def test_parse_duration(raw: str, seconds: float) -> None:
    assert parse_duration(raw) == pytest.approx(seconds)


def test_parse_duration_rejects_garbage() -> None:
    assert parse_duration("soon") is None


def test_rate_window_waits_for_tokens() -> None:
    window = RateWindow()
    window.update(
        {"x-ratelimit-remaining-tokens": "50", "x-ratelimit-reset-tokens": "4s"}, 100.0
    )

    assert window.wait_time(101.0, tokens=40) == 0.0
    assert window.wait_time(101.0, tokens=60) == pytest.approx(3.0)


def test_tier_models_override_the_defaults() -> None:
    models = tier_models(fast="my-small-model")
    assert models[Tier.FAST] == "my-small-model"
    assert models[Tier.QUALITY] == DEFAULT_MODELS[Tier.QUALITY]


async def test_the_classify_tier_picks_the_model(emulator: GroqEmulator) -> None:
    client = GroqClient(
        Secret(KEY),
        api_base="http://groq.test/openai/v1",
        transport=httpx.ASGITransport(app=emulator.asgi_app),
        models=tier_models(quality="big-one"),
        classify_tier=Tier.QUALITY,
    )
    async with client:
        result = await client.classify("hi")
    assert result.model == "big-one" == emulator.requests[0].model


def test_decode_scores_ignores_extra_categories() -> None:
    scores = decode_scores(
        '{"toxic": 0, "spam": 1, "nsfw": 0.5, "hate": 0, "other": 0.3}',
        ("toxic", "spam", "nsfw", "hate"),
    )
    assert scores == {"toxic": 0.0, "spam": 1.0, "nsfw": 0.5, "hate": 0.0}
