"""discord.py's HTTPClient sending the benchmark burst (asyncio + aiohttp).

Runs in its own venv outside the repository (discord.py==2.7.1); see
README.md. Reads the sandbox info JSON from argv[1]; prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

import aiohttp
import discord
from discord.http import HTTPClient, Route, handle_message_parameters


async def main(info: dict, total: int) -> dict:
    Route.BASE = info["api_base"]
    statuses: Counter[int] = Counter()

    async def on_end(session, ctx, params) -> None:  # noqa: ANN001
        statuses[params.response.status] += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    http = HTTPClient(asyncio.get_running_loop(), http_trace=trace)
    await http.static_login(info["token"])
    statuses.clear()  # the login call is not part of the burst
    channels = info["channels"]
    start = time.monotonic()
    results = await asyncio.gather(
        *(
            http.send_message(
                channels[i % len(channels)],
                params=handle_message_parameters(content=f"m{i}"),
            )
            for i in range(total)
        ),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - start
    await http.close()
    return {
        "client": f"discord.py {discord.__version__}",
        "elapsed_s": elapsed,
        "statuses": dict(statuses),
        # discord.py gives up after 5 attempts and raises HTTPException.
        "failed": sum(isinstance(r, BaseException) for r in results),
    }


if __name__ == "__main__":
    info = json.loads(sys.argv[1])
    total = int(sys.argv[2])
    print(json.dumps(asyncio.run(main(info, total))), flush=True)
