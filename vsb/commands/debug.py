"""``/debug``: the bot's vital signs, for its developers only, ephemeral.

Gateway latency per shard, guilds, cached users, commands, the database
pool (size, idle, waiting), memory RSS, uptime and version. Every value is
picked by name from plain counters, so nothing else (no setting, URL or
token) can slip into the answer.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import vsb
from vsb.cache import Cache
from vsb.commands.context import CommandContext
from vsb.commands.registry import CommandRegistry
from vsb.commands.schema import Command

if TYPE_CHECKING:
    from vsb.services.database import Database

ShardLatencies = Callable[[], Mapping[int, float | None]]
"""``{shard_id: heartbeat round trip in seconds or None}``."""


class Debug:
    """The ``/debug`` command.

    Args:
        registry: for the command count.
        cache: guilds and members (None: not shown).
        db: the pool figures (None: not shown).
        shard_latencies: gateway latency per shard (None: not shown).
        started_at: Unix time the process started.
        wall_clock: Unix seconds.
    """

    def __init__(
        self,
        registry: CommandRegistry,
        *,
        cache: Cache | None = None,
        db: Database | None = None,
        shard_latencies: ShardLatencies | None = None,
        started_at: float | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._cache = cache
        self._db = db
        self._latencies = shard_latencies
        self._wall_clock = wall_clock
        self._started_at = started_at if started_at is not None else wall_clock()

    def commands(self) -> list[Command]:
        """``/debug``, for ``registry.add_all``."""
        return [
            Command(
                name="debug",
                description="Bot diagnostics (developers only)",
                handler=self.debug,
                developer_only=True,
                ephemeral=True,
            )
        ]

    async def debug(self, ctx: CommandContext) -> None:
        """Answer with the diagnostics embed."""
        fields = [_field(name, value) for name, value in (await self.collect()).items()]
        await ctx.respond(
            embeds=[{"title": "Diagnostics", "fields": fields, "color": 0x5865F2}],
            ephemeral=True,
        )

    async def collect(self) -> dict[str, str]:
        """The diagnostics as display strings, by label."""
        info: dict[str, str] = {}
        if self._latencies is not None:
            shards = self._latencies()
            info["Gateway latency"] = (
                "\n".join(
                    f"shard {sid}: "
                    + (f"{lat * 1000:.0f} ms" if lat is not None else "n/a")
                    for sid, lat in sorted(shards.items())
                )
                or "no shards"
            )
        if self._cache is not None:
            stats = self._cache.stats()
            info["Guilds"] = str(int(stats.get("guilds", 0)))
            info["Cached users"] = str(int(stats.get("members", 0)))
        info["Commands"] = str(len(self._registry))
        if self._db is not None:
            health = await self._db.health()
            info["DB pool"] = (
                f"size {int(health.size)} / idle {int(health.idle)}"
                f" / waiting {int(health.waiting)}"
            )
        info["Memory RSS"] = f"{rss_bytes() / 1_048_576:.1f} MiB"
        info["Uptime"] = _uptime(self._wall_clock() - self._started_at)
        info["Version"] = f"VSB {vsb.__version__}, Python {sys.version.split()[0]}"
        return info


def rss_bytes() -> int:
    """The process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _uptime(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{days}d {hours}h {minutes}m {seconds}s"


def _field(name: str, value: Any) -> dict[str, Any]:
    return {"name": name, "value": str(value)[:1024], "inline": True}
