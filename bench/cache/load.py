"""Load one guild and a message stream into one library's cache; print one JSON line.

Run by ``bench/cache/run.py`` in a fresh process per library and guild size,
so no library's leftovers count against another. Usage::

    python bench/cache/load.py LIB PAYLOAD_DIR MODE

``LIB`` is ``vsb``, ``discord.py`` or ``hikari``; ``PAYLOAD_DIR`` holds
``ready.json``, ``guild.json`` and ``messages.jsonl`` (the ``d`` of each
event, one per line) from ``run.py``; ``MODE`` is ``memory`` (tracemalloc
on, bytes measured) or ``time`` (tracemalloc off, seconds measured).

What is measured, per library, from the same bytes:

- ``member_bytes``: traced bytes held after READY + GUILD_CREATE were
  decoded (each library with its own JSON decoder) and cached, the decoded
  payload freed and ``gc.collect()`` run, minus the bytes held before.
  This includes the guild, its roles and channels: ``run.py`` subtracts the
  1,000-member figure from the 100,000-member one for the marginal cost.
- ``message_bytes``: traced bytes added by decoding and caching every
  MESSAGE_CREATE (each library's message cache sized to hold all of them),
  including what caching a message does to the member cache.
- ``gc_objects``: objects the cyclic GC tracks after the guild is loaded
  (what each full collection has to walk).
- ``guild_s`` / ``messages_s`` (time mode): wall time of those two steps;
  ``rss_guild_bytes``: resident memory after the guild minus before (the
  allocator keeps some freed payload memory, so this is above the traced
  figure); ``peak_rss_kib``: ``ru_maxrss``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import pathlib
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any


def read_payloads(folder: pathlib.Path) -> tuple[bytes, bytes, list[bytes]]:
    ready = (folder / "ready.json").read_bytes()
    guild = (folder / "guild.json").read_bytes()
    messages = (folder / "messages.jsonl").read_bytes().splitlines()
    return ready, guild, messages


# -- one loader per library: (load_guild, load_messages, cached counts) ------


def vsb_loader(message_count: int) -> tuple[Any, Any, Callable[[], dict[str, int]]]:
    from vsb.cache import Cache
    from vsb.models import decode_event

    cache = Cache(member_cap_per_guild=1_000_000, messages_per_channel=message_count)

    def load_guild(ready: bytes, guild: bytes) -> None:
        cache.apply("READY", decode_event("READY", ready))
        cache.apply("GUILD_CREATE", decode_event("GUILD_CREATE", guild))

    def load_messages(messages: list[bytes]) -> None:
        for raw in messages:
            cache.apply("MESSAGE_CREATE", decode_event("MESSAGE_CREATE", raw))

    def counts() -> dict[str, int]:
        stats = cache.stats()
        return {"members": stats["members"], "messages": stats["messages"]}

    return load_guild, load_messages, counts


def discordpy_loader(
    message_count: int,
) -> tuple[Any, Any, Callable[[], dict[str, int]]]:
    import discord
    from discord.state import ConnectionState
    from discord.utils import _from_json

    intents = discord.Intents.default()
    intents.members = True
    intents.message_content = True
    state = ConnectionState(
        dispatch=lambda *args, **kwargs: None,
        handlers={},
        hooks={},
        http=None,  # type: ignore[arg-type]
        intents=intents,
        max_messages=message_count,
        chunk_guilds_at_startup=False,
    )

    def load_guild(ready: bytes, guild: bytes) -> None:
        async def run() -> None:
            state.parse_ready(_from_json(ready))
            state.parse_guild_create(_from_json(guild))
            if state._ready_task is not None:
                state._ready_task.cancel()

        asyncio.run(run())

    def load_messages(messages: list[bytes]) -> None:
        for raw in messages:
            state.parse_message_create(_from_json(raw))

    def counts() -> dict[str, int]:
        guild = next(iter(state._guilds.values()))
        return {"members": len(guild._members), "messages": len(state._messages)}

    return load_guild, load_messages, counts


class _HikariShard:
    """Enough of a shard for hikari's event factory."""

    def __init__(self, user_id: int) -> None:
        self.id = 0
        self.shard_count = 1
        self._user_id = user_id

    def get_user_id(self) -> int:
        return self._user_id


def hikari_loader(message_count: int) -> tuple[Any, Any, Callable[[], dict[str, int]]]:
    import hikari
    import hikari.impl
    from hikari.internal.data_binding import default_json_loads

    intents = (
        hikari.Intents.ALL_UNPRIVILEGED
        | hikari.Intents.GUILD_MEMBERS
        | hikari.Intents.MESSAGE_CONTENT
    )
    bot = hikari.GatewayBot(
        "MTA.ZmFrZQ.bench",
        intents=intents,
        banner=None,
        logs="WARNING",
        suppress_optimization_warning=True,
        auto_chunk_members=False,
        cache_settings=hikari.impl.CacheSettings(max_messages=message_count),
    )
    loop = asyncio.new_event_loop()
    shard: list[_HikariShard] = []

    def load_guild(ready: bytes, guild: bytes) -> None:
        ready_data = default_json_loads(ready)
        shard.append(_HikariShard(int(ready_data["user"]["id"])))

        async def run() -> None:
            bot.event_manager.consume_raw_event("READY", shard[0], ready_data)
            bot.event_manager.consume_raw_event(
                "GUILD_CREATE", shard[0], default_json_loads(guild)
            )

        loop.run_until_complete(run())

    def load_messages(messages: list[bytes]) -> None:
        async def run() -> None:
            for raw in messages:
                bot.event_manager.consume_raw_event(
                    "MESSAGE_CREATE", shard[0], default_json_loads(raw)
                )

        loop.run_until_complete(run())

    def counts() -> dict[str, int]:
        guild_id = next(iter(bot.cache.get_guilds_view()))
        return {
            "members": len(bot.cache.get_members_view_for_guild(guild_id)),
            "messages": len(bot.cache.get_messages_view()),
        }

    return load_guild, load_messages, counts


LOADERS = {"vsb": vsb_loader, "discord.py": discordpy_loader, "hikari": hikari_loader}


def _rss() -> int:
    # Resident pages now (Linux), not the peak.
    pages = pathlib.Path("/proc/self/statm").read_text().split()[1]
    return int(pages) * resource.getpagesize()


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def main() -> None:
    lib, folder, mode = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
    ready, guild, messages = read_payloads(folder)
    load_guild, load_messages, counts = LOADERS[lib](len(messages))
    result: dict[str, Any] = {"lib": lib, "mode": mode}

    if mode == "memory":
        tracemalloc.start()
        before = _traced()
        load_guild(ready, guild)
        after_guild = _traced()
        result["member_bytes"] = after_guild - before
        result["guild_peak_bytes"] = tracemalloc.get_traced_memory()[1] - before
        result["gc_objects"] = len(gc.get_objects())
        load_messages(messages)
        result["message_bytes"] = _traced() - after_guild
    else:
        rss_before = _rss()
        started = time.perf_counter()
        load_guild(ready, guild)
        result["guild_s"] = time.perf_counter() - started
        gc.collect()
        result["rss_guild_bytes"] = _rss() - rss_before
        started = time.perf_counter()
        load_messages(messages)
        result["messages_s"] = time.perf_counter() - started
        result["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    result.update(counts())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
