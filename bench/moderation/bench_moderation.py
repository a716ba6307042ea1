"""Moderation benchmarks: local rules, the AI path, the AI result cache.

Run from the repository root::

    .venv/bin/python bench/moderation/bench_moderation.py

1. Local rules: messages per second through ``LocalClassifier.classify`` on
   one core (a realistic mix: chat, links, invites, caps, emoji, evasions,
   repeats), with a 60-entry word list.
2. The AI path: ``GroqClient.classify`` against the Groq emulator served on
   127.0.0.1 answering every request after 200 ms, at several concurrency
   limits (what the pipeline's AI workers do), distinct messages only.
3. The cache: hit ratio of the AI result cache on a stream with repeats
   (a Zipf-like choice among common messages, variants in case, spacing and
   invisible characters, and one-off messages), keyed by the normalized
   content hash, side by side with a key on the raw text.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import time

import httpx
import trio

from vsb.cache.ttl import TTLCache
from vsb.moderation.normalize import content_key
from vsb.moderation.rules import LocalClassifier, RuleConfig
from vsb.sandbox.groq import ASGI_API_BASE, GroqEmulator, open_groq_emulator
from vsb.secret import Secret
from vsb.services.ai import GroqClient

SEED = 7
KEY = "gsk_bench"

CHAT = [
    "good morning everyone",
    "has anyone tried the new patch yet?",
    "lol that was wild",
    "I'll be online around 9pm tonight if anyone wants to play",
    "can someone help me with the setup, the docs at https://discord.com/developers/docs are confusing",
    "thanks!!",
    "what time is the event on saturday",
    "the build failed again, here is the log: error 0x80070005",
    "ngl this server is the best",
    "does anybody know a good keyboard under 100 euros?",
]
NOISY = [
    "WHY IS NOBODY ANSWERING MY QUESTION IN THIS CHANNEL",
    "\U0001f389" * 14,
    "join my server discord.gg/abcdef",
    "free nitro https://d1scord-gift.com/claim",
    "you are an 1d\u200bi0t",
    "y o u   i d i o t",
    "check https://bit.ly/3xyz",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 stuff",
]
WORDS = {f"badword{i}": "toxic" for i in range(55)} | {
    "idiot": "toxic",
    "moron": "toxic",
    "kill yourself": "hate",
    "nudes": "nsfw",
    "slur": "hate",
}


def corpus(n: int, rng: random.Random) -> list[tuple[str, int, int]]:
    """(content, channel, author): 85% chat, 15% noisy."""
    out = []
    for _ in range(n):
        text = rng.choice(NOISY) if rng.random() < 0.15 else rng.choice(CHAT)
        out.append((text, rng.randrange(20), rng.randrange(2_000)))
    return out


def bench_local_rules() -> None:
    rng = random.Random(SEED)
    messages = corpus(20_000, rng)
    rules = LocalClassifier(RuleConfig(words=WORDS))
    total = 0
    rounds = 10
    start = time.perf_counter()
    for r in range(rounds):
        for i, (text, channel, author) in enumerate(messages):
            rules.classify(
                text, now=r * 100 + i * 0.001, channel_id=channel, author_id=author
            )
            total += 1
    elapsed = time.perf_counter() - start
    print(
        f"local rules: {total} messages in {elapsed:.2f} s = {total / elapsed:,.0f} msg/s"
    )
    print(f"  rule hits: {rules.stats()['hits']}")


async def bench_ai_path() -> None:
    async with open_groq_emulator(api_key=KEY, delay=0.2) as emu:
        for concurrency in (8, 32, 64):
            async with GroqClient(
                Secret(KEY), api_base=emu.api_base, max_concurrency=concurrency
            ) as ai:
                count = concurrency * 8
                latencies: list[float] = []

                async def one(
                    i: int, ai: GroqClient = ai, latencies: list[float] = latencies
                ) -> None:
                    started = time.perf_counter()
                    await ai.classify(f"distinct message number {i} toxic=0.5")
                    latencies.append(time.perf_counter() - started)

                start = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    for i in range(count):
                        nursery.start_soon(one, i)
                elapsed = time.perf_counter() - start
                latencies.sort()
                p50 = statistics.median(latencies) * 1000
                p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
                print(
                    f"AI path (emulator 200 ms, limiter {concurrency}): {count} msgs in"
                    f" {elapsed:.2f} s = {count / elapsed:,.1f} msg/s;"
                    f" latency p50 {p50:.0f} ms, p99 {p99:.0f} ms"
                )


def stream_with_repeats(n: int, rng: random.Random) -> list[str]:
    """Common messages (Zipf-like), variants of them, and one-off messages."""
    common = [f"{rng.choice(CHAT)} #{i}" for i in range(400)] + NOISY
    weights = [1 / (rank + 1) for rank in range(len(common))]
    out = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.45:
            out.append(f"one-off message {i} {rng.random():.6f}")
            continue
        text = rng.choices(common, weights)[0]
        if roll < 0.60:
            text = text.upper()
        elif roll < 0.70:
            text = text.replace(" ", "  ").replace("e", "e\u200b", 1)
        out.append(text)
    return out


async def bench_cache() -> None:
    rng = random.Random(SEED)
    stream = stream_with_repeats(5_000, rng)
    emu = GroqEmulator(api_key=KEY)
    transport = httpx.ASGITransport(app=emu.asgi_app)
    async with GroqClient(
        Secret(KEY), api_base=ASGI_API_BASE, transport=transport
    ) as ai:
        for text in stream:
            await ai.classify(text)
        stats = ai.stats()
    raw: TTLCache[str, bool] = TTLCache(10_000, 3_600)
    for text in stream:
        key = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        if raw.get(key) is None:
            raw.set(key, True)
    ratio = stats["cache"]["hit_ratio"]
    print(
        f"AI cache on {len(stream)} messages (45% one-off, 55% repeats of 408 common"
        f" texts, 25% of repeats varied): normalized key hit ratio {ratio:.1%}"
        f" ({len(emu.requests)} Groq calls); raw-text key {raw.stats()['hit_ratio']:.1%}"
    )
    keys = {content_key(t) for t in stream}
    print(f"  distinct normalized texts: {len(keys)}")


def main() -> None:
    bench_local_rules()
    trio.run(bench_ai_path)
    trio.run(bench_cache)


if __name__ == "__main__":
    main()
