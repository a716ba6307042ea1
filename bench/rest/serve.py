"""Serve the sandbox on 127.0.0.1 with Discord-like limits for the REST benchmark.

Run by ``run.py`` (repo venv). Prints one JSON line (``api_base``, ``token``,
``channels``) when ready, then answers commands on stdin, one per line:
``stats`` prints the sandbox limiter's counters as JSON and resets them.
EOF closes the sandbox.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from vsb.sandbox import Sandbox, open_sandbox

CHANNELS = 40  # 20 for each client, so their buckets never overlap
RULES = {"POST /channels/{channel_id}/messages": (5, 5.0)}  # Discord's 5 per 5 s


def with_via(app: Any) -> Any:
    """Add ``Via: 1.1 google`` to every answer, as Discord's answers carry.

    The sandbox leaves it out, and discord.py takes a 429 without ``Via`` for
    a Cloudflare ban and gives up at once; the header keeps the comparison
    about rate limiting.
    """

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def send_with_via(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"via", b"1.1 google")]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_with_via)

    return wrapped


async def main() -> None:
    async with open_sandbox(serve_http=False, rate_limits=RULES, global_limit=50) as sb:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.errorlog = None
        config.keep_alive_timeout = 3600
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, with_via(sb.asgi_app), config)
            await command_loop(sb, binds[0].rstrip("/") + "/api/v10")
            nursery.cancel_scope.cancel()


async def command_loop(sb: Sandbox, api_base: str) -> None:
    guild = sb.default.guild_id
    channels = [sb.state.add_channel(guild, f"bench-{i}").id for i in range(CHANNELS)]
    info = {"api_base": api_base, "token": sb.bot_token, "channels": channels}
    print(orjson.dumps(info).decode(), flush=True)
    stdin = trio.wrap_file(sys.stdin)
    async for line in stdin:
        if line.strip() == "stats":
            counts = dict(sb.core.limiter.counts)
            for key in counts:
                sb.core.limiter.counts[key] = 0
            print(orjson.dumps(counts).decode(), flush=True)
        sb.state.messages.clear()  # keep memory flat between runs


if __name__ == "__main__":
    trio.run(main)
