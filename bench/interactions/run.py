"""Interaction latency while the gateway is busy: arrival to initial callback.

Runs the whole receiving path on one trio loop, against the sandbox on
127.0.0.1 (real sockets): the sandbox's gateway (zlib-stream websocket) ->
``vsb.gateway.ShardManager`` -> ``vsb.router.EventRouter`` (``vsb.cache.Cache``
first, then ``CommandService``) -> a ``/ping`` handler -> the REST client ->
the sandbox's interaction callback over HTTP.

Two phases, measured in the same run: idle (no other traffic), then loaded
(a sandbox task posting MESSAGE_CREATE at ``--rate`` per second, each one
decoded and cached by the bot). In each, ``--commands`` slash commands are
run ``--every`` seconds apart.

Reported per phase:
- bot: ms from INTERACTION_CREATE received (router handler) to the initial
  callback's HTTP answer (``CommandService.stats()``), the issue's measure;
- end to end: ms from the sandbox dispatching INTERACTION_CREATE to it
  receiving the callback (adds gateway transit: compression, websocket,
  decode);
- messages actually delivered per second during the loaded phase.

Usage: ``.venv/bin/python bench/interactions/run.py [--rate 1000]
[--commands 300] [--every 0.02]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import trio

from vsb.cache import Cache
from vsb.commands import Command, CommandContext, CommandRegistry, CommandService
from vsb.gateway import ShardManager
from vsb.rest import RestClient
from vsb.router import EventRouter
from vsb.sandbox import Sandbox, open_sandbox
from vsb.secret import Secret

INTENTS = (1 << 0) | (1 << 1) | (1 << 9) | (1 << 15)


def quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {
        "n": len(ordered),
        "p50": round(q(0.50), 2),
        "p90": round(q(0.90), 2),
        "p99": round(q(0.99), 2),
        "max": round(ordered[-1], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


async def post_load(
    sb: Sandbox, rate: int, stop: trio.Event, counter: list[int]
) -> None:
    """Post ``rate`` messages per second, in 10 ms slices, until ``stop``."""
    per_slice = max(1, rate // 100)
    next_at = trio.current_time()
    while not stop.is_set():
        for _ in range(per_slice):
            await sb.post_message("load message with some words in it")
            counter[0] += 1
        next_at += 0.01
        await trio.sleep_until(next_at)


async def phase(
    sb: Sandbox, service: CommandService, commands: int, every: float
) -> tuple[list[float], list[float]]:
    service.response_stats.latencies_ms.clear()
    interactions = []
    for _ in range(commands):
        interactions.append(await sb.run_command("ping"))
        await trio.sleep(every)
    with trio.fail_after(30):
        for ix in interactions:
            await ix.wait_response()
    bot = list(service.response_stats.latencies_ms)
    end_to_end = [
        (a["elapsed"] * 1000)
        for a in sb.actions.of("interaction.callback")
        if a["interaction_id"] in {ix.id for ix in interactions}
    ]
    return bot, end_to_end


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with open_sandbox() as sb, trio.open_nursery() as nursery:
        rest = RestClient(Secret(sb.bot_token), api_base=sb.api_base)
        router = EventRouter()
        cache = Cache(member_cap_per_guild=10_000, messages_per_channel=100)
        cache.register(router)
        delivered = [0]

        async def count_messages(shard_id: int, event: Any) -> None:
            delivered[0] += 1

        router.register("MESSAGE_CREATE", count_messages)

        async def ping(ctx: CommandContext) -> None:
            await ctx.respond("pong", ephemeral=True)

        registry = CommandRegistry()
        registry.add(Command(name="ping", description="Ping", handler=ping))
        service = CommandService(registry, rest, guild_id=sb.default.guild_id)
        service.register(router)
        manager = ShardManager(
            Secret(sb.bot_token),
            INTENTS,
            get_gateway_bot=rest.get_gateway_bot,
            on_dispatch=router.dispatch,
        )
        await nursery.start(service.run)
        await nursery.start(manager.run)
        with trio.fail_after(30):
            while cache.guild(sb.default.guild_id) is None:
                await trio.sleep(0.05)

        await phase(sb, service, 20, args.every)  # warm-up, not reported
        idle_bot, idle_e2e = await phase(sb, service, args.commands, args.every)

        stop = trio.Event()
        posted = [0]
        nursery.start_soon(post_load, sb, args.rate, stop, posted)
        await trio.sleep(1.0)  # let the load settle
        before, started = delivered[0], time.perf_counter()
        load_bot, load_e2e = await phase(sb, service, args.commands, args.every)
        elapsed = time.perf_counter() - started
        received = delivered[0] - before
        stop.set()

        result = {
            "idle": {
                "bot_ms": quantiles(idle_bot),
                "end_to_end_ms": quantiles(idle_e2e),
            },
            "loaded": {
                "bot_ms": quantiles(load_bot),
                "end_to_end_ms": quantiles(load_e2e),
                "message_create_per_s": round(received / elapsed),
            },
            "unknown_interaction": service.stats()["responses"]["unknown_interaction"],
        }
        nursery.cancel_scope.cancel()
        await rest.aclose()
        return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--every", type=float, default=0.02)
    import json

    print(json.dumps(trio.run(main, parser.parse_args()), indent=2))
