"""REST benchmark: 1,000 messages over 20 channels, VSB vs discord.py.

Starts ``serve.py`` (the sandbox on 127.0.0.1 with 5 messages per 5 s per
channel and 50 requests/s global), sends the burst with VSB's RestClient
(trio + httpx), then with discord.py's HTTPClient (asyncio + aiohttp, own
venv) on 20 other channels of the same sandbox process, and prints both
side by side. Real time; run by hand, never in CI::

    .venv/bin/python bench/rest/run.py [--total 1000] [--dpy-python PATH]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio

from vsb.rest import RestClient
from vsb.secret import Secret

HERE = Path(__file__).resolve().parent
CHANNELS_PER_CLIENT = 20
PER_WINDOW, WINDOW = 5, 5.0  # the channel bucket: 5 messages per 5 s
GLOBAL_PER_S = 50


def minimum_seconds(total: int, channels: int) -> float:
    """The least time the limits allow from the first send to the last.

    Each channel needs ``ceil(total / channels / 5)`` windows of 5 s, opened
    back to back, so its last window opens 5 s x (windows - 1) after its
    first; the global limit alone would allow ``total / 50`` s. The last
    answer's latency is left out (it is a few milliseconds here).
    """
    windows = math.ceil(math.ceil(total / channels) / PER_WINDOW)
    return max((windows - 1) * WINDOW, total / GLOBAL_PER_S - 1.0)


async def vsb_burst(info: dict[str, Any], total: int) -> dict[str, Any]:
    channels = info["channels"][:CHANNELS_PER_CLIENT]
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    transport = httpx.AsyncHTTPTransport(limits=limits)
    async with RestClient(
        Secret(info["token"]), api_base=info["api_base"], transport=transport
    ) as rest:
        start = trio.current_time()
        async with trio.open_nursery() as nursery:  # any failure raises: none here
            for i in range(total):
                channel = channels[i % len(channels)]
                nursery.start_soon(
                    lambda c=channel, i=i: rest.create_message(c, content=f"m{i}")
                )
        elapsed = trio.current_time() - start
        stats = rest.stats()
    statuses: dict[str, int] = {}
    for by_status in stats["requests"].values():
        for status, count in by_status.items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
    return {
        "client": "VSB RestClient",
        "elapsed_s": elapsed,
        "statuses": statuses,
        "failed": 0,
    }


def dpy_burst(python: str, info: dict[str, Any], total: int) -> dict[str, Any]:
    theirs = {**info, "channels": info["channels"][CHANNELS_PER_CLIENT:]}
    out = subprocess.run(
        [
            python,
            str(HERE / "dpy_client.py"),
            orjson.dumps(theirs).decode(),
            str(total),
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.exit(f"discord.py run failed:\n{out.stderr}")
    result: dict[str, Any] = orjson.loads(out.stdout.strip().splitlines()[-1])
    return result


def server_stats(server: subprocess.Popen[str]) -> dict[str, int]:
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write("stats\n")
    server.stdin.flush()
    counts: dict[str, int] = orjson.loads(server.stdout.readline())
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=1000)
    parser.add_argument("--dpy-python", default="/work/.venv-bench-rest/bin/python")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "serve.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        info = orjson.loads(server.stdout.readline())
        server_stats(server)  # reset
        rows = [trio.run(vsb_burst, info, args.total)]
        rows[-1]["server"] = server_stats(server)
        time.sleep(2.0)  # let the global window pass; channels differ anyway
        rows.append(dpy_burst(args.dpy_python, info, args.total))
        rows[-1]["server"] = server_stats(server)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
    report(rows, minimum_seconds(args.total, CHANNELS_PER_CLIENT), args.total)


def report(rows: list[dict[str, Any]], minimum: float, total: int) -> None:
    print(
        f"{total} messages over {CHANNELS_PER_CLIENT} channels; minimum {minimum:.2f} s"
    )
    print(
        "| client | total s | vs minimum | 429s seen by client | sandbox 429s (bucket + global) | 2xx | calls failed |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        statuses = row["statuses"]
        ok = sum(v for k, v in statuses.items() if str(k).startswith("2"))
        limited = statuses.get("429", statuses.get(429, 0))
        server = row["server"]
        server_429 = f"{server['limited_user'] + server['limited_global']} ({server['limited_user']} + {server['limited_global']})"
        print(
            f"| {row['client']} | {row['elapsed_s']:.2f} | {row['elapsed_s'] / max(minimum, 1e-9) - 1:+.1%}"
            f" | {limited} | {server_429} | {ok} | {row['failed']} |"
        )
    if len(rows) == 2:
        print(
            f"time ratio discord.py / VSB: {rows[1]['elapsed_s'] / rows[0]['elapsed_s']:.2f}"
        )


if __name__ == "__main__":
    main()
