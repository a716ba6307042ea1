"""Benchmark driver: VSB's gateway, models, router and cache on the fake gateway.

Run by ``/work/shared/bench/run.py --add "vsb=<python> -O bench/drv_vsb.py"``
(see bench/gateway/README.md). It wires the bot's real parts the way the app
does: a :class:`vsb.gateway.ShardManager` decoding into ``vsb.models``
Structs, an :class:`vsb.router.EventRouter` with the :class:`vsb.cache.Cache`
registered on it, and a user handler on MESSAGE_CREATE that counts messages.
No GC tuning: the models are ``gc=False`` Structs and the cache keeps packed
bytes, so the cyclic GC has little to walk (``gc.freeze()`` after the guild
loaded made no measurable difference).
"""

from __future__ import annotations

import json
import sys
import urllib.request
from typing import Any

import trio
from benchmeter import API_BASE, COMPRESS, INTENTS, TOKEN, Meter

from vsb.cache import Cache
from vsb.gateway import ShardManager
from vsb.models import Message
from vsb.router import EventRouter
from vsb.secret import Secret


def _get_gateway_bot() -> dict[str, Any]:
    request = urllib.request.Request(
        f"{API_BASE}/gateway/bot", headers={"Authorization": f"Bot {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # 127.0.0.1 only
        data: dict[str, Any] = json.load(response)
    return data


async def run(meter: Meter) -> int:
    router = EventRouter()
    cache = Cache(member_cap_per_guild=1_000_000, messages_per_channel=100)
    cache.register(router)
    cached: dict[str, int] = {}

    async def get_gateway_bot() -> dict[str, Any]:
        return await trio.to_thread.run_sync(_get_gateway_bot)

    async with trio.open_nursery() as nursery:

        async def on_message(shard_id: int, message: Message) -> bool | None:
            if meter.message(message.content):
                state = cache.guild(message.guild_id or 0)
                cached["members"] = state.cached_members if state else 0
                nursery.cancel_scope.cancel()
            return None

        router.register("MESSAGE_CREATE", on_message)  # type: ignore[arg-type]
        manager = ShardManager(
            Secret(TOKEN),
            INTENTS,
            get_gateway_bot=get_gateway_bot,
            on_dispatch=router.dispatch,
            compress=COMPRESS,
        )
        meter.before_connect()
        await nursery.start(manager.run)
    return cached.get("members", 0)


def main() -> None:
    meter = Meter("vsb", f"vsb (trio {trio.__version__})")
    members = trio.run(run, meter)
    meter.report(cached_members=members)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
